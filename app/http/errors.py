"""The one REST error table: every failure's status, code and meaning, and the one JSON body.

Exception handlers are registered from ``ERRORS``, the OpenAPI error responses of each route
are generated from it (``responses``), and so is the prose that lists LLM failures
(``failure_summary``), so a status or code is written exactly once.
"""

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from app.http.request_context import REQUEST_ID
from app.http.security import (
    UNAUTHORIZED_MESSAGE,
    AmbiguousCredentials,
    InsufficientScope,
    NotAuthenticated,
    challenge,
    invalid_request_challenge,
    scope_challenge,
)
from app.services.authenticator import AuthThrottled, VerificationBusy
from domain.errors import (
    CtxfyError,
    FieldError,
    InvalidArguments,
    PromptNotFound,
    PromptRenderError,
    PromptVersionNotFound,
)
from domain.generation_records import GenerationNotFound
from domain.keys import (
    InvalidKeyName,
    KeyConflict,
    KeyLifecycleError,
    KeyNotFound,
    ScopeNotGrantable,
)
from domain.llm import (
    LlmBadResponse,
    LlmCircuitOpen,
    LlmError,
    LlmNotConfigured,
    LlmRateLimited,
    LlmRejected,
    LlmTimeout,
    LlmUnavailable,
    SamplingError,
    SamplingFailed,
    SamplingUnavailable,
)
from domain.ports import KeyStoreUnavailable
from domain.rate_limits import RateDecision, RateLimited, RateLimitUnavailable

logger = structlog.get_logger(__name__)

KEY_STORE_RETRY_AFTER = 5
OVERLOAD_RETRY_AFTER = 1  # seconds: a full server frees slots as fast as it answers
VALIDATION_ERROR = "validation_error"


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
    request_id: str | None = Field(
        None, description="The request's X-Request-ID, to quote when asking about it."
    )


class BodyTooLarge(CtxfyError):
    """The request body is larger than the route takes."""

    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes.")
        self.limit = limit


class CompressedBody(CtxfyError):
    """The request body is compressed; bodies are taken uncompressed only."""

    code = "unsupported_media_type"

    def __init__(self) -> None:
        super().__init__("Send the request body uncompressed (Content-Encoding: identity).")


class NotJson(CtxfyError):
    """The request body is declared as something other than JSON."""

    code = "unsupported_media_type"

    def __init__(self) -> None:
        super().__init__("Send the request body as JSON (Content-Type: application/json).")


class Overloaded(CtxfyError):
    """The server has as many requests in flight as it takes (``OverloadMiddleware``)."""

    code = "overloaded"

    def __init__(self) -> None:
        super().__init__("The server is at capacity; try again shortly.")


class ClientDisconnected(CtxfyError):
    """The client closed its connection before its answer was ready."""

    code = "client_disconnected"

    def __init__(self) -> None:
        super().__init__("The client closed the connection before the answer was ready.")


class CatalogReloadFailed(CtxfyError):
    """A reload found a broken prompt file; the catalog serving before keeps serving."""

    code = "catalog_reload_failed"

    def __init__(self, error: str) -> None:
        super().__init__(f"The catalog was not reloaded; the previous one keeps serving. {error}")
        self.error = error


def _no_headers(_: Any) -> dict[str, str]:
    return {}


def _retry_hint(error: LlmRateLimited | LlmCircuitOpen) -> dict[str, str]:
    seconds = error.retry_after
    return {} if seconds is None else {"Retry-After": str(max(1, math.ceil(seconds)))}


def rate_limit_headers(decision: RateDecision) -> dict[str, str]:
    """The IETF draft's ``RateLimit-*`` fields for a request a limit counted."""
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(decision.reset_after),
    }


def _rate_limited(error: RateLimited) -> dict[str, str]:
    return {"Retry-After": str(error.decision.retry_after), **rate_limit_headers(error.decision)}


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """How one kind of failure is answered over REST."""

    error: type[Exception]
    status: int
    description: str
    code: str | None = None  # default: the error's own ``code``
    message: str | None = None  # a fixed public message instead of the error's text
    headers: Callable[[Any], Mapping[str, str]] = _no_headers

    @property
    def error_code(self) -> str:
        """The ``error`` field of the body."""
        if self.code is not None:
            return self.code
        code: str = getattr(self.error, "code", "error")
        return code


