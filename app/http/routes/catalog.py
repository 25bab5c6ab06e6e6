"""The catalog as a whole: what is serving, and reloading it from the prompt files (admin)."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from app.http.deps import get_state
from app.http.errors import SECURED, CatalogReloadFailed, responses
from app.http.security import InsufficientScope, require_scope
from app.services.catalog import ReloadOutcome, ReloadReport, ReloadTrigger
from app.state import AppState
from domain.keys import Scope

PREFIX = "/v1/catalog"
TAG = "catalog"

State = Annotated[AppState, Depends(get_state)]


class ReloadOut(BaseModel):
    """One reload: how it ended, the catalog serving after it, and what changed."""

    trigger: ReloadTrigger
    outcome: ReloadOutcome
    at: datetime
    duration_ms: float
    digest: str = Field(description="SHA-256 of the catalog serving after the reload.")
    prompts: int
    versions: int
    added: list[str] = Field(
        description="Versions added (`name@version`); an edited version is removed and added.",
        examples=[["prp@1.1.0"]],
    )
    removed: list[str] = Field(description="Versions removed (`name@version`).")
    current_changed: list[str] = Field(
        description="Prompts whose current version (what unpinned requests get) changed."
    )
    error: str | None = Field(
        None, description="Why a failed reload was refused; the previous catalog kept serving."
    )


class CatalogOut(BaseModel):
    """The catalog serving now."""

    digest: str = Field(description="SHA-256 of every version's file: the catalog's identity.")
    prompts: int
    versions: int
    last_reload: ReloadOut | None = Field(description="The latest reload, whatever its outcome.")
    last_failure: ReloadOut | None = Field(description="The latest reload that was refused.")


def reload_out(report: ReloadReport) -> ReloadOut:
    """The REST shape of a reload report."""
    change = report.change
    return ReloadOut(
        trigger=report.trigger,
        outcome=report.outcome,
        at=report.at,
        duration_ms=report.duration_ms,
        digest=report.digest,
        prompts=report.prompts,
        versions=report.versions,
        added=list(change.added),
        removed=list(change.removed),
        current_changed=list(change.current_changed),
        error=report.error,
    )


def build_router() -> APIRouter:
    """Catalog routes: its state (``read``) and a reload (``admin``)."""
    router = APIRouter(
        prefix=PREFIX,
        tags=[TAG],
        dependencies=[Depends(require_scope(Scope.READ))],
        responses=responses(*SECURED),
    )

    @router.get("", operation_id="get_catalog", summary="Describe the catalog")
    async def get_catalog(state: State) -> CatalogOut:
        live = state.catalog
        serving = live.current
        last, failure = live.last_reload, live.last_failure
        return CatalogOut(
            digest=serving.digest,
            prompts=len(serving),
            versions=serving.version_count,
            last_reload=reload_out(last) if last else None,
            last_failure=reload_out(failure) if failure else None,
        )

    @router.post(
        "/reload",
        operation_id="reload_catalog",
        summary="Reload the prompt files",
        description="Loads and checks every prompt file again and, only if all of them "
        "pass, serves the new catalog in one step (on every worker of this server): new "
        "versions are served, routes and OpenAPI operations follow, connected MCP sessions "
        "are told the lists changed. A broken file changes nothing and is answered 409 with "
        "the file, prompt, version and field. Needs the `admin` scope.",
        responses=responses(InsufficientScope, CatalogReloadFailed),
        dependencies=[Depends(require_scope(Scope.ADMIN))],
    )
    async def reload_catalog(state: State) -> ReloadOut:
        report = await state.catalog.reload(ReloadTrigger.API)
        if report.outcome is ReloadOutcome.FAILED:
            raise CatalogReloadFailed(report.error or "the catalog could not be loaded")
        state.reload_siblings()
        return reload_out(report)

    return router
