"""Health of the running service, derived from individual checks."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class CheckStatus(StrEnum):
    """Outcome of one health check."""

    OK = "ok"
    FAIL = "fail"


class OverallStatus(StrEnum):
    """The service's health as a whole."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """One dependency's check: critical failures make the service unhealthy."""

    name: str
    status: CheckStatus
    latency_ms: float
    critical: bool = True
    detail: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a check needs a name")
        if self.latency_ms < 0:
            raise ValueError("latency must be non-negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthStatus:
    """The detailed health report served at /health."""

    status: OverallStatus
    version: str
    uptime_seconds: float
    timestamp: datetime
    checks: tuple[CheckResult, ...] = ()

    def __post_init__(self) -> None:
        if self.uptime_seconds < 0:
            raise ValueError("uptime must be non-negative")
        if not self.version:
            raise ValueError("version must not be empty")
        if self.timestamp.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")

    @property
    def is_serving(self) -> bool:
        """Whether the service can take traffic (healthy or degraded)."""
        return self.status is not OverallStatus.UNHEALTHY


def overall_status(checks: tuple[CheckResult, ...]) -> OverallStatus:
    """Combine checks: any critical failure is unhealthy, any other failure degraded."""
    failed = [c for c in checks if c.status is CheckStatus.FAIL]
    if any(c.critical for c in failed):
        return OverallStatus.UNHEALTHY
    if failed:
        return OverallStatus.DEGRADED
    return OverallStatus.HEALTHY


def assess(
    checks: tuple[CheckResult, ...], *, version: str, started_at: datetime, now: datetime
) -> HealthStatus:
    """Build the health report from checks taken at ``now``."""
    return HealthStatus(
        status=overall_status(checks),
        version=version,
        uptime_seconds=max(0.0, (now - started_at).total_seconds()),
        timestamp=now,
        checks=checks,
    )
