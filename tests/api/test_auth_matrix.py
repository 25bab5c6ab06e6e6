"""Who may call what: every REST route against every kind of credential.

The matrix is generated from the app itself (its routes and their declared ``RequireScope``
dependencies), so a new route is covered, or fails a test, without anyone editing this file.
The MCP server's components have their own matrix, in ``test_auth_mcp_matrix.py``.
"""

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import BaseRoute, Match, Mount, Route

from app.http.auth import is_public
from app.http.security import RequireScope
from app.main import create_app
from app.settings import Settings
from domain.generation_records import new_record_id
from domain.keys import Scope, parse_key
from tests.api.harness import catalog_of, issue_key, serving
from tests.api.keys_helpers import (
    ALLOWED,
    HIERARCHY,
    INVALID_TOKEN,
    MCP_MOUNT,
    REALM,
    UNTHROTTLED,
    Credential,
    credentials,
    insufficient_scope,
    outcome,
)

pytestmark = pytest.mark.anyio

PARAMETER = re.compile(r"\{(\w+)(?::[^}]*)?\}")
FRESH_KEY_ID = "0123456789abcdef"  # replaced by a throwaway key's id in every request
BODIES: dict[tuple[str, str], Any] = {("POST", "/v1/keys"): {"user_id": "made-by", "scope": "read"}}


@pytest.fixture
def app() -> FastAPI:
    return create_app(Settings(**UNTHROTTLED))  # type: ignore[arg-type]


def grants(held: Scope, needed: Scope) -> bool:
    """Whether a key of ``held`` may do what ``needed`` allows: read ⊂ write ⊂ admin."""
    return HIERARCHY.index(held) >= HIERARCHY.index(needed)


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
            # A mount is audited by the MCP matrix, or public as a whole (the docs assets).
            if path != MCP_MOUNT and not is_public(path + "/"):
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
        values = {
            "name": [first_prompt, "no_such_prompt"],
            "key_id": [FRESH_KEY_ID],
            "generation_id": [new_record_id(datetime.now(UTC))],
        }
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
                    request_id = response.headers["x-request-id"].encode()
                    bodies_of_401.add(response.content.replace(request_id, b"<request id>"))

    assert not mismatches, "\n".join(mismatches)
    assert len(bodies_of_401) == 1, bodies_of_401
