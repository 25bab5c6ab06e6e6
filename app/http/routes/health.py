"""Health endpoints for probes and people: liveness, readiness, detailed status."""

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from app.http.deps import Health
from domain.health import CheckResult, CheckStatus, OverallStatus

TAG = "health"


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


def _check_out(check: CheckResult) -> CheckOut:
    return CheckOut(
        name=check.name,
        status=check.status,
        critical=check.critical,
        latency_ms=check.latency_ms,
        detail=check.detail,
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
    async def ready(service: Health, response: Response) -> ReadyOut:
        checks = await service.checks()
        passed = service.is_ready(checks)
        response.status_code = 200 if passed else 503
        return ReadyOut(
            status="ready" if passed else "not_ready", checks=[_check_out(c) for c in checks]
        )

    @router.get("", operation_id="health", summary="Detailed health", responses=unavailable)
    async def health(service: Health, response: Response) -> HealthOut:
        report = await service.report()
        response.status_code = 200 if report.is_serving else 503
        return HealthOut(
            status=report.status,
            version=report.version,
            uptime_seconds=round(report.uptime_seconds, 3),
            timestamp=report.timestamp,
            checks=[_check_out(c) for c in report.checks],
        )

    return router
