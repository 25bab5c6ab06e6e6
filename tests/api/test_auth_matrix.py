"""Who may call what: every REST route and MCP method against every kind of credential.

The matrix is generated from the app itself (its routes, their declared ``RequireScope``
dependencies, the MCP server's components), so a new route or component is covered, or
fails a test, without anyone editing this file.
"""

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import RouteContext, iter_route_contexts
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import AuthorizationError, FastMCPError, ToolError
from fastmcp.prompts import Prompt
from fastmcp.resources import Resource, ResourceTemplate
from fastmcp.server.auth import AccessToken, AuthContext, require_scopes, run_auth_checks
from fastmcp.server.dependencies import get_access_token
from fastmcp.server.transforms import is_enabled
from fastmcp.tools import Tool
from mcp import McpError
from starlette.routing import BaseRoute, Match, Mount, Route

from app.http.auth import is_public
from app.http.security import RequireScope
from app.main import create_app
from app.settings import Settings
from domain.keys import Scope, parse_key
from tests.api.harness import (
    bearer,
    catalog_of,
    issue_key,
    mcp_over_http,
    on_the_wire,
    serving,
    state_of,
)
from tests.api.keys_helpers import (
    INVALID_TOKEN,
    MCP_ACCEPT,
    REALM,
    REFUSED_KINDS,
    Credential,
    credentials,
    insufficient_scope,
    refused_key,
)
from tests.fakes import verifications

pytestmark = pytest.mark.anyio

HIERARCHY = (Scope.READ, Scope.WRITE, Scope.ADMIN)  # each includes the ones before it
PUBLIC = ("/health", "/health/live", "/health/ready", "/docs", "/redoc", "/openapi.json")
MCP_MOUNT = "/mcp"
ALLOWED = "allowed"
REFUSED = "refused"
PARAMETER = re.compile(r"\{(\w+)(?::[^}]*)?\}")
FRESH_KEY_ID = "0123456789abcdef"  # replaced by a throwaway key's id in every request
BODIES: dict[tuple[str, str], Any] = {("POST", "/v1/keys"): {"user_id": "made-by", "scope": "read"}}


def grants(held: Scope, needed: Scope) -> bool:
    """Whether a key of ``held`` may do what ``needed`` allows: read ⊂ write ⊂ admin."""
    return HIERARCHY.index(held) >= HIERARCHY.index(needed)


def outcome(response: httpx.Response) -> str:
    """How the auth layer answered: a refusal with its challenge, or not a refusal."""
    status = response.status_code
    if status in (401, 403):
        return f"{status} {response.headers.get('www-authenticate', '<no challenge>')}"
    return ALLOWED if status < 500 else f"{status} server error"


# --- REST: the routes and the scopes they declare ---------------------------------------


def declared_scopes(route: RouteContext) -> set[Scope]:
    """Every ``RequireScope`` among a route's dependencies, router-level ones included."""
    found: set[Scope] = set()
    root: Dependant | None = getattr(route, "dependant", None)
    pending = [root] if root is not None else []
    while pending:
        dependant = pending.pop()
        if isinstance(dependant.call, RequireScope):
            found.add(dependant.call.scope)
        pending.extend(dependant.dependencies)
    return found


def unaudited(app: FastAPI) -> list[str]:
    """Routes whose access rule the matrix cannot know: not public, no declared scope."""
    offenders: list[str] = []
    for route in iter_route_contexts(app.routes):
        original, path = route.original_route, str(route.path)
        if isinstance(original, Mount):
            if path != MCP_MOUNT:
                offenders.append(f"mount {path}: not covered by the MCP matrix")
        elif isinstance(original, Route):
            if not is_public(path) and not declared_scopes(route):
                methods = ",".join(sorted(route.methods or ()))
                offenders.append(f"{methods} {path}: neither public nor declares RequireScope")
        else:
            offenders.append(f"{type(original).__name__} {path}: unknown to the auth tests")
    return offenders


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One method of one route, with the access rule it declares."""

    route: RouteContext
    method: str

    @property
    def name(self) -> str:
        return f"{self.method} {self.route.path}"

    @property
    def public(self) -> bool:
        return is_public(str(self.route.path))

    @property
    def needed(self) -> Scope | None:
        return max(declared_scopes(self.route), key=HIERARCHY.index, default=None)

    def expected(self, credential: Credential) -> str:
        if self.public:
            return ALLOWED
        if credential.key is None:
            return f"401 {REALM}"
        if credential.scope is None:
            return f"401 {INVALID_TOKEN}"
        if self.needed is None:
            return "<no declared scope>"
        if not grants(credential.scope, self.needed):
            return f"403 {insufficient_scope(self.needed)}"
        return ALLOWED


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every method of every REST and documentation route (MCP has its own matrix)."""
    return [
        Endpoint(route, method)
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, Route)
        for method in sorted(route.methods or ())
    ]


