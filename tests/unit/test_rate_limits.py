"""A rate limit's verdict: its invariants, and the whole seconds clients are told."""

import pytest

from domain.rate_limits import Bucket, RateDecision, RateLimited


def test_retry_after_rounds_up_and_is_never_below_one_second() -> None:
    assert RateDecision(False, 2, 0, 0.2).retry_after == 1
    assert RateDecision(False, 2, 0, 0.0).retry_after == 1
    assert RateDecision(False, 2, 0, 41.01).retry_after == 42


def test_reset_after_rounds_up_and_may_be_zero_for_an_empty_window() -> None:
    assert RateDecision(True, 2, 2, 0.0).reset_after == 0
    assert RateDecision(True, 2, 1, 59.5).reset_after == 60


@pytest.mark.parametrize(
    ("limit", "remaining", "reset"),
    [
        pytest.param(0, 0, 1.0, id="no-limit"),
        pytest.param(2, 3, 1.0, id="more-left-than-allowed"),
        pytest.param(2, -1, 1.0, id="negative-remaining"),
        pytest.param(2, 1, -0.5, id="reset-in-the-past"),
    ],
)
def test_a_decision_that_cannot_be_is_refused_at_construction(
    limit: int, remaining: int, reset: float
) -> None:
    with pytest.raises(ValueError, match=r"limit|remaining|reset"):
        RateDecision(True, limit, remaining, reset)


def test_a_refusal_names_its_bucket_the_limit_and_when_to_retry() -> None:
    error = RateLimited(Bucket.GENERATE, RateDecision(False, 10, 0, 12.3))

    assert error.code == "rate_limited"
    assert (error.bucket, error.decision.limit) == (Bucket.GENERATE, 10)
    assert str(error) == ("Too many generate requests for this key (10 per window); retry in 13 s.")
