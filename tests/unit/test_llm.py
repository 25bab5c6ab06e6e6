"""LLM requests, completions and errors in ``domain.llm``."""

import math
from typing import Any

import pytest

from domain.errors import CtxfyError
from domain.llm import (
    MAX_TOKENS_LIMIT,
    LlmBadResponse,
    LlmCircuitOpen,
    LlmCompletion,
    LlmError,
    LlmMessage,
    LlmNotConfigured,
    LlmRateLimited,
    LlmRejected,
    LlmRequest,
    LlmTimeout,
    LlmUnavailable,
    ModelPreferences,
    SamplingUnavailable,
)

HELLO = (LlmMessage("user", "hello"),)


def completion(**changes: Any) -> LlmCompletion:
    fields: dict[str, Any] = {
        "text": "hi",
        "model": "m",
        "provider": "p",
        "input_tokens": 1,
        "output_tokens": 2,
        "latency_ms": 3.0,
    }
    return LlmCompletion(**(fields | changes))


def test_a_message_is_a_user_or_assistant_turn_with_text() -> None:
    assert LlmMessage("assistant", "ok").role == "assistant"
    with pytest.raises(ValueError, match="role"):
        LlmMessage("system", "x")  # type: ignore[arg-type]  # an invalid role on purpose
    with pytest.raises(ValueError, match="text"):
        LlmMessage("user", "")


def test_a_request_needs_at_least_one_message_in_a_tuple() -> None:
    with pytest.raises(ValueError, match="at least one message"):
        LlmRequest(messages=())
    with pytest.raises(TypeError, match="tuple"):
        LlmRequest(messages=list(HELLO))  # type: ignore[arg-type]  # a list on purpose


@pytest.mark.parametrize("max_tokens", [1, 1024, MAX_TOKENS_LIMIT])
def test_max_tokens_within_limits_is_accepted(max_tokens: int) -> None:
    assert LlmRequest(messages=HELLO, max_tokens=max_tokens).max_tokens == max_tokens


@pytest.mark.parametrize("max_tokens", [0, -1, MAX_TOKENS_LIMIT + 1, True])
def test_max_tokens_outside_1_to_200000_is_refused(max_tokens: int) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        LlmRequest(messages=HELLO, max_tokens=max_tokens)


@pytest.mark.parametrize("temperature", [None, 0.0, 0.7, 2.0])
def test_temperature_between_0_and_2_or_unset_is_accepted(temperature: float | None) -> None:
    assert LlmRequest(messages=HELLO, temperature=temperature).temperature == temperature


@pytest.mark.parametrize("temperature", [-0.1, 2.01, math.nan, math.inf])
def test_temperature_outside_0_to_2_is_refused(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        LlmRequest(messages=HELLO, temperature=temperature)


def test_an_empty_system_prompt_is_refused() -> None:
    with pytest.raises(ValueError, match="system_prompt"):
        LlmRequest(messages=HELLO, system_prompt="")


@pytest.mark.parametrize(
    ("preferences", "match"),
    [
        ({"hints": (" ",)}, "model hint"),
        ({"hints": ("x" * 129,)}, "model hint"),
        ({"hints": tuple("abcdefghi")}, "at most 8"),
        ({"cost_priority": 1.5}, "cost_priority"),
        ({"speed_priority": -0.1}, "speed_priority"),
        ({"intelligence_priority": math.nan}, "intelligence_priority"),
    ],
)
def test_model_preferences_are_checked(preferences: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ModelPreferences(**preferences)  # type: ignore[arg-type]  # bad values on purpose


def test_model_preferences_hints_must_be_a_tuple() -> None:
    with pytest.raises(TypeError, match="tuple"):
        ModelPreferences(hints=["claude"])  # type: ignore[arg-type]  # a list on purpose


def test_model_preferences_list_their_priorities_by_name() -> None:
    preferences = ModelPreferences(hints=("claude",), speed_priority=0.25)
    assert preferences.priorities() == (
        ("cost_priority", None),
        ("speed_priority", 0.25),
        ("intelligence_priority", None),
    )


def test_a_request_is_immutable() -> None:
    request = LlmRequest(
        messages=HELLO,
        system_prompt="be brief",
        model_preferences=ModelPreferences(hints=("small",)),
    )
    with pytest.raises(AttributeError):
        request.max_tokens = 5  # type: ignore[misc]  # writing a frozen field on purpose


def test_a_completion_may_leave_token_counts_unknown() -> None:
    made = completion(input_tokens=None, output_tokens=None, text="")
    assert (made.input_tokens, made.output_tokens, made.text) == (None, None, "")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": ""}, "model"),
        ({"provider": ""}, "provider"),
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": -1}, "output_tokens"),
        ({"latency_ms": -0.5}, "latency"),
        ({"latency_ms": math.nan}, "latency"),
    ],
)
def test_a_completion_with_impossible_fields_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        completion(**changes)


@pytest.mark.parametrize(
    "error",
    [
        LlmNotConfigured("x"),
        LlmUnavailable("x"),
        LlmRejected(401),
        LlmRateLimited(None),
        LlmTimeout("x"),
        LlmBadResponse("x"),
        LlmCircuitOpen(1.5),
        SamplingUnavailable("x"),
    ],
)
def test_every_llm_error_is_a_ctxfy_error(error: LlmError) -> None:
    assert isinstance(error, LlmError)
    assert isinstance(error, CtxfyError)


def test_errors_carry_what_a_caller_needs_to_react() -> None:
    assert LlmRejected(401).status == 401
    assert "401" in str(LlmRejected(401))
    assert LlmRateLimited(2.0).retry_after == 2.0
    assert "retry after 2 s" in str(LlmRateLimited(2.0))
    assert LlmRateLimited(None).retry_after is None
    assert LlmCircuitOpen(12.5).retry_after == 12.5
    assert "12.5" in str(LlmCircuitOpen(12.5))
