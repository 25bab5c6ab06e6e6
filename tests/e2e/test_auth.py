"""Authentication through a real uvicorn process, as MCP clients and curl see it."""

import httpx
import pytest

from tests.e2e.server import RunningServer, ctxfy
from tests.mcp_messages import ACCEPT, initialize

TIMEOUT = 30
INITIALIZE = initialize("e2e")
LIST_PROMPTS = {"jsonrpc": "2.0", "id": 2, "method": "prompts/list"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **ACCEPT}


def test_mcp_without_a_key_is_401_with_a_bearer_challenge(server: RunningServer) -> None:
    with httpx.Client(timeout=TIMEOUT) as http:
        response = http.post(server.mcp_url, json=INITIALIZE, headers=ACCEPT)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="ctxfy"'
    assert response.json()["error"] == "unauthorized"


def test_a_key_in_the_query_string_is_ignored(server: RunningServer) -> None:
    with httpx.Client(timeout=TIMEOUT) as http:
        response = http.get(
            f"{server.base_url}/v1/prompts", params={"api_key": server.key, "key": server.key}
        )
    assert response.status_code == 401


@pytest.mark.parametrize("server", ["stateful"], indirect=True)  # sessions are stateful
def test_an_mcp_session_made_with_one_key_is_refused_to_another(server: RunningServer) -> None:
    other = ctxfy(server.env, "keys", "create", "--user", "mallory", "--scope", "read").strip()
    with httpx.Client(timeout=TIMEOUT) as http:
        opened = http.post(server.mcp_url, json=INITIALIZE, headers=auth(server.key))
        session = opened.headers["mcp-session-id"]
        hijacked = http.post(
            server.mcp_url, json=LIST_PROMPTS, headers={**auth(other), "mcp-session-id": session}
        )
        owned = http.post(
            server.mcp_url,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers={**auth(server.key), "mcp-session-id": session},
        )
    assert opened.status_code == 200
    assert hijacked.status_code == 404
    assert owned.status_code == 202


def test_a_revoked_key_stops_working_at_once_on_the_process_that_revoked_it(
    server: RunningServer,
) -> None:
    admin = ctxfy(server.env, "keys", "create", "--user", "root", "--scope", "admin").strip()
    victim = ctxfy(server.env, "keys", "create", "--user", "eve", "--scope", "read").strip()
    key_id = victim.split("_")[1]
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http:
        before = http.get("/v1/prompts", headers=auth(victim))
        revoked = http.post(f"/v1/keys/{key_id}/revoke", headers=auth(admin))
        after = http.get("/v1/prompts", headers=auth(victim))
    assert (before.status_code, revoked.status_code, after.status_code) == (200, 200, 401)
    assert after.headers["www-authenticate"] == 'Bearer realm="ctxfy", error="invalid_token"'


def test_the_server_output_never_shows_a_key_it_was_sent(server: RunningServer) -> None:
    canary = ctxfy(server.env, "keys", "create", "--user", "canary", "--scope", "read").strip()
    secret = canary.split("_")[2]
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http:
        http.get("/v1/prompts", headers=auth(canary))
        http.get("/v1/prompts", params={"api_key": canary})
        http.post("/v1/prompts/adr/preview", json={"decision_topic": canary}, headers=auth(canary))
        http.post("/v1/prompts/adr/preview", json={"nope": canary}, headers=auth(canary))
        http.post(server.mcp_url, json=INITIALIZE, headers=auth(canary + "x"))
        http.get("/v1/prompts", headers={"X-Request-ID": "canary-done", **auth(server.key)})
    output = server.wait_for_output('"request_id":"canary-done"')
    assert canary.split("_")[1] in output, "the canary's requests were logged"
    assert secret not in output
