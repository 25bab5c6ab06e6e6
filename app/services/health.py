"""Health of the running service: lifecycle, dependency checks shared by every probe, and
the readiness and detailed-health verdicts the probe routes answer with."""

import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from time import perf_counter

import anyio

from domain.health import CheckResult, CheckStatus, HealthStatus, assess
from domain.ports import KeyStore, KeyStoreUnavailable

CHECKS_MAX_AGE = 1.0
KEY_STORE_TIMEOUT = 2.0

type Checks = tuple[CheckResult, ...]


@dataclass(slots=True)
class Lifecycle:
    """Whether the application has started, and whether it has been told to stop."""

    ready: bool = False
    # Set when the process has been told to stop: readiness fails so load balancers move
    # traffic away, while requests are still served until the drain period ends.
    draining: bool = False

    def start_draining(self) -> None:
        """Fail readiness from now on; requests are still served."""
        self.draining = True


class SharedChecks:
    """The latest dependency checks, shared by every probe for up to ``max_age`` seconds.

    One refresh runs at a time: probes that arrive meanwhile wait for its result instead of
    starting their own, so a probe storm costs one round of checks per ``max_age``.
    """

    def __init__(
        self, *, max_age: float = CHECKS_MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._checks: Checks | None = None
        self._key: Hashable = None
        self._taken_at = 0.0
        self._refreshing: anyio.Event | None = None

    async def get(
        self, refresh: Callable[[], Awaitable[Checks]], *, key: Hashable = None
    ) -> Checks:
        """The cached checks if fresh and taken under ``key``, else those of one ``refresh``."""
        while True:
            checks = self._checks
            if (
                checks is not None
                and self._key == key
                and self._clock() - self._taken_at < self.max_age
            ):
                return checks
            pending = self._refreshing
            if pending is None:
                break
            await pending.wait()
        self._refreshing = done = anyio.Event()
        try:
            checks = await refresh()
            self._checks, self._key, self._taken_at = checks, key, self._clock()
        finally:
            # Also on cancellation: a waiter then takes over the refresh.
            self._refreshing = None
            done.set()
        return checks


async def _timed(name: str, probe: Callable[[], Awaitable[tuple[bool, str]]]) -> CheckResult:
    started = perf_counter()
    passed, detail = await probe()
    return CheckResult(
        name=name,
        status=CheckStatus.OK if passed else CheckStatus.FAIL,
        latency_ms=round((perf_counter() - started) * 1000, 3),
        detail=detail,
    )


class HealthService:
    """Answers the probes: what is checked, how often, and what the answers mean."""

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        key_store: KeyStore,
        catalog: Callable[[], tuple[bool, str]],
        transport_running: Callable[[], bool],
        version: str,
        started_at: datetime,
        now: Callable[[], datetime],
        checks: SharedChecks,
    ) -> None:
        self._lifecycle = lifecycle
        self._key_store = key_store
        self._catalog = catalog
        self._transport_running = transport_running
        self._version = version
        self._started_at = started_at
        self._now = now
        self._shared = checks

    def lifecycle_check(self) -> CheckResult:
        """Whether the application is started and not draining; read fresh on every probe.

        Draining is not a fault: it fails readiness, so traffic moves away, but only degrades
        the detailed health, since requests are still served.
        """
        if not self._lifecycle.ready:
            return CheckResult(
                name="lifecycle",
                status=CheckStatus.FAIL,
                latency_ms=0.0,
                detail="starting or shutting down",
            )
        if self._lifecycle.draining:
            return CheckResult(
                name="lifecycle",
                status=CheckStatus.FAIL,
                latency_ms=0.0,
                critical=False,
                detail="draining before shutdown",
            )
        return CheckResult(
            name="lifecycle", status=CheckStatus.OK, latency_ms=0.0, detail="started"
        )

    async def dependency_checks(self) -> Checks:
        """Check the parts the service needs to serve requests, the key store included."""

        async def catalog() -> tuple[bool, str]:
            return self._catalog()

        async def mcp_transport() -> tuple[bool, str]:
            running = self._transport_running()
            return running, "session manager running" if running else "session manager stopped"

        async def key_store() -> tuple[bool, str]:
            try:
                with anyio.fail_after(KEY_STORE_TIMEOUT):
                    await self._key_store.ping()
            except (KeyStoreUnavailable, TimeoutError) as exc:
                return False, f"unavailable: {type(exc).__name__}"
            return True, "answering"

        return (
            await _timed("catalog", catalog),
            await _timed("mcp_transport", mcp_transport),
            await _timed("key_store", key_store),
        )

    async def checks(self) -> Checks:
        """The lifecycle, fresh, then the dependency checks shared by all probes for up to
        ``CHECKS_MAX_AGE`` seconds (taken again at once when the lifecycle flips)."""
        dependencies = await self._shared.get(self.dependency_checks, key=self._lifecycle.ready)
        return (self.lifecycle_check(), *dependencies)

    def is_ready(self, checks: Checks) -> bool:
        """Whether to take new traffic: not draining, and every critical check passes."""
        return not self._lifecycle.draining and all(
            c.status is CheckStatus.OK for c in checks if c.critical
        )

    async def report(self) -> HealthStatus:
        """The detailed health right now."""
        return assess(
            await self.checks(),
            version=self._version,
            started_at=self._started_at,
            now=self._now(),
        )