ERRORS: tuple[ErrorRule, ...] = (
    ErrorRule(
        RequestValidationError,
        422,
        "the body, path or query failed validation; `details` names each field",
        code=VALIDATION_ERROR,
        message="The request is not valid.",
    ),
    ErrorRule(
        InvalidArguments,
        422,
        "the arguments do not fit the prompt; `details` names each field",
        code=VALIDATION_ERROR,
    ),
    ErrorRule(
        PromptRenderError,
        422,
        "the prompt could not be rendered with these arguments",
        message="The prompt could not be rendered with these arguments.",
    ),
    ErrorRule(PromptNotFound, 404, "no prompt of that name"),
    ErrorRule(
        PromptVersionNotFound, 404, "the prompt has no such version; the message names its versions"
    ),
    ErrorRule(
        CatalogReloadFailed,
        409,
        "a prompt file is invalid (the message names file, prompt, version and field), so "
        "nothing was reloaded and the previous catalog keeps serving",
    ),
    ErrorRule(BodyTooLarge, 413, "the body is larger than the server takes (CTXFY_MAX_BODY_BYTES)"),
    ErrorRule(
        CompressedBody, 415, "the body is compressed; send it with Content-Encoding: identity"
    ),
    ErrorRule(NotJson, 415, "the body is declared as something other than JSON"),
    ErrorRule(
        AmbiguousCredentials,
        400,
        "more than one credential was sent (a repeated header, or two different keys)",
        headers=lambda _: {"WWW-Authenticate": invalid_request_challenge()},
    ),
    ErrorRule(
        NotAuthenticated,
        401,
        "no valid API key was presented",
        message=UNAUTHORIZED_MESSAGE,
        headers=lambda _: {"WWW-Authenticate": challenge(sent_credential=False)},
    ),
    ErrorRule(
        AuthThrottled,
        429,
        "too many failed authentications from this address; `Retry-After` says when to retry",
        headers=lambda e: {"Retry-After": str(e.retry_after)},
    ),
    ErrorRule(
        VerificationBusy,
        503,
        "every key-verification slot is taken; `Retry-After` says when to retry",
        headers=lambda e: {"Retry-After": str(e.retry_after)},
    ),
    ErrorRule(
        InsufficientScope,
        403,
        "the key lacks the scope this operation needs",
        headers=lambda e: {"WWW-Authenticate": scope_challenge(e.needed)},
    ),
    ErrorRule(
        ScopeNotGrantable,
        403,
        "a key cannot create a key broader than itself",
        headers=lambda e: {"WWW-Authenticate": scope_challenge(e.scope)},
    ),
    ErrorRule(KeyNotFound, 404, "no key with that id"),
    ErrorRule(
        GenerationNotFound,
        404,
        "no generation record with that id is yours to read (another user's looks the same)",
    ),
    ErrorRule(InvalidKeyName, 422, "the key name has control or bidirectional characters"),
    ErrorRule(KeyLifecycleError, 422, "the key's lifecycle does not allow this"),
    ErrorRule(KeyConflict, 409, "the key is revoked, expired or already rotated"),
    ErrorRule(
        KeyStoreUnavailable,
        503,
        "the key store cannot be reached; `Retry-After` says when to try again",
        message="The key store cannot be reached; try again shortly.",
        headers=lambda _: {"Retry-After": str(KEY_STORE_RETRY_AFTER)},
    ),
    ErrorRule(
        Overloaded,
        503,
        "the server has `CTXFY_MAX_CONCURRENT_REQUESTS` requests in flight; `Retry-After` "
        "says when to try again",
        headers=lambda _: {"Retry-After": str(OVERLOAD_RETRY_AFTER)},
    ),
    ErrorRule(
        RateLimited,
        429,
        "the key used up this kind of request (`CTXFY_RATE_LIMIT_*`); `Retry-After` says "
        "when to try again",
        headers=_rate_limited,
    ),
    ErrorRule(
        RateLimitUnavailable,
        503,
        "the rate-limit store cannot be reached and limits fail closed; `Retry-After` says "
        "when to try again",
        headers=lambda e: {"Retry-After": str(e.retry_after)},
    ),
    # Never received: the client has gone. Logged and counted as nginx's "client closed request".
    ErrorRule(ClientDisconnected, 499, "the client closed the connection before the answer"),
    ErrorRule(LlmNotConfigured, 503, "no server-side LLM is configured for this request"),
    ErrorRule(SamplingUnavailable, 503, "the client cannot sample and no server LLM can stand in"),
    ErrorRule(SamplingFailed, 502, "the client's LLM refused or failed"),
    ErrorRule(SamplingError, 502, "generation with the client's LLM failed"),
    ErrorRule(LlmRejected, 502, "the LLM provider refused the request"),
    ErrorRule(LlmUnavailable, 502, "the LLM provider failed or could not be reached"),
    ErrorRule(LlmBadResponse, 502, "the LLM provider answered with no usable document"),
    ErrorRule(
        LlmRateLimited,
        503,
        "the LLM provider kept rate limiting; `Retry-After` says when to try again",
        headers=_retry_hint,
    ),
    ErrorRule(
        LlmCircuitOpen,
        503,
        "recent LLM calls failed, so the provider gets a rest; `Retry-After` says how long",
        headers=_retry_hint,
    ),
    ErrorRule(LlmTimeout, 504, "the LLM did not answer in time"),
    ErrorRule(LlmError, 502, "the LLM failed"),
)
_BY_TYPE: dict[type[Exception], ErrorRule] = {rule.error: rule for rule in ERRORS}


def rule_for(error: type[Exception]) -> ErrorRule | None:
    """The rule of ``error``'s most specific class that has one."""
    for kind in error.__mro__:
        rule = _BY_TYPE.get(kind)
        if rule is not None:
            return rule
    return None


