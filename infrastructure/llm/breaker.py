"""``CircuitBreaker``: stop calling an upstream that keeps failing, then probe it once.

Closed: calls pass; ``failure_threshold`` consecutive failures open it. Open: calls are
refused with ``LlmCircuitOpen`` for ``cooldown_seconds``. Half-open: exactly one trial call
passes; its success closes the breaker, its failure opens it again for another cooldown.
Single event loop only: state changes happen between awaits, so no lock is needed.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum

from domain.llm import LlmCircuitOpen, LlmRejected, LlmTimeout, LlmUnavailable

# The upstream could not be reached or did not answer: evidence it is down.
FAILURES: tuple[type[BaseException], ...] = (LlmUnavailable, LlmTimeout)
# The upstream answered (if only to refuse): evidence it is up.
ANSWERS: tuple[type[BaseException], ...] = (LlmRejected,)


class BreakerState(StrEnum):
    """Where the breaker is in its cycle."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive upstream failures and refuses calls while the upstream is down."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if not cooldown_seconds > 0:
            raise ValueError("cooldown_seconds must be positive")
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker turns half-open once its cooldown is over)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._remaining() > 0:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def check(self) -> None:
        """Raise ``LlmCircuitOpen`` if a call would be refused now, reserving nothing."""
        state = self.state
        if state is BreakerState.OPEN:
            raise LlmCircuitOpen(self._remaining())
        if state is BreakerState.HALF_OPEN and self._trial_in_flight:
            raise LlmCircuitOpen(self.cooldown_seconds)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Admit one call (or refuse it) and record how it ended.

        Raises:
            LlmCircuitOpen: the breaker is open, or half-open with its trial already running.
        """
        self.check()
        trial = self.state is BreakerState.HALF_OPEN
        self._trial_in_flight = self._trial_in_flight or trial
        try:
            yield
        except FAILURES:
            self._record_failure(trial)
            raise
        except ANSWERS:
            self._record_success()
            raise
        except BaseException:
            # Neither evidence of health nor of failure (cancelled, rate limited, garbled).
            if trial:
                self._trial_in_flight = False
            raise
        self._record_success()

    def _remaining(self) -> float:
        assert self._opened_at is not None  # noqa: S101 - only called while open
        return max(0.0, self._opened_at + self.cooldown_seconds - self._clock())

    def _record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def _record_failure(self, trial: bool) -> None:
        if trial:
            self._trial_in_flight = False
            self._opened_at = self._clock()
            return
        if self._opened_at is not None:
            return  # a call admitted before the breaker opened; the cooldown already runs
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
