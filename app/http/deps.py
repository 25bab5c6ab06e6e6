"""FastAPI dependencies, as ``Annotated`` aliases routes declare by type."""

from typing import Annotated

from fastapi import Depends, Request

from app.http.security import require_scope
from app.services.generation import DocumentGenerator
from app.services.health import HealthService
from app.services.keys import KeyService
from app.state import AppState
from domain.keys import Principal, Scope
from infrastructure.catalog.catalog import PromptCatalog

# Dependencies are coroutines: FastAPI runs a plain ``def`` dependency in its thread pool,
# a hand-off per request for what is an attribute read.


def state_of(request: Request) -> AppState:
    """The running application's state."""
    state: AppState = request.app.state.ctxfy
    return state


async def get_state(request: Request) -> AppState:
    """The running application's state, as a dependency."""
    return state_of(request)


async def get_catalog(request: Request) -> PromptCatalog:
    """The prompt catalog serving now (a reload swaps it; a request keeps the one it got)."""
    return state_of(request).catalog.current


async def get_keys(request: Request) -> KeyService:
    """The key service."""
    return state_of(request).keys


async def get_generator(request: Request) -> DocumentGenerator:
    """The generation service."""
    return state_of(request).generator


async def get_health(request: Request) -> HealthService:
    """The health service the probes ask."""
    return state_of(request).health


Catalog = Annotated[PromptCatalog, Depends(get_catalog)]
Keys = Annotated[KeyService, Depends(get_keys)]
Generator = Annotated[DocumentGenerator, Depends(get_generator)]
Health = Annotated[HealthService, Depends(get_health)]
Admin = Annotated[Principal, Depends(require_scope(Scope.ADMIN))]
