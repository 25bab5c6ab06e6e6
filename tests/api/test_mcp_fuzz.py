"""A Hypothesis fuzz of ``/mcp`` in both protocol eras: whatever arrives, never a 5xx, never an
ERROR log line, and the server answers a well-formed request afterwards.

Bounded and deterministic (``derandomize``), so CI sees the same cases every run; the
count it ran is printed.
"""

import io
import json
import os
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.main import create_app
from app.settings import Settings
from domain.keys import Scope
from infrastructure.logging import configure_logging
from tests.api.harness import asgi_client, bearer, issue_key
from tests.mcp_messages import ACCEPT, initialize

CASES_PER_ERA = int(os.environ.get("MCP_FUZZ_CASES", "1000"))
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
METHODS = [
    "initialize",
    "ping",
    "prompts/list",
    "prompts/get",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "completion/complete",
    "server/discover",
    "logging/setLevel",
    "notifications/initialized",
    "no/such/method",
    "",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
params = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["context_stack", "generate_context_stack", "x" * 300, ""])
            | st.text(max_size=20)
        },
        optional={"arguments": json_values, "uri": st.text(max_size=40), "_meta": json_values},
    ),
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]) | json_values,
        "id": st.one_of(
            st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=300), json_values
        ),
        "method": st.sampled_from(METHODS) | json_values,
        "params": params,
        "result": json_values,
        "error": json_values,
    },
)


well_formed = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "id": st.integers(min_value=0, max_value=10_000),
        "method": st.sampled_from(METHODS),
    },
    optional={"params": params},
)


def with_meta(message: dict[str, Any]) -> dict[str, Any]:
    """A message as a 2026-07-28 client sends it: ``_meta`` in every request's params."""
    given = message.get("params")
    extra = given if isinstance(given, dict) else {}
    return {**message, "params": {**extra, "_meta": MODERN_META}}


def encoded(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


bodies = st.one_of(
    messages.map(encoded),
    well_formed.map(encoded),
    well_formed.map(with_meta).map(encoded),
    st.lists(messages, max_size=3).map(lambda batch: json.dumps(batch).encode()),
    st.binary(max_size=200),
    st.integers(min_value=1, max_value=3_000).map(lambda depth: b"[" * depth + b"]" * depth),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "mcp-session-id": st.text(
            alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40
        ),
        "mcp-name": st.text(
            alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20
        ),
        "content-type": st.sampled_from(["application/json", "text/plain", ""]),
    },
)


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
def test_no_input_to_mcp_gets_a_server_error(era: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Thousands of requests from one key within a minute: past any sane rate limit, which
    # has its own tests; this one is about malformed input.
    app = create_app(Settings(rate_limit_read="off", rate_limit_write="off"))
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=stream)
    seen: list[int] = []

    async def scenario() -> None:
        async with app.router.lifespan_context(app), asgi_client(app) as client:
            key = await issue_key(app, Scope.WRITE, user_id="fuzz")
            base = {**bearer(key), **ACCEPT, "content-type": "application/json"}
            if era != "legacy":
                base |= {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list"}

            @settings(
                max_examples=CASES_PER_ERA,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(body=bodies, extra=headers)
            def one(body: bytes, extra: dict[str, str]) -> None:
                response = anyio.from_thread.run(post, client, body, {**base, **extra})
                seen.append(response.status_code)
                assert response.status_code < 500, response.text[:300]

            await anyio.to_thread.run_sync(one)
            # A fresh key: the fuzzed key may hold its quota of sessions from cases that
            # were valid initialize requests, and that cap has its own tests.
            fresh = await issue_key(app, Scope.WRITE, user_id="after-fuzz")
            alive = await post(
                client,
                encoded(initialize()),
                {**bearer(fresh), **ACCEPT, "content-type": "application/json"},
            )
            assert alive.status_code == 200

    anyio.run(scenario)
    errors = [
        line
        for line in stream.getvalue().splitlines()
        if line and json.loads(line)["level"] in ("error", "critical")
    ]
    figure = f"{len(seen)} cases, statuses {sorted(set(seen))}, ERROR lines {len(errors)}"
    with capsys.disabled():  # the gate's figure shows in CI's output, passing or not
        print(f"\nmcp fuzz [{era}]: {figure}")  # noqa: T201 — the gate reports its figure
    assert len(seen) >= CASES_PER_ERA
    assert errors == [], errors[:3]


async def post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    with anyio.fail_after(10):
        return await client.post("/mcp", content=body, headers=headers)
