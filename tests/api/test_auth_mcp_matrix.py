"""Who may call what over MCP: every method and component against every kind of credential.

The matrix is generated from the MCP server's own components and the auth checks they declare,
so a new tool, prompt or resource is covered, or fails a test, without anyone editing this file.
"""

from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from fastapi import FastAPI
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import AuthorizationError, FastMCPError, ToolError
from fastmcp.prompts import Prompt
from fastmcp.resources import Resource, ResourceTemplate
from fastmcp.server.auth import AccessToken, AuthContext, require_scopes, run_auth_checks
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.transforms import is_enabled
from fastmcp.tools import Tool
from mcp import MCPError

from app.main import create_app
from app.settings import Settings
from domain.keys import Scope, parse_key
from tests.api.harness import catalog_of, issue_key, mcp_over_http, on_the_wire, serving, state_of
from tests.api.keys_helpers import (
    ALLOWED,
    HIERARCHY,
    INITIALIZE,
    INVALID_TOKEN,
    MCP_ACCEPT,
    MCP_MOUNT,
    REALM,
    UNTHROTTLED,
    Credential,
    credentials,
    outcome,
)

pytestmark = pytest.mark.anyio

REFUSED = "refused"


@dataclass(slots=True)
class Components:
    """Everything the MCP server offers, before any per-request auth filtering."""

    tools: list[Tool]
    prompts: list[Prompt]
    resources: list[Resource]
    templates: list[ResourceTemplate]


async def components(server: FastMCP) -> Components:
    """The enabled components of every provider; ``server.list_*`` would hide guarded ones."""
    found = Components([], [], [], [])
    for provider in server.providers:
        found.tools += [c for c in await provider.list_tools() if is_enabled(c)]
        found.prompts += [c for c in await provider.list_prompts() if is_enabled(c)]
        found.resources += [c for c in await provider.list_resources() if is_enabled(c)]
        found.templates += [c for c in await provider.list_resource_templates() if is_enabled(c)]
    return found


def token_of(scope: Scope) -> AccessToken:
    """The token a key of ``scope`` should carry: its scope and every narrower one."""
    granted = [s.value for s in HIERARCHY[: HIERARCHY.index(scope) + 1]]
    return AccessToken(token="probe", client_id="probe", scopes=granted)


async def admits(component: Tool | Prompt | Resource | ResourceTemplate, scope: Scope) -> bool:
    """Whether the component's own auth check admits a key of ``scope``."""
    if component.auth is None:
        return True  # the transport already demands an authenticated (read) key
    try:
        return await run_auth_checks(component.auth, AuthContext(token_of(scope), component))
    except AuthorizationError:
        return False


def prompt_arguments(app: FastAPI, prompt: Prompt) -> dict[str, str]:
    """The catalog's worked example, or a placeholder for each required argument."""
    if prompt.name in catalog_of(app):
        return on_the_wire(catalog_of(app).get(prompt.name).definition.example_arguments)
    return {argument.name: "x" for argument in prompt.arguments or () if argument.required}


@dataclass(frozen=True, slots=True)
class McpCall:
    """One JSON-RPC request of the matrix."""

    method: str
    params: dict[str, Any]

    @property
    def label(self) -> str:
        target = self.params.get("name") or self.params.get("uri") or ""
        return f"{self.method} {target}".strip()


# How a client of each era opens: a legacy session, or the 2026-07-28 discovery (which has
# no ping: every request stands alone).
OPENING = {"legacy": McpCall("initialize", INITIALIZE), "auto": McpCall("server/discover", {})}
CONNECTION_METHODS = ("initialize", "server/discover", "ping")
ERAS = pytest.mark.parametrize("mode", list(OPENING), ids=["legacy", "2026-07-28"])


def mcp_calls(app: FastAPI, offered: Components, mode: str) -> list[McpCall]:
    """Every method the matrix covers in ``mode``'s era, with one ``get``/``read`` each."""
    gets = [
        McpCall("prompts/get", {"name": p.name, "arguments": prompt_arguments(app, p)})
        for p in offered.prompts
    ]
    reads = [McpCall("resources/read", {"uri": str(r.uri)}) for r in offered.resources]
    opening = OPENING[mode]
    return [
        opening,
        *([McpCall("ping", {})] if opening.method == "initialize" else []),
        McpCall("prompts/list", {}),
        *gets,
        McpCall("tools/list", {}),
        McpCall("resources/list", {}),
        McpCall("resources/templates/list", {}),
        *reads,
    ]


async def expected_calls(offered: Components, scope: Scope, calls: list[McpCall]) -> dict[str, str]:
    """What a client with a key of ``scope`` should see of each of ``calls``."""
    prompts = [p.name for p in offered.prompts if await admits(p, scope)]
    tools = [t.name for t in offered.tools if await admits(t, scope)]
    resources = [str(r.uri) for r in offered.resources if await admits(r, scope)]
    templates = [t.uri_template for t in offered.templates if await admits(t, scope)]
    expected = {
        **{
            c.label: ALLOWED for c in calls if c.method in ("initialize", "server/discover", "ping")
        },
        "prompts/list": f"lists {sorted(set(prompts))}",
        "tools/list": f"lists {sorted(set(tools))}",
        "resources/list": f"lists {sorted(set(resources))}",
        "resources/templates/list": f"lists {sorted(set(templates))}",
    }
    for p in offered.prompts:
        expected[f"prompts/get {p.name}"] = ALLOWED if p.name in prompts else REFUSED
    for r in offered.resources:
        expected[f"resources/read {r.uri}"] = ALLOWED if str(r.uri) in resources else REFUSED
    return expected