def first_route(app: FastAPI, method: str, path: str) -> BaseRoute | None:
    """The route the app dispatches ``method path`` to."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "path_params": {}}
    for route in iter_route_contexts(app.routes):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route.original_route
    return None


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{parameter}`` replaced by its value."""
    return PARAMETER.sub(lambda match: values[match.group(1)], template)


def reaching_path(app: FastAPI, endpoint: Endpoint, values: Mapping[str, Sequence[str]]) -> str:
    """A concrete path the app dispatches to ``endpoint`` (not to an earlier, static route)."""
    template = str(endpoint.route.path)
    names = PARAMETER.findall(template)
    for chosen in itertools.product(*(values.get(name, ()) for name in names)):
        path = fill(template, dict(zip(names, chosen, strict=True)))
        if first_route(app, endpoint.method, path) is endpoint.route.original_route:
            return path
    raise LookupError(f"{endpoint.name}: no known value of {names} reaches it")


def body_for(app: FastAPI, endpoint: Endpoint, path: str) -> Any:
    """A valid minimal body where the route takes one: a prompt's example, or ``BODIES``."""
    if getattr(endpoint.route, "body_field", None) is None:
        return None
    for entry in catalog_of(app):
        if path == f"/v1/prompts/{entry.name}/preview":
            return entry.definition.example_arguments
    return BODIES.get((endpoint.method, path), {})


async def with_fresh_key_id(app: FastAPI, path: str) -> str:
    """``path`` naming a throwaway key, so revoking or rotating it harms no other case."""
    if FRESH_KEY_ID not in path:
        return path
    throwaway = await issue_key(app, Scope.READ, user_id="throwaway")
    return path.replace(FRESH_KEY_ID, parse_key(throwaway).key_id)


def test_every_route_is_public_or_declares_a_scope(app: FastAPI) -> None:
    assert unaudited(app) == []


def test_a_route_that_is_neither_public_nor_scoped_is_reported(app: FastAPI) -> None:
    async def unguarded() -> dict[str, str]:
        return {}

    app.add_api_route("/v1/unguarded", unguarded, methods=["GET"])
    app.mount("/elsewhere", FastAPI())

    assert unaudited(app) == [
        "GET /v1/unguarded: neither public nor declares RequireScope",
        "mount /elsewhere: not covered by the MCP matrix",
    ]


async def test_every_route_answers_every_credential_as_its_declared_scope_says(
    app: FastAPI,
) -> None:
    mismatches: list[str] = []
    bodies_of_401: set[bytes] = set()
    async with serving(app, scope=None) as client:
        kinds = await credentials(app)
        first_prompt = next(iter(catalog_of(app))).name
        values = {"name": [first_prompt, "no_such_prompt"], "key_id": [FRESH_KEY_ID]}
        for endpoint in endpoints(app):
            try:
                template = reaching_path(app, endpoint, values)
            except LookupError as unreachable:
                mismatches.append(str(unreachable))
                continue
            for credential in kinds:
                path = await with_fresh_key_id(app, template)
                with anyio.fail_after(10):
                    response = await client.request(
                        endpoint.method,
                        path,
                        headers=credential.headers,
                        json=body_for(app, endpoint, template),
                    )
                want, got = endpoint.expected(credential), outcome(response)
                if got != want:
                    mismatches.append(
                        f"{endpoint.name} [{credential.kind}]: want {want}, got {got}"
                    )
                if response.status_code == 401:
                    bodies_of_401.add(response.content)

    assert not mismatches, "\n".join(mismatches)
    assert len(bodies_of_401) == 1, bodies_of_401


# --- MCP: the server's components and the scopes they declare ----------------------------


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


INITIALIZE = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "ctxfy-auth-matrix", "version": "1.0.0"},
}


def mcp_calls(app: FastAPI, offered: Components) -> list[McpCall]:
    """Every method the matrix covers, with one ``get``/``read`` per component."""
    gets = [
        McpCall("prompts/get", {"name": p.name, "arguments": prompt_arguments(app, p)})
        for p in offered.prompts
    ]
    reads = [McpCall("resources/read", {"uri": str(r.uri)}) for r in offered.resources]
    return [
        McpCall("initialize", INITIALIZE),
        McpCall("ping", {}),
        McpCall("prompts/list", {}),
        *gets,
        McpCall("tools/list", {}),
        McpCall("resources/list", {}),
        McpCall("resources/templates/list", {}),
        *reads,
    ]


