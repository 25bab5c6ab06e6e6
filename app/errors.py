"""One JSON error body for every REST failure, and the handlers that produce it."""

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.auth.identity import (
    UNAUTHORIZED_MESSAGE,
    InsufficientScope,
    NotAuthenticated,
    unauthorized,
)
from app.generation import failure_of
from domain.errors import FieldError, InvalidArguments, PromptNotFound, PromptRenderError
from domain.keys import KeyLifecycleError, KeyNotFound, ScopeNotGrantable
from domain.llm import LlmError
from domain.ports import KeyStoreUnavailable

logger = structlog.get_logger(__name__)


class ErrorDetail(BaseModel):
    """One field that failed validation."""

    field: str = Field(description="Dotted path of the argument or body field.")
    message: str
    type: str = Field(description="Machine-readable reason, e.g. `missing`, `string_too_long`.")


class ErrorBody(BaseModel):
    """Every 4xx and 5xx response has this shape."""

    error: str = Field(description="Machine-readable error code.", examples=["prompt_not_found"])
    message: str = Field(description="What went wrong, for people.")
    details: list[ErrorDetail] = Field(default_factory=list)


def error_response(
    status: int,
    error: str,
    message: str,
    details: Iterable[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The JSON error response; the only place REST error bodies are built."""
    body = ErrorBody(
        error=error,
        message=message,
        details=[ErrorDetail(field=d.field, message=d.message, type=d.type) for d in details],
    )
    return JSONResponse(body.model_dump(), status_code=status, headers=dict(headers or {}))


def _request_field_errors(exc: RequestValidationError) -> tuple[FieldError, ...]:
    errors: list[FieldError] = []
    for item in exc.errors():
        loc = [str(part) for part in item.get("loc", ())]
        if item.get("type") == "json_invalid":
            loc = loc[:1]  # the rest is a character offset, not a field
        elif loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        errors.append(
            FieldError(
                field=".".join(loc) or "body",
                message=str(item.get("msg", "invalid")),
                type=str(item.get("type", "invalid")),
            )
        )
    return tuple(errors)


def _code_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through ``error_response``."""

    @app.exception_handler(StarletteHTTPException)
    async def http_exception(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else _code_for(exc.status_code)
        return error_response(
            exc.status_code, _code_for(exc.status_code), message, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(
            422, "validation_error", "The request is not valid.", _request_field_errors(exc)
        )

    @app.exception_handler(InvalidArguments)
    async def invalid_arguments(_: Request, exc: InvalidArguments) -> JSONResponse:
        return error_response(422, "validation_error", str(exc), exc.errors)

    @app.exception_handler(PromptNotFound)
    async def prompt_not_found(_: Request, exc: PromptNotFound) -> JSONResponse:
        return error_response(404, "prompt_not_found", str(exc))

    @app.exception_handler(PromptRenderError)
    async def prompt_render_failed(_: Request, exc: PromptRenderError) -> JSONResponse:
        logger.warning("prompt_render_failed", prompt=exc.prompt, reason=exc.reason)
        return error_response(
            422, "prompt_render_failed", "The prompt could not be rendered with these arguments."
        )

    @app.exception_handler(InsufficientScope)
    async def insufficient_scope(_: Request, exc: InsufficientScope) -> JSONResponse:
        return error_response(
            403, "insufficient_scope", str(exc), headers={"WWW-Authenticate": exc.challenge}
        )

    @app.exception_handler(NotAuthenticated)
    async def not_authenticated(_: Request, exc: NotAuthenticated) -> JSONResponse:
        status, headers = unauthorized(sent_credential=False)
        return error_response(status, "unauthorized", UNAUTHORIZED_MESSAGE, headers=headers)

    @app.exception_handler(KeyNotFound)
    async def key_not_found(_: Request, exc: KeyNotFound) -> JSONResponse:
        return error_response(404, "key_not_found", str(exc))

    @app.exception_handler(KeyLifecycleError)
    async def key_lifecycle(_: Request, exc: KeyLifecycleError) -> JSONResponse:
        return error_response(422, "key_lifecycle_error", str(exc))

    @app.exception_handler(ScopeNotGrantable)
    async def scope_not_grantable(_: Request, exc: ScopeNotGrantable) -> JSONResponse:
        challenge = InsufficientScope(exc.scope).challenge
        return error_response(
            403, "insufficient_scope", str(exc), headers={"WWW-Authenticate": challenge}
        )

    @app.exception_handler(KeyStoreUnavailable)
    async def key_store_unavailable(_: Request, exc: KeyStoreUnavailable) -> JSONResponse:
        logger.error("key_store_unavailable", error=type(exc).__name__)
        return error_response(
            503,
            "key_store_unavailable",
            "The key store cannot be reached; try again shortly.",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(LlmError)
    async def llm_failed(_: Request, exc: LlmError) -> JSONResponse:
        # The generator has logged it; the message never carries upstream bodies or keys.
        failure = failure_of(exc)
        headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
        return error_response(failure.status, failure.code, str(exc), headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled_error", exc_info=exc)
        return error_response(500, "internal_error", "An unexpected error occurred.")


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No prompt of that name."},
}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "Arguments or body failed validation."},
}
GENERATION_FAILURES: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorBody, "description": "The LLM provider refused, failed or garbled it."},
    503: {
        "model": ErrorBody,
        "description": "No server-side LLM is configured, or the provider is rate limiting "
        "or failing (circuit open); `Retry-After` says when to try again.",
    },
    504: {"model": ErrorBody, "description": "The LLM did not answer in time."},
}
