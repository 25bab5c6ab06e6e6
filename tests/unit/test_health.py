"""Service health derived from checks, in ``domain.health``."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.health import (
    CheckResult,
    CheckStatus,
    HealthStatus,
    OverallStatus,
    assess,
    overall_status,
)

STARTED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
OK, FAIL = CheckStatus.OK, CheckStatus.FAIL


def check(status: CheckStatus = OK, *, critical: bool = True, name: str = "db") -> CheckResult:
    return CheckResult(name=name, status=status, latency_ms=1.5, critical=critical)


def report(**changes: Any) -> HealthStatus:
    fields: dict[str, Any] = {
        "status": OverallStatus.HEALTHY,
        "version": "0.1.0",
        "uptime_seconds": 0.0,
        "timestamp": STARTED,
    }
    return HealthStatus(**(fields | changes))


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        pytest.param((), OverallStatus.HEALTHY, id="no-checks"),
        pytest.param((check(), check(critical=False)), OverallStatus.HEALTHY, id="all-ok"),
        pytest.param((check(), check(FAIL, critical=False)), OverallStatus.DEGRADED, id="optional"),
        pytest.param((check(FAIL), check()), OverallStatus.UNHEALTHY, id="critical"),
        pytest.param(
            (check(FAIL, critical=False), check(FAIL)), OverallStatus.UNHEALTHY, id="both-failing"
        ),
    ],
)
def test_overall_status_follows_the_worst_failure(
    checks: tuple[CheckResult, ...], expected: OverallStatus
) -> None:
    assert overall_status(checks) is expected


checks_strategy = st.lists(
    st.builds(
        CheckResult,
        name=st.text(min_size=1, max_size=8),
        status=st.sampled_from(CheckStatus),
        latency_ms=st.floats(min_value=0, max_value=1e6),
        critical=st.booleans(),
    ),
    max_size=6,
).map(tuple)


@given(checks=checks_strategy)
def test_the_service_is_unhealthy_exactly_when_a_critical_check_fails(
    checks: tuple[CheckResult, ...],
) -> None:
    critical_failure = any(c.critical and c.status is FAIL for c in checks)
    assert (overall_status(checks) is OverallStatus.UNHEALTHY) == critical_failure


def test_a_check_needs_a_name() -> None:
    with pytest.raises(ValueError, match="name"):
        check(name="")


def test_a_check_cannot_take_negative_time() -> None:
    with pytest.raises(ValueError, match="latency"):
        CheckResult(name="db", status=OK, latency_ms=-0.1)


def test_a_check_is_critical_and_without_detail_unless_told_otherwise() -> None:
    result = CheckResult(name="db", status=OK, latency_ms=0.0)
    assert (result.critical, result.detail) == (True, "")


def test_assess_measures_uptime_from_start_to_now() -> None:
    now = STARTED + timedelta(minutes=2, milliseconds=500)
    health = assess((check(),), version="0.1.0", started_at=STARTED, now=now)
    assert health.uptime_seconds == 120.5


def test_assess_stamps_the_report_with_now_and_keeps_the_checks() -> None:
    checks = (check(), check(FAIL, critical=False, name="llm"))
    now = STARTED + timedelta(hours=1)
    health = assess(checks, version="0.1.0", started_at=STARTED, now=now)
    assert (health.timestamp, health.checks, health.version) == (now, checks, "0.1.0")
    assert health.status is OverallStatus.DEGRADED


def test_assess_compares_start_and_now_across_time_zones() -> None:
    now = datetime(2025, 6, 1, 14, 0, 1, tzinfo=timezone(timedelta(hours=2)))
    assert assess((), version="0.1.0", started_at=STARTED, now=now).uptime_seconds == 1.0


def test_assess_reports_zero_uptime_when_the_clock_went_backwards() -> None:
    now = STARTED - timedelta(seconds=5)
    assert assess((), version="0.1.0", started_at=STARTED, now=now).uptime_seconds == 0.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"uptime_seconds": -1.0}, "uptime", id="negative-uptime"),
        pytest.param({"version": ""}, "version", id="no-version"),
        pytest.param(
            # naive on purpose: this is the value the invariant rejects
            {"timestamp": datetime(2025, 6, 1, 12, 0)},  # noqa: DTZ001
            "timezone-aware",
            id="naive-timestamp",
        ),
    ],
)
def test_a_health_report_that_breaks_an_invariant_is_rejected(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        report(**changes)


@pytest.mark.parametrize(
    ("status", "serving"),
    [
        (OverallStatus.HEALTHY, True),
        (OverallStatus.DEGRADED, True),
        (OverallStatus.UNHEALTHY, False),
    ],
)
def test_the_service_takes_traffic_unless_it_is_unhealthy(
    status: OverallStatus, serving: bool
) -> None:
    assert report(status=status).is_serving is serving