async def expected_calls(offered: Components, scope: Scope) -> dict[str, str]:
    """What a session with a key of ``scope`` should see of each call."""
    prompts = [p.name for p in offered.prompts if await admits(p, scope)]
    tools = [t.name for t in offered.tools if await admits(t, scope)]
    resources = [str(r.uri) for r in offered.resources if await admits(r, scope)]
    templates = [t.uri_template for t in offered.templates if await admits(t, scope)]
    expected = {
        "initialize": ALLOWED,
        "ping": ALLOWED,
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
                listed = [t.uriTemplate for t in await session.list_resource_templates()]
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
    except (McpError, FastMCPError):
        return REFUSED
    return f"lists {sorted(set(listed))}"


async def session_calls(app: FastAPI, key: str, calls: list[McpCall]) -> dict[str, str]:
    """What a real MCP client presenting ``key`` over HTTP sees of each call."""
    seen: dict[str, str] = {}
    try:
        async with mcp_over_http(app, key=key) as session:
            seen["initialize"] = ALLOWED
            for call in calls:
                if call.method != "initialize":
                    seen[call.label] = await attempt(session, call)
    except httpx.HTTPStatusError as refused:
        seen["initialize"] = outcome(refused.response)
    return seen


async def raw_outcome(client: httpx.AsyncClient, call: McpCall, credential: Credential) -> str:
    """A bare JSON-RPC POST to the mount, as a client without a usable key sends it."""
    message = {"jsonrpc": "2.0", "id": 1, "method": call.method, "params": call.params}
    with anyio.fail_after(10):
        response = await client.post(
            MCP_MOUNT, json=message, headers={**MCP_ACCEPT, **credential.headers}
        )
    return outcome(response)


@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
async def test_every_mcp_method_answers_every_credential_as_its_scope_says(
    stateless: bool,
) -> None:
    app = create_app(Settings(mcp_stateless=stateless))
    mismatches: list[str] = []
    async with serving(app, scope=None) as client:
        kinds = await credentials(app)
        offered = await components(state_of(app).mcp)
        calls = mcp_calls(app, offered)
        for credential in kinds:
            if credential.scope is None:
                want = f"401 {INVALID_TOKEN}" if credential.key else f"401 {REALM}"
                seen = {c.label: await raw_outcome(client, c, credential) for c in calls}
                expected = dict.fromkeys(seen, want)
            else:
                assert credential.key is not None
                with anyio.fail_after(30):
                    seen = await session_calls(app, credential.key, calls)
                expected = await expected_calls(offered, credential.scope)
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


async def test_a_tool_needing_write_is_hidden_from_read_keys_and_sees_the_callers_identity(
    app: FastAPI,
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
            async with mcp_over_http(app, key=read_key) as reader:
                listed_to_reader = [t.name for t in await reader.list_tools()]
                with pytest.raises(ToolError, match="Unknown tool: 'whoami'"):
                    await reader.call_tool("whoami", {})
            async with mcp_over_http(app, key=write_key) as writer:
                listed_to_writer = [t.name for t in await writer.list_tools()]
                called = await writer.call_tool("whoami", {})

    assert listed_to_reader == []
    assert "whoami" in listed_to_writer
    assert called.structured_content == {
        "client_id": parse_key(write_key).key_id,
        "scopes": ["read", "write"],
    }


# --- The edges: public paths, headers, discovery, identical refusals, argon2 ------------


@pytest.mark.parametrize("path", [*PUBLIC, "/metrics"])
async def test_public_paths_answer_without_a_key_even_beside_a_bad_one(
    app: FastAPI, path: str
) -> None:
    exists = any(route.path == path for route in iter_route_contexts(app.routes))
    async with serving(app, scope=None) as client:
        with anyio.fail_after(10):
            anonymous = await client.get(path)
            with_bad_key = await client.get(path, headers={"Authorization": "Bearer not-a-key"})

    assert is_public(path)
    assert anonymous.status_code == with_bad_key.status_code == (200 if exists else 404)


@pytest.mark.parametrize("path", ["/", "/v1/prompts", "/v1/keys", "/mcp", "/mcp/", "/docs/x"])
def test_nothing_else_is_public(path: str) -> None:
    assert not is_public(path)


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
    ],
)
async def test_no_oauth_discovery_metadata_is_offered(app: FastAPI, path: str) -> None:
    async with serving(app, scope=None) as client:
        admin_key = await issue_key(app, Scope.ADMIN)
        with anyio.fail_after(10):
            statuses = [
                (await client.get(path, headers=headers)).status_code
                for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"X-API-Key": admin_key})
            ]

    assert statuses == [404, 404, 404]


