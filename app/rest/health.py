"""Health endpoints for probes and people: liveness, readiness, detailed status."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from app.deps import State
from app.state import AppState
from domain.health import CheckResult, CheckStatus, HealthStatus, OverallStatus, assess
from domain.ports import KeyStoreUnavailable

TAG = "health"
KEY_STORE_TIMEOUT = 2.0


class CheckOut(BaseModel):
    """One health check's result."""

    name: str
    status: CheckStatus
    critical: bool
    latency_ms: float
    detail: str


class HealthOut(BaseModel):
    """The detailed health report."""

    status: OverallStatus
    version: str
    uptime_seconds: float
    timestamp: datetime
    checks: list[CheckOut]


class LiveOut(BaseModel):
    """Liveness answer: the process and its event loop respond."""

    status: Literal["alive"] = "alive"


class ReadyOut(BaseModel):
    """Readiness answer, with the checks behind it."""

    status: Literal["ready", "not_ready"]
    checks: list[CheckOut] = Field(default_factory=list)


async def _timed(name: str, probe: Callable[[], Awaitable[tuple[bool, str]]]) -> CheckResult:
    started = perf_counter()
    passed, detail = await probe()
    return CheckResult(
        name=name,
        status=CheckStatus.OK if passed else CheckStatus.FAIL,
        latency_ms=round((perf_counter() - started) * 1000, 3),
        detail=detail,
    )


def lifecycle_check(state: AppState) -> CheckResult:
    """Whether the application is started and not draining; read fresh on every probe.

    Draining is not a fault: it fails readiness, so traffic moves away, but only degrades
    the detailed health, since requests are still served.
    """
    if not state.ready:
        return CheckResult(
            name="lifecycle",
            status=CheckStatus.FAIL,
            latency_ms=0.0,
            detail="starting or shutting down",
        )
    if state.draining:
        return CheckResult(
            name="lifecycle",
            status=CheckStatus.FAIL,
            latency_ms=0.0,
            critical=False,
            detail="draining before shutdown",
        )
    return CheckResult(name="lifecycle", status=CheckStatus.OK, latency_ms=0.0, detail="started")


async def dependency_checks(state: AppState) -> tuple[CheckResult, ...]:
    """Check the parts the service needs to serve requests, the key store included."""

    async def catalog() -> tuple[bool, str]:
        count = len(state.catalog)
        return count > 0, f"{count} prompts loaded"

    async def mcp_transport() -> tuple[bool, str]:
        running = state.mcp_transport_running()
        return running, "session manager running" if running else "session manager stopped"

    async def key_store() -> tuple[bool, str]:
        try:
            with anyio.fail_after(KEY_STORE_TIMEOUT):
                await state.key_store.ping()
        except (KeyStoreUnavailable, TimeoutError) as exc:
            return False, f"unavailable: {type(exc).__name__}"
        return True, "answering"

    return (
        await _timed("catalog", catalog),
        await _timed("mcp_transport", mcp_transport),
        await _timed("key_store", key_store),
    )


async def run_checks(state: AppState) -> tuple[CheckResult, ...]:
    """The lifecycle, fresh, then the dependency checks shared by all probes for up to
    ``state.health_checks.max_age`` seconds (taken again at once when the lifecycle flips)."""
    dependencies = await state.health_checks.get(lambda: dependency_checks(state), key=state.ready)
    return (lifecycle_check(state), *dependencies)


def is_ready(state: AppState, checks: tuple[CheckResult, ...]) -> bool:
    """Whether to take new traffic: not draining, and every critical check passes."""
    return not state.draining and all(c.status is CheckStatus.OK for c in checks if c.critical)


def _check_out(check: CheckResult) -> CheckOut:
    return CheckOut(
        name=check.name,
        status=check.status,
        critical=check.critical,
        latency_ms=check.latency_ms,
        detail=check.detail,
    )


async def health_report(state: AppState) -> HealthStatus:
    """The detailed health of ``state`` right now."""
    return assess(
        await run_checks(state),
        version=state.version,
        started_at=state.started_at,
        now=datetime.now(UTC),
    )


def build_router() -> APIRouter:
    """Health routes; they need no credentials."""
    router = APIRouter(prefix="/health", tags=[TAG])
    unavailable: dict[int | str, dict[str, Any]] = {
        503: {"description": "Not ready, or unhealthy."}
    }

    @router.get("/live", operation_id="health_live", summary="Liveness probe")
    async def live() -> LiveOut:
        return LiveOut()

    @router.get(
        "/ready", operation_id="health_ready", summary="Readiness probe", responses=unavailable
    )
    async def ready(state: State, response: Response) -> ReadyOut:
        checks = await run_checks(state)
        passed = is_ready(state, checks)
        response.status_code = 200 if passed else 503
        return ReadyOut(
            status="ready" if passed else "not_ready", checks=[_check_out(c) for c in checks]
        )

    @router.get("", operation_id="health", summary="Detailed health", responses=unavailable)
    async def health(state: State, response: Response) -> HealthOut:
        report = await health_report(state)
        response.status_code = 200 if report.is_serving else 503
        return HealthOut(
            status=report.status,
            version=report.version,
            uptime_seconds=round(report.uptime_seconds, 3),
            timestamp=report.timestamp,
            checks=[_check_out(c) for c in report.checks],
        )

    return router
