"""Which LLM generates a document: the client's (MCP sampling) or the server's.

``CTXFY_LLM_MODE`` is the operator's policy; ``choose_route`` applies it to one request. It
decides before any LLM is asked, so a request that cannot be served fails at once with a
message that says why and what would help — it never waits on a client that cannot answer.
"""

from enum import StrEnum

from domain.llm import LlmNotConfigured, SamplingUnavailable


class LlmMode(StrEnum):
    """The operator's choice of LLM for generation."""

    CLIENT = "client"  # only the MCP client's own LLM, through sampling
    SERVER = "server"  # only the server-side LLM
    FALLBACK = "fallback"  # the client's when it can sample, else the server's


class ClientSampling(StrEnum):
    """Whether the caller can lend its LLM to this request, and if not, why."""

    AVAILABLE = "available"
    NOT_OFFERED = "not_offered"  # an MCP client that did not declare the sampling capability
    # A client on the initialize-era protocol, served statelessly: nothing can go back to it.
    STATELESS = "stateless"
    NO_CLIENT = "no_client"  # REST: there is no MCP client to ask


class Route(StrEnum):
    """The LLM a generation goes to."""

    CLIENT = "client"
    SERVER = "server"


def default_mode(*, server_configured: bool) -> LlmMode:
    """``fallback`` when a server-side LLM is configured, else ``client``."""
    return LlmMode.FALLBACK if server_configured else LlmMode.CLIENT


_NO_SERVER_LLM = "no server-side LLM is configured (CTXFY_LLM_BASE_URL, CTXFY_LLM_MODEL)"
_CLIENT_ONLY = "the server is set to use only the client's LLM (CTXFY_LLM_MODE=client)"

_WHY_NOT_CLIENT = {
    ClientSampling.NOT_OFFERED: "this MCP client does not offer sampling, so the server "
    "cannot ask its LLM",
    ClientSampling.STATELESS: "the server runs in stateless mode, where it cannot ask the "
    "LLM of a client on the initialize-era protocol (sampling needs a stateful session or a "
    "2026-07-28 client)",
}


def choose_route(mode: LlmMode, sampling: ClientSampling, *, server_configured: bool) -> Route:
    """The LLM to use for one generation under ``mode``.

    Raises:
        SamplingUnavailable: only the client's LLM could serve, and this client cannot.
        LlmNotConfigured: only the server's LLM could serve, and there is none (or the
            policy forbids it); REST callers get this one.
    """
    if mode is not LlmMode.SERVER and sampling is ClientSampling.AVAILABLE:
        return Route.CLIENT
    if mode is not LlmMode.CLIENT and server_configured:
        return Route.SERVER
    if sampling is ClientSampling.NO_CLIENT or mode is LlmMode.SERVER:
        reason = _CLIENT_ONLY if mode is LlmMode.CLIENT and server_configured else _NO_SERVER_LLM
        hint = (
            " MCP clients that offer sampling can generate with the generate_* tools instead."
            if mode is not LlmMode.SERVER
            else ""
        )
        raise LlmNotConfigured(f"Generation needs the server-side LLM, but {reason}.{hint}")
    if server_configured:  # there is a server-side LLM; only the policy keeps it out
        server_reason, wanted = _CLIENT_ONLY, "allow the server-side LLM (CTXFY_LLM_MODE=fallback)"
    else:
        server_reason, wanted = _NO_SERVER_LLM, "configure a server-side LLM"
    remedy = (
        "Use a client that supports sampling, or ask"
        if sampling is ClientSampling.NOT_OFFERED
        else "Ask"
    )
    raise SamplingUnavailable(
        f"Cannot generate: {_WHY_NOT_CLIENT[sampling]}, and {server_reason}. "
        f"{remedy} the operator to {wanted}."
    )
