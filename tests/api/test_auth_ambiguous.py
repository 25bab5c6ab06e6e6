"""A request must present exactly one credential: repeats and disagreements are 400."""

import anyio
import pytest
from fastapi import FastAPI

from domain.keys import Scope
from tests.api.harness import issue_key, serving, state_of
from tests.api.keys_helpers import REALM, with_other_secret
from tests.fakes import verifications
from tests.mcp_messages import ACCEPT, initialize

pytestmark = pytest.mark.anyio

INVALID_REQUEST = f'{REALM}, error="invalid_request"'


def ambiguous(key: str) -> dict[str, list[tuple[str, str]]]:
    """Every way of sending more than one credential, by name."""
    other = with_other_secret(key)
    return {
        "bogus-then-valid": [
            ("authorization", f"Bearer {other}"),
            ("authorization", f"Bearer {key}"),
        ],
        "valid-then-bogus": [
            ("authorization", f"Bearer {key}"),
            ("authorization", f"Bearer {other}"),
        ],
        "two-api-keys": [("x-api-key", key), ("x-api-key", key)],
        "bearer-and-other-api-key": [("authorization", f"Bearer {key}"), ("x-api-key", other)],
    }


async def test_every_ambiguous_credential_is_400_on_rest_and_mcp_before_any_lookup(
    app: FastAPI,
) -> None:
    async with serving(app, scope=None) as client:
        key = await issue_key(app, Scope.ADMIN)
        before = verifications(state_of(app).metrics)
        answers: dict[str, list[tuple[int, str, str]]] = {}
        with anyio.fail_after(10):
            for name, headers in ambiguous(key).items():
                rest = await client.get("/v1/prompts", headers=headers)
                mcp = await client.post(
                    "/mcp", json=initialize(), headers=[*headers, *ACCEPT.items()]
                )
                answers[name] = [
                    (r.status_code, r.headers.get("www-authenticate", ""), r.json()["error"])
                    for r in (rest, mcp)
                ]
        metrics = (await client.get("/metrics")).text
    assert verifications(state_of(app).metrics) == before

    wanted = (400, INVALID_REQUEST, "ambiguous_credentials")
    assert answers == {name: [wanted, wanted] for name in answers}
    assert 'ctxfy_auth_failures_total{reason="ambiguous"} 8.0' in metrics


async def test_the_same_key_in_both_headers_is_one_credential(app: FastAPI) -> None:
    async with serving(app, scope=None) as client:
        key = await issue_key(app)
        with anyio.fail_after(10):
            response = await client.get(
                "/v1/prompts", headers={"authorization": f"Bearer {key}", "x-api-key": key}
            )
    assert response.status_code == 200
