"""What one request did, gathered by every layer it passes for its one access line.

The HTTP request-context middleware makes one ``AccessLine`` per request and writes it when
the request ends; authentication, the MCP middleware and the generation service fill in
their part. Typed, so a field cannot be misspelt in one layer and read in another.
"""

from dataclasses import dataclass
from typing import Literal

from domain.keys import Principal
from domain.llm import LlmCompletion
from domain.prompts import PromptDefinition
from infrastructure.metrics import McpOutcome


@dataclass(slots=True)
class AccessLine:
    """The fields a request adds to its access line; unset ones are left off."""

    user_id: str | None = None
    key_id: str | None = None
    request_id: str | None = None  # not a field of its own: the line binds it already
    auth: Literal["allowed", "denied"] | None = None
    auth_reason: str | None = None
    mcp_method: str | None = None
    mcp_name: str | None = None
    mcp_outcome: McpOutcome | None = None
    mcp_error: str | None = None
    rate_limit: str | None = None  # the bucket that refused the request, or "unavailable"
    llm_route: str | None = None
    llm_error: str | None = None
    llm: LlmCompletion | None = None
    # Why a layer before the routes turned the request away (``overloaded``).
    refused: str | None = None
    prompt: str | None = None  # the prompt served, with its version
    prompt_version: str | None = None
    # Something the operator should see though the request succeeded; the line is a WARNING.
    warning: str | None = None

    def prompt_served(self, definition: PromptDefinition) -> None:
        """Record which prompt version the request used; a deprecated one is a warning."""
        self.prompt, self.prompt_version = definition.name, definition.version
        if definition.deprecated:
            self.warning = "deprecated_prompt_version"

    def allowed(self, principal: Principal) -> None:
        """Record that ``principal`` was authenticated (an audited decision)."""
        self.auth, self.user_id, self.key_id = "allowed", principal.user_id, principal.key_id

    def denied(self, reason: str, key_id: str | None) -> None:
        """Record a refused credential (an audited decision)."""
        self.auth, self.auth_reason, self.key_id = "denied", reason, key_id

    def fields(self) -> dict[str, object]:
        """The log fields: ``user_id`` and ``key_id`` always, the rest when set."""
        fields: dict[str, object] = {"user_id": self.user_id, "key_id": self.key_id}
        if self.auth is not None:
            fields["audit"] = True
            fields["auth"] = self.auth
        optional = (
            ("auth_reason", self.auth_reason),
            ("mcp_method", self.mcp_method),
            ("mcp_name", self.mcp_name),
            ("mcp_outcome", self.mcp_outcome),
            ("mcp_error", self.mcp_error),
            ("rate_limit", self.rate_limit),
            ("llm_route", self.llm_route),
            ("llm_error", self.llm_error),
            ("refused", self.refused),
            ("prompt", self.prompt),
            ("prompt_version", self.prompt_version),
            ("warning", self.warning),
        )
        fields.update((name, value) for name, value in optional if value is not None)
        llm = self.llm
        if llm is not None:
            fields.update(
                llm_provider=llm.provider,
                llm_model=llm.model,
                llm_input_tokens=llm.input_tokens,
                llm_output_tokens=llm.output_tokens,
                llm_latency_ms=round(llm.latency_ms, 1),
            )
        return fields
