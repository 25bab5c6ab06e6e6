"""REST prompt endpoints: list, describe and versions (cacheable), the typed operations of
every version, and swapping them all for new ones when the catalog reloads."""

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import Response
from starlette.routing import BaseRoute

from app.http.errors import SECURED, responses
from app.http.etag import IfNoneMatch, cacheable
from app.http.request_context import access_line
from app.http.routes.prompt_operations import QueryVersion, add_operations
from app.http.routes.prompt_views import CatalogViews, PromptDetail, PromptList, VersionList
from app.http.security import require_scope
from domain.errors import PromptNotFound
from domain.keys import Scope
from domain.prompts import VERSION_PATTERN
from infrastructure.catalog.catalog import PromptCatalog

PREFIX = "/v1/prompts"
TAG = "prompts"

Name = Annotated[
    str,
    Path(
        description="The prompt's name, or `name@version` to pin one version.",
        examples=["context_stack"],
    ),
]
Version = Annotated[
    str | None,
    Query(
        pattern=VERSION_PATTERN.pattern,
        description="Pin this version, as `name@version` in the path does; unpinned, the "
        "current version: the newest that is not deprecated.",
        examples=["1.0.0"],
    ),
]


# Routers built per (catalog digest, revision): building one costs 0.1-0.2 s per catalog, and
# an app (each worker, each reload back to a known catalog, each test) reuses what it can.
_ROUTERS_KEPT = 4
_routers: dict[tuple[str, str], APIRouter] = {}


def router_for(catalog: PromptCatalog, *, revision: str) -> APIRouter:
    """``build_router``'s router for ``catalog``, shared by catalogs of the same content.

    Two catalogs with one digest hold the same files, so their routes answer alike.
    """
    key = (catalog.digest, revision)
    router = _routers.pop(key, None) or build_router(catalog, revision=revision)
    _routers[key] = router  # the most recently used last
    while len(_routers) > _ROUTERS_KEPT:
        del _routers[next(iter(_routers))]
    return router


def build_router(catalog: PromptCatalog, *, revision: str) -> APIRouter:
    """Prompt routes serving ``catalog``, and only it: a reload builds new ones.

    ``revision`` is what the bodies depend on besides the catalog (the server's version).
    """
    views = CatalogViews(catalog, revision=revision)
    router = APIRouter(
        prefix=PREFIX,
        tags=[TAG],
        dependencies=[Depends(require_scope(Scope.READ))],
        responses=responses(*SECURED),
    )

    @router.get(
        "",
        operation_id="list_prompts",
        summary="List prompts",
        description="Each prompt once, in its current version, with the versions it has.",
        response_model=PromptList,
        responses=cacheable(),
    )
    async def list_prompts(if_none_match: IfNoneMatch = None) -> Response:
        return views.listing.respond(if_none_match)

    @router.get(
        "/{name}",
        operation_id="get_prompt",
        summary="Describe a prompt",
        description="The current version, or the one pinned by `name@version` or `?version=`.",
        response_model=PromptDetail,
        responses={**responses(PromptNotFound), **cacheable()},
    )
    async def get_prompt(
        name: Name, request: Request, version: Version = None, if_none_match: IfNoneMatch = None
    ) -> Response:
        entry = catalog.resolve(name, version)
        line = access_line(request.scope)
        if line is not None:
            line.prompt_served(entry.definition)
        return views.detail(entry).respond(if_none_match)

    @router.get(
        "/{name}/versions",
        operation_id="list_prompt_versions",
        summary="List a prompt's versions",
        description="Every version, newest first; pin one as `name@version` or `?version=`.",
        response_model=VersionList,
        responses={**responses(PromptNotFound), **cacheable()},
    )
    async def list_versions(name: Name, if_none_match: IfNoneMatch = None) -> Response:
        return views.versions(name).respond(if_none_match)

    add_operations(router, catalog)

    @router.post("/{name}/preview", include_in_schema=False)
    async def preview_unknown(name: str, version: QueryVersion = None) -> None:
        # Every version has its own route above; only unknown names and versions reach here.
        catalog.resolve(name, version)
        raise PromptNotFound(name)

    @router.post(
        "/{name}/generate",
        include_in_schema=False,
        dependencies=[Depends(require_scope(Scope.WRITE))],
    )
    async def generate_unknown(name: str, version: QueryVersion = None) -> None:
        # Versions that generate have their own route above; the rest answer 404.
        catalog.resolve(name, version)
        raise HTTPException(
            404, f"Prompt {name!r} does not generate documents; preview it instead."
        )

    return router


class PromptRoutes:
    """The prompt routes of a running app, replaced whole when the catalog changes.

    The new routes are built completely, then swapped in with no await in between, so a
    request sees either every old route or every new one; one already running keeps the
    entry its route was built with. The cached OpenAPI document is dropped with them.
    """

    def __init__(self, app: FastAPI, catalog: PromptCatalog, *, revision: str) -> None:
        self._app = app
        self._revision = revision
        self._routes = self._include(router_for(catalog, revision=revision))

    def _include(self, router: APIRouter) -> list[BaseRoute]:
        routes = self._app.router.routes
        before = len(routes)
        self._app.include_router(router)
        return routes[before:]

    def replace(self, catalog: PromptCatalog) -> None:
        """Serve ``catalog``'s routes in place of the current ones."""
        router = router_for(catalog, revision=self._revision)
        routes = self._app.router.routes
        start = next(i for i, route in enumerate(routes) if route is self._routes[0])
        end = start + len(self._routes)
        added = self._include(router)
        del routes[-len(added) :]
        routes[start:end] = added
        self._routes = added
        self._app.openapi_schema = None
