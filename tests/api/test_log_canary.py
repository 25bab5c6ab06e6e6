"""Canary: a known key goes everywhere a client could put it; no log line ever shows it."""

import io

import anyio
import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from domain.keys import PresentedKey, Scope, parse_key
from infrastructure.logging import configure_logging
from tests.api.harness import BASE_URL, bearer, issue_key, mcp_over_http, serving

pytestmark = pytest.mark.anyio


async def test_a_known_key_appears_nowhere_in_the_output(
    capfd: pytest.CaptureFixture[str],
) -> None:
    logs = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=logs)
    app = create_app(Settings(log_level="DEBUG"))

    @app.get("/v1/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError(f"forced failure while holding {canary}")

    async with serving(app, Scope.ADMIN) as admin:
        canary = await issue_key(app, Scope.WRITE)
        secret = parse_key(canary).secret
        wrong = PresentedKey(key_id=parse_key(canary).key_id, secret=secret[::-1]).plaintext
        await admin.get("/v1/prompts", headers=bearer(canary))
        await admin.get("/v1/prompts", headers={"X-API-Key": canary, "Authorization": ""})
        await admin.get(f"/v1/prompts?api_key={canary}", headers={"Authorization": ""})
        await admin.get("/v1/prompts", headers=bearer(wrong))
        await admin.post(
            "/v1/prompts/adr/preview", json={"decision_topic": canary}, headers=bearer(canary)
        )
        await admin.post("/v1/prompts/adr/preview", json={"decision_topic": 1, "x": canary})
        # As a server does: the 500 is sent and the exception is logged, not re-raised here.
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as raw:
            assert (await raw.get("/v1/boom", headers=bearer(canary))).status_code == 500
        async with mcp_over_http(app, key=canary) as mcp:
            with anyio.fail_after(10):
                await mcp.get_prompt("adr", {"decision_topic": canary})
                with pytest.raises(Exception, match="Invalid arguments"):
                    await mcp.get_prompt("adr", {"unknown": canary})
        rotated = await admin.post(f"/v1/keys/{parse_key(canary).key_id}/rotate", json={})
        fresh = rotated.json()["key"]

    captured = capfd.readouterr()
    everything = logs.getvalue() + captured.out + captured.err
    assert "forced failure while holding" in everything, "the forced exception was logged"
    for leaked in (secret, secret[::-1], parse_key(fresh).secret):
        assert leaked not in everything