def error_response(
    status: int,
    error: str,
    message: str,
    details: Iterable[FieldError] = (),
    headers: Mapping[str, str] | None = None,
    *,
    scope: Scope | None = None,
) -> JSONResponse:
    """The JSON error response; the only place REST error bodies are built.

    ``scope`` is the request's, so the body names its request id.
    """
    body = ErrorBody(
        error=error,
        message=message,
        details=[ErrorDetail(field=d.field, message=d.message, type=d.type) for d in details],
        request_id=scope.get(REQUEST_ID) if scope is not None else None,
    )
    return JSONResponse(body.model_dump(), status_code=status, headers=dict(headers or {}))


def jsonrpc_error(
    status: int,
    code: int,
    message: str,
    *,
    message_id: int | str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON-RPC error, as ``/mcp`` answers what it refuses before the SDK; its id is the
    request's when it is known."""
    body = {"jsonrpc": "2.0", "id": message_id, "error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def response_for(exc: CtxfyError, scope: Scope | None = None) -> JSONResponse:
    """The REST answer to ``exc``, as its rule says (502 ``error`` if it has none)."""
    rule = rule_for(type(exc))
    if rule is None:
        return error_response(502, exc.code, str(exc), scope=scope)
    details = exc.errors if isinstance(exc, InvalidArguments) else ()
    return error_response(
        rule.status,
        rule.error_code,
        rule.message or str(exc),
        details,
        headers=rule.headers(exc),
        scope=scope,
    )


def unauthorized(scope: Scope, *, sent_credential: bool) -> JSONResponse:
    """The 401 every kind of bad or missing key gets: one body, so it tells nothing."""
    return error_response(
        401,
        NotAuthenticated.code,
        UNAUTHORIZED_MESSAGE,
        headers={"WWW-Authenticate": challenge(sent_credential=sent_credential)},
        scope=scope,
    )


def _rules(
    errors: tuple[type[Exception], ...], exclude: tuple[type[Exception], ...]
) -> list[ErrorRule]:
    return [
        rule
        for rule in ERRORS
        if issubclass(rule.error, errors) and not issubclass(rule.error, exclude)
    ]


def responses(
    *errors: type[Exception], exclude: tuple[type[Exception], ...] = ()
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI error responses for routes that can fail with ``errors`` (or subclasses)."""
    by_status: dict[int, list[str]] = {}
    for rule in _rules(errors, exclude):
        line = f"`{rule.error_code}`: {rule.description}."
        listed = by_status.setdefault(rule.status, [])
        if line not in listed:
            listed.append(line)
    return {
        status: {"model": ErrorBody, "description": " ".join(lines)}
        for status, lines in sorted(by_status.items())
    }


# What every route behind a key can answer, whatever it does; and every route with a body.
SECURED: tuple[type[Exception], ...] = (
    NotAuthenticated,
    AmbiguousCredentials,
    AuthThrottled,
    VerificationBusy,
    KeyStoreUnavailable,
    Overloaded,
    RateLimited,
    RateLimitUnavailable,
)
WITH_BODY: tuple[type[Exception], ...] = (
    BodyTooLarge,
    CompressedBody,
    NotJson,
    RequestValidationError,
)


def failure_summary(error: type[CtxfyError], exclude: tuple[type[Exception], ...] = ()) -> str:
    """``code`` (status) for every rule below ``error``, for route descriptions."""
    return ", ".join(
        f"`{rule.error_code}` ({rule.status})"
        for rule in _rules((error,), exclude)
        if rule.error is not error
    )


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


async def _ctxfy_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, CtxfyError):  # registered only for CtxfyError classes
        raise exc
    if isinstance(exc, PromptRenderError):
        logger.warning("prompt_render_failed", prompt=exc.prompt, reason=exc.reason)
    elif isinstance(exc, KeyStoreUnavailable):
        logger.error("key_store_unavailable", error=type(exc).__name__)
    # LLM failures were logged by the generator; messages never carry upstream bodies.
    return response_for(exc, request.scope)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path: Starlette's own ``Allow`` names only the
    first route whose path matched, and one path can have a route per method."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through ``error_response``: one handler per table row."""
    for rule in ERRORS:
        if issubclass(rule.error, CtxfyError):
            app.add_exception_handler(rule.error, _ctxfy_error)

    @app.exception_handler(StarletteHTTPException)
    async def http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else _code_for(exc.status_code)
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return error_response(
            exc.status_code,
            _code_for(exc.status_code),
            message,
            headers=headers,
            scope=request.scope,
        )

    @app.exception_handler(RequestValidationError)
    async def request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        rule = _BY_TYPE[RequestValidationError]
        return error_response(
            rule.status,
            rule.error_code,
            rule.message or "",
            _request_field_errors(exc),
            scope=request.scope,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled_error", exc_info=exc)
        return error_response(
            500, "internal_error", "An unexpected error occurred.", scope=request.scope
        )
