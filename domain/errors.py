"""Domain errors: one base, one-line leaves."""

from dataclasses import dataclass
from typing import ClassVar


class CtxfyError(Exception):
    """Base of every error Ctxfy raises on purpose.

    ``code`` is the stable, machine-readable name clients see (REST ``error``, MCP tool
    error prefix); each surface picks its own status for it in one table.
    """

    code: ClassVar[str] = "error"


class CatalogError(CtxfyError):
    """A prompt file or definition is invalid; names the file, prompt, version and field."""

    code = "catalog_error"

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        prompt: str | None = None,
        field: str | None = None,
        version: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.prompt = prompt
        self.field = field
        self.version = version
        where = [
            part
            for part in (
                source,
                f"prompt {prompt!r}" if prompt else None,
                f"version {version!r}" if version else None,
                f"field {field!r}" if field else None,
            )
            if part
        ]
        super().__init__(f"{': '.join(where)}: {message}" if where else message)

    def located(
        self, *, source: str, prompt: str | None, version: str | None = None
    ) -> "CatalogError":
        """The same error, placed in the file (and prompt version) it came from."""
        return CatalogError(
            self.message,
            source=source,
            prompt=self.prompt or prompt,
            field=self.field,
            version=self.version or version,
        )


class PromptNotFound(CtxfyError):
    """No prompt of that name is in the catalog."""

    code = "prompt_not_found"

    def __init__(self, name: str, message: str | None = None) -> None:
        self.name = name
        super().__init__(message or f"Unknown prompt: {name!r}")


class PromptVersionNotFound(PromptNotFound):
    """The prompt exists, but not in the version asked for; names the versions it has."""

    code = "prompt_version_not_found"

    def __init__(self, name: str, version: str, available: tuple[str, ...]) -> None:
        self.version = version
        self.available = available
        super().__init__(
            name, f"Prompt {name!r} has no version {version!r}; it has {', '.join(available)}"
        )


@dataclass(frozen=True, slots=True)
class FieldError:
    """One argument that failed validation, and why."""

    field: str
    message: str
    type: str = "invalid"


class InvalidArguments(CtxfyError):
    """Arguments given for a prompt do not match its declared arguments."""

    code = "invalid_arguments"

    def __init__(self, prompt: str, errors: tuple[FieldError, ...]) -> None:
        if not errors:
            raise ValueError("InvalidArguments needs at least one FieldError")
        self.prompt = prompt
        self.errors = errors
        details = "; ".join(f"{e.field}: {e.message}" for e in errors)
        super().__init__(f"Invalid arguments for prompt {prompt!r}: {details}")


class PromptRenderError(CtxfyError):
    """A prompt's template failed while rendering validated arguments."""

    code = "prompt_render_failed"

    def __init__(self, prompt: str, reason: str) -> None:
        self.prompt = prompt
        self.reason = reason
        super().__init__(f"Prompt {prompt!r} could not be rendered: {reason}")
