"""Choosing the client's or the server's LLM for one generation, in ``domain.generation``."""

import itertools

import pytest

from domain.generation import ClientSampling, LlmMode, Route, choose_route, default_mode
from domain.llm import LlmError, LlmNotConfigured, SamplingUnavailable

CLIENT, SERVER, FALLBACK = LlmMode.CLIENT, LlmMode.SERVER, LlmMode.FALLBACK
AVAILABLE = ClientSampling.AVAILABLE
NOT_OFFERED = ClientSampling.NOT_OFFERED
STATELESS = ClientSampling.STATELESS
NO_CLIENT = ClientSampling.NO_CLIENT

type Outcome = Route | type[LlmError]

# (mode, sampling): (outcome with a server-side LLM configured, outcome without one)
DECISIONS: dict[tuple[LlmMode, ClientSampling], tuple[Outcome, Outcome]] = {
    (CLIENT, AVAILABLE): (Route.CLIENT, Route.CLIENT),
    (CLIENT, NOT_OFFERED): (SamplingUnavailable, SamplingUnavailable),
    (CLIENT, STATELESS): (SamplingUnavailable, SamplingUnavailable),
    (CLIENT, NO_CLIENT): (LlmNotConfigured, LlmNotConfigured),
    (SERVER, AVAILABLE): (Route.SERVER, LlmNotConfigured),
    (SERVER, NOT_OFFERED): (Route.SERVER, LlmNotConfigured),
    (SERVER, STATELESS): (Route.SERVER, LlmNotConfigured),
    (SERVER, NO_CLIENT): (Route.SERVER, LlmNotConfigured),
    (FALLBACK, AVAILABLE): (Route.CLIENT, Route.CLIENT),
    (FALLBACK, NOT_OFFERED): (Route.SERVER, SamplingUnavailable),
    (FALLBACK, STATELESS): (Route.SERVER, SamplingUnavailable),
    (FALLBACK, NO_CLIENT): (Route.SERVER, LlmNotConfigured),
}
CASES = [
    pytest.param(
        mode,
        sampling,
        configured,
        outcomes[0 if configured else 1],
        id=f"{mode}-{sampling}-{'server' if configured else 'no-server'}",
    )
    for (mode, sampling), outcomes in DECISIONS.items()
    for configured in (True, False)
]


def refusal(mode: LlmMode, sampling: ClientSampling, *, server_configured: bool) -> str:
    """The message of the error ``choose_route`` raises."""
    with pytest.raises(LlmError) as raised:
        choose_route(mode, sampling, server_configured=server_configured)
    return str(raised.value)


def test_the_decision_table_covers_every_mode_and_sampling_state() -> None:
    assert set(DECISIONS) == set(itertools.product(LlmMode, ClientSampling))


@pytest.mark.parametrize(("mode", "sampling", "server_configured", "expected"), CASES)
def test_each_mode_routes_or_refuses_as_the_decision_table_says(
    mode: LlmMode, sampling: ClientSampling, server_configured: bool, expected: Outcome
) -> None:
    if isinstance(expected, Route):
        assert choose_route(mode, sampling, server_configured=server_configured) is expected
    else:
        with pytest.raises(LlmError) as raised:
            choose_route(mode, sampling, server_configured=server_configured)
        assert type(raised.value) is expected


@pytest.mark.parametrize(
    ("server_configured", "mode"), [(True, LlmMode.FALLBACK), (False, LlmMode.CLIENT)]
)
def test_the_default_mode_falls_back_to_the_server_only_when_it_has_an_llm(
    server_configured: bool, mode: LlmMode
) -> None:
    assert default_mode(server_configured=server_configured) is mode


@pytest.mark.parametrize("mode", [CLIENT, FALLBACK])
def test_a_stateless_server_says_sampling_needs_a_stateful_session(mode: LlmMode) -> None:
    message = refusal(mode, STATELESS, server_configured=False)
    assert "stateless mode" in message
    assert "stateful session" in message
    assert "CTXFY_LLM_BASE_URL" in message
    assert "Ask the operator to configure a server-side LLM." in message


@pytest.mark.parametrize("mode", [CLIENT, FALLBACK])
def test_a_client_without_sampling_is_told_to_use_one_that_has_it(mode: LlmMode) -> None:
    message = refusal(mode, NOT_OFFERED, server_configured=False)
    assert "does not offer sampling" in message
    assert "CTXFY_LLM_BASE_URL" in message
    assert message.endswith(
        "Use a client that supports sampling, or ask the operator to configure a server-side LLM."
    )


@pytest.mark.parametrize("mode", [CLIENT, FALLBACK])
def test_a_rest_caller_without_a_server_llm_is_told_what_to_configure(mode: LlmMode) -> None:
    message = refusal(mode, NO_CLIENT, server_configured=False)
    assert "no server-side LLM is configured" in message
    assert "CTXFY_LLM_BASE_URL" in message
    assert "CTXFY_LLM_MODEL" in message
    assert "generate_* tools" in message


def test_a_rest_caller_under_the_client_only_policy_is_told_the_policy() -> None:
    message = refusal(CLIENT, NO_CLIENT, server_configured=True)
    assert "CTXFY_LLM_MODE=client" in message
    assert "no server-side LLM is configured" not in message
    assert "generate_* tools" in message


@pytest.mark.parametrize("sampling", [NOT_OFFERED, STATELESS])
def test_under_the_client_only_policy_the_remedy_is_the_policy_not_a_new_llm(
    sampling: ClientSampling,
) -> None:
    message = refusal(CLIENT, sampling, server_configured=True)
    assert "CTXFY_LLM_MODE=client" in message
    assert "the operator to allow the server-side LLM (CTXFY_LLM_MODE=fallback)." in message
    assert "configure a server-side LLM" not in message


@pytest.mark.parametrize("sampling", list(ClientSampling))
def test_server_only_without_a_server_llm_names_the_settings_and_not_sampling(
    sampling: ClientSampling,
) -> None:
    message = refusal(SERVER, sampling, server_configured=False)
    assert message == (
        "Generation needs the server-side LLM, but no server-side LLM is configured "
        "(CTXFY_LLM_BASE_URL, CTXFY_LLM_MODEL)."
    )