async def attempt(session: Client[StreamableHttpTransport], call: McpCall) -> str:
    """One call in an open session: a listing's names, ``allowed``, or ``refused``."""
    listed: list[str]
    try:
        match call.method:
            case "prompts/list":
                listed = [p.name for p in await session.list_prompts()]
            case "tools/list":
                listed = [t.name for t in await session.list_tools()]
            case "resources/list":
                listed = [str(r.uri) for r in await session.list_resources()]
            case "resources/templates/list":
                listed = [t.uri_template for t in await session.list_resource_templates()]
            case "ping":
                return ALLOWED if await session.ping() else REFUSED
            case "prompts/get":
                await session.get_prompt(call.params["name"], call.params["arguments"])
                return ALLOWED
            case "resources/read":
                await session.read_resource(call.params["uri"])
                return ALLOWED
            case _:
                raise ValueError(f"the matrix cannot send {call.method!r} in a session")
    except (MCPError, FastMCPError):
        return REFUSED
    return f"lists {sorted(set(listed))}"


async def session_calls(app: FastAPI, key: str, calls: list[McpCall], mode: str) -> dict[str, str]:
    """What a real MCP client in ``mode`` presenting ``key`` over HTTP sees of each call;
    connecting is the opening call."""
    opening, *rest = calls
    seen: dict[str, str] = {}
    try:
        async with mcp_over_http(app, key=key, mode=mode) as session:
            seen[opening.label] = ALLOWED
            for call in rest:
                seen[call.label] = await attempt(session, call)
    except httpx2.HTTPStatusError as refused:
        seen[opening.label] = outcome(refused.response)
    return seen


async def raw_outcome(client: httpx.AsyncClient, call: McpCall, credential: Credential) -> str:
    """A bare JSON-RPC POST to the mount, as a client without a usable key sends it."""
    message = {"jsonrpc": "2.0", "id": 1, "method": call.method, "params": call.params}
    with anyio.fail_after(10):
        response = await client.post(
            MCP_MOUNT, json=message, headers={**MCP_ACCEPT, **credential.headers}
        )
    return outcome(response)


@ERAS
@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
async def test_every_mcp_method_answers_every_credential_as_its_scope_says(
    stateless: bool, mode: str
) -> None:
    app = create_app(Settings(mcp_stateless=stateless, **UNTHROTTLED))  # type: ignore[arg-type]
    mismatches: list[str] = []
    async with serving(app, scope=None) as client:
        kinds = await credentials(app)
        offered = await components(state_of(app).mcp)
        calls = mcp_calls(app, offered, mode)
        for credential in kinds:
            if credential.scope is None:
                want = f"401 {INVALID_TOKEN}" if credential.key else f"401 {REALM}"
                seen = {c.label: await raw_outcome(client, c, credential) for c in calls}
                expected = dict.fromkeys(seen, want)
            else:
                assert credential.key is not None
                with anyio.fail_after(30):
                    seen = await session_calls(app, credential.key, calls, mode)
                expected = await expected_calls(offered, credential.scope, calls)
            mismatches += [
                f"{label} [{credential.kind}]: want {want}, got {seen.get(label)}"
                for label, want in expected.items()
                if seen.get(label) != want
            ]

    assert not mismatches, "\n".join(mismatches)


def undeclared_tools(offered: Components) -> list[str]:
    """Tools with no auth check: the transport's read key would be enough to call them."""
    return sorted(tool.name for tool in offered.tools if tool.auth is None)


async def test_every_mcp_tool_declares_the_scope_it_needs(app: FastAPI) -> None:
    async with Client(state_of(app).mcp) as anonymous:
        reachable_without_a_token = [t.name for t in await anonymous.list_tools()]

    assert undeclared_tools(await components(state_of(app).mcp)) == []
    assert reachable_without_a_token == []


async def test_a_tool_without_an_auth_check_is_reported(app: FastAPI) -> None:
    def unguarded() -> str:
        return "spent tokens"

    state_of(app).mcp.tool(unguarded)

    assert undeclared_tools(await components(state_of(app).mcp)) == ["unguarded"]


@ERAS
async def test_a_tool_needing_write_is_hidden_from_read_keys_and_sees_the_callers_identity(
    app: FastAPI, mode: str
) -> None:
    def whoami() -> dict[str, Any]:
        token = get_access_token()
        assert token is not None
        return {"client_id": token.client_id, "scopes": token.scopes}

    state_of(app).mcp.tool(whoami, auth=require_scopes("write"))
    async with serving(app, scope=None):
        read_key = await issue_key(app, Scope.READ)
        write_key = await issue_key(app, Scope.WRITE)
        with anyio.fail_after(30):
            async with mcp_over_http(app, key=read_key, mode=mode) as reader:
                listed_to_reader = [t.name for t in await reader.list_tools()]
                with pytest.raises(ToolError, match="Unknown tool: 'whoami'"):
                    await reader.call_tool("whoami", {})
            async with mcp_over_http(app, key=write_key, mode=mode) as writer:
                listed_to_writer = [t.name for t in await writer.list_tools()]
                called = await writer.call_tool("whoami", {})

    assert listed_to_reader == []
    assert "whoami" in listed_to_writer
    assert called.structured_content == {
        "client_id": parse_key(write_key).key_id,
        "scopes": ["read", "write"],
    }
