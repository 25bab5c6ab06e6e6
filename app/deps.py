"""FastAPI dependencies, as ``Annotated`` aliases routes declare by type."""

from typing import Annotated

from fastapi import Depends, Request

from app.auth.scopes import require_scope
from app.state import AppState
from domain.keys import Principal, Scope
from infrastructure.catalog.catalog import PromptCatalog


def get_state(request: Request) -> AppState:
    """The running application's state."""
    state: AppState = request.app.state.ctxfy
    return state


def get_catalog(request: Request) -> PromptCatalog:
    """The prompt catalog the application serves."""
    return get_state(request).catalog


State = Annotated[AppState, Depends(get_state)]
Catalog = Annotated[PromptCatalog, Depends(get_catalog)]

Reader = Annotated[Principal, Depends(require_scope(Scope.READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.WRITE))]
Admin = Annotated[Principal, Depends(require_scope(Scope.ADMIN))]