@pytest.mark.parametrize("parameter", ["api_key", "key", "access_token", "token", "x-api-key"])
async def test_a_key_in_the_query_string_is_ignored(app: FastAPI, parameter: str) -> None:
    async with serving(app, scope=None) as client:
        admin_key = await issue_key(app, Scope.ADMIN)
        with anyio.fail_after(10):
            rest = await client.get("/v1/prompts", params={parameter: admin_key})
            mcp = await client.post(
                MCP_MOUNT,
                params={parameter: admin_key},
                json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE},
                headers=MCP_ACCEPT,
            )

    assert outcome(rest) == outcome(mcp) == f"401 {REALM}"


async def test_the_x_api_key_header_authenticates_like_bearer(app: FastAPI) -> None:
    async with serving(app, scope=None) as client:
        read_key = await issue_key(app, Scope.READ)
        with anyio.fail_after(10):
            listed = await client.get("/v1/prompts", headers={"X-API-Key": read_key})
            keys = await client.get("/v1/keys", headers={"X-API-Key": read_key})
            initialized = await client.post(
                MCP_MOUNT,
                json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE},
                headers={**MCP_ACCEPT, "X-API-Key": read_key},
            )

    assert listed.status_code == 200
    assert outcome(keys) == f"403 {insufficient_scope(Scope.ADMIN)}"
    assert initialized.status_code == 200


async def test_every_refused_key_gets_one_identical_401_on_rest_and_mcp(app: FastAPI) -> None:
    answers: dict[str, tuple[int, str | None, bytes]] = {}
    async with serving(app, scope=None) as client:
        for kind in REFUSED_KINDS:
            key = await refused_key(app, kind)
            for header in ("Authorization", "X-API-Key"):
                value = f"Bearer {key}" if header == "Authorization" else key
                with anyio.fail_after(10):
                    rest = await client.get("/v1/prompts", headers={header: value})
                    mcp = await client.post(
                        MCP_MOUNT, json={}, headers={**MCP_ACCEPT, header: value}
                    )
                for surface, response in (("rest", rest), ("mcp", mcp)):
                    answers[f"{kind} {header} {surface}"] = (
                        response.status_code,
                        response.headers.get("www-authenticate"),
                        response.content,
                    )

    assert len(set(answers.values())) == 1, answers
    status, challenge, body = next(iter(answers.values()))
    assert (status, challenge) == (401, INVALID_TOKEN)
    assert httpx.Response(401, content=body).json() == {
        "error": "unauthorized",
        "message": "A valid API key is required (Authorization: Bearer or X-API-Key).",
        "details": [],
    }


@pytest.mark.parametrize("kind", ["malformed", "bad_checksum", "unknown_id", "revoked", "expired"])
async def test_a_key_refused_before_verification_costs_no_argon2(app: FastAPI, kind: str) -> None:
    async with serving(app, scope=None) as client:
        key = await refused_key(app, kind)
        before = verifications(state_of(app).metrics)
        with anyio.fail_after(10):
            statuses = [
                (await client.get("/v1/prompts", headers={"X-API-Key": key})).status_code
                for _ in range(3)
            ]
        after = verifications(state_of(app).metrics)

    assert statuses == [401, 401, 401]
    assert after == before


async def test_a_wrong_secret_costs_one_argon2_verification_per_attempt(app: FastAPI) -> None:
    async with serving(app, scope=None) as client:
        key = await refused_key(app, "wrong_secret")
        before = verifications(state_of(app).metrics)
        with anyio.fail_after(10):
            statuses = [
                (await client.get("/v1/prompts", headers={"X-API-Key": key})).status_code
                for _ in range(3)
            ]
        after = verifications(state_of(app).metrics)

    assert statuses == [401, 401, 401]
    assert after == before + 3


async def test_an_mcp_session_answers_only_the_key_that_opened_it_until_revoked(
    app: FastAPI,
) -> None:
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    async with serving(app, scope=None) as client:
        owner, other = await issue_key(app, Scope.READ), await issue_key(app, Scope.ADMIN)
        with anyio.fail_after(10):
            opened = await client.post(
                MCP_MOUNT,
                json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE},
                headers={**MCP_ACCEPT, "X-API-Key": owner},
            )
            session = {**MCP_ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"]}
            by_other = await client.post(MCP_MOUNT, json=ping, headers={**session, **bearer(other)})
            by_owner = await client.post(MCP_MOUNT, json=ping, headers={**session, **bearer(owner)})
            await state_of(app).keys.revoke(parse_key(owner).key_id)
            after_revoke = await client.post(
                MCP_MOUNT, json=ping, headers={**session, **bearer(owner)}
            )

    assert opened.status_code == 200
    assert by_other.status_code == 404
    assert by_owner.status_code == 200
    assert outcome(after_revoke) == f"401 {INVALID_TOKEN}"
