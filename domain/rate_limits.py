"""Rate limits per key: the bucket a request counts against, and what a limit decided."""

import math
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import CtxfyError


class Bucket(StrEnum):
    """What a request spends; each request counts against exactly one bucket."""

    READ = "read"  # listing, describing, previewing, every MCP method but generation
    WRITE = "write"  # operations that change state (key management)
    GENERATE = "generate"  # operations that spend LLM tokens


@dataclass(frozen=True, slots=True)
class RateDecision:
    """One limit's verdict on one request, and the state of its window afterwards.

    ``reset_seconds``: until the window has room for another request (or, while it has
    room, until the count it holds starts to drop).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a limit allows at least one request")
        if not 0 <= self.remaining <= self.limit:
            raise ValueError("remaining must be between 0 and the limit")
        if self.reset_seconds < 0:
            raise ValueError("reset_seconds must not be negative")

    @property
    def reset_after(self) -> int:
        """``reset_seconds`` in whole seconds, rounded up."""
        return math.ceil(self.reset_seconds)

    @property
    def retry_after(self) -> int:
        """Whole seconds a refused client should wait; at least 1."""
        return max(1, self.reset_after)


class RateLimited(CtxfyError):
    """The key has used up its requests of this kind for now."""

    code = "rate_limited"

    def __init__(self, bucket: Bucket, decision: RateDecision) -> None:
        super().__init__(
            f"Too many {bucket.value} requests for this key ({decision.limit} per window); "
            f"retry in {decision.retry_after} s."
        )
        self.bucket = bucket
        self.decision = decision


class RateLimitUnavailable(CtxfyError):
    """The rate-limit store cannot be reached, and limits are set to fail closed."""

    code = "rate_limit_unavailable"

    def __init__(self, retry_after: int) -> None:
        super().__init__("Rate limits cannot be checked right now; try again shortly.")
        self.retry_after = retry_after
