"""Authenticates every non-public request once, for REST and MCP alike (pure ASGI)."""

from collections.abc import Callable
from functools import lru_cache

import structlog
from fastmcp.server.auth import AccessToken
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Receive, Scope, Send

from app.http.errors import response_for, unauthorized
from app.http.request_context import access_line
from app.http.routes.docs import ASSETS_PATH, DOCS_PATH, OAUTH2_REDIRECT_PATH, REDOC_PATH
from app.http.security import PRINCIPAL, AmbiguousCredentials
from app.services.authenticator import (
    AuthenticationFailed,
    Authenticator,
    AuthThrottled,
    FailureReason,
    VerificationBusy,
)
from domain.keys import Principal
from domain.ports import KeyStoreUnavailable

PUBLIC_PATHS = frozenset(
    {
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        DOCS_PATH,
        OAUTH2_REDIRECT_PATH,
        REDOC_PATH,
        "/openapi.json",
    }
)
# No OAuth discovery is offered: those paths answer 404 rather than demand a key.
PUBLIC_PREFIXES = ("/.well-known/", ASSETS_PATH + "/")

logger = structlog.get_logger(__name__)


def is_public(path: str) -> bool:
    """Whether ``path`` is served without credentials."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def credential(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The presented key from ``Authorization: Bearer`` or ``X-API-Key``; never the query.

    Raises:
        AmbiguousCredentials: a header is repeated, or the two name different keys — a
            proxy that checked one of them must not be outvoted by the other.
    """
    bearer: str | None = None
    api_key: str | None = None
    for name, value in headers:
        if name == b"authorization":
            if bearer is not None:
                raise AmbiguousCredentials("Send one Authorization header.")
            scheme, _, token = value.decode("latin-1").partition(" ")
            bearer = token.strip() if scheme.lower() == "bearer" else ""
        elif name == b"x-api-key":
            if api_key is not None:
                raise AmbiguousCredentials("Send one X-API-Key header.")
            api_key = value.decode("latin-1").strip()
    if bearer is not None and api_key is not None and bearer != api_key:
        raise AmbiguousCredentials("Authorization and X-API-Key name different keys.")
    return bearer if bearer is not None else api_key


@lru_cache(maxsize=10_000)
def authenticated_user(principal: Principal) -> AuthenticatedUser:
    """What FastMCP and the MCP SDK read from ``scope["user"]``; built once per key."""
    scopes = [scope.value for scope in principal.scope.granted()]
    token = AccessToken(
        token=f"key:{principal.key_id}",
        client_id=principal.key_id,
        scopes=scopes,
        subject=principal.user_id,
        claims={"sub": principal.user_id, "key_id": principal.key_id},
    )
    return AuthenticatedUser(token)


class AuthMiddleware:
    """Places the caller's ``Principal`` in the scope, or answers 401 (503 if the store is down).

    REST routes read it through ``require_scope``; the MCP app reads
    ``scope["user"]``, so FastMCP's ``get_access_token()`` and per-component scope checks
    see the same identity, and MCP sessions are bound to the key that created them.
    """

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.on_failure = on_failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # No WebSocket routes exist; refuse rather than pass an unauthenticated socket.
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            presented = credential(scope["headers"])
        except AmbiguousCredentials as ambiguous:
            self._count(scope, FailureReason.AMBIGUOUS, None)
            await response_for(ambiguous, scope)(scope, receive, send)
            return
        if not presented:
            await self._refuse(scope, receive, send, FailureReason.MISSING, presented is not None)
            return
        try:
            client = scope.get("client")
            principal = await self.authenticator.authenticate(
                presented, client[0] if client else None
            )
        except AuthenticationFailed as failed:
            await self._refuse(scope, receive, send, failed.reason, True, failed.key_id)
            return
        except AuthThrottled as throttled:
            self._count(scope, FailureReason.THROTTLED, throttled.key_id)
            await response_for(throttled, scope)(scope, receive, send)
            return
        except VerificationBusy as busy:
            self._count(scope, FailureReason.BUSY, None)
            await response_for(busy, scope)(scope, receive, send)
            return
        except KeyStoreUnavailable as exc:
            logger.error("auth_store_unavailable", path=scope["path"])
            await response_for(exc, scope)(scope, receive, send)
            return
        line = access_line(scope)
        if line is not None:
            # Every authentication decision is audited, on the request's access line.
            line.allowed(principal)
        scope[PRINCIPAL] = principal
        scope["user"] = authenticated_user(principal)
        scope["auth"] = AuthCredentials([s.value for s in principal.scope.granted()])
        await self.app(scope, receive, send)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        reason: FailureReason,
        sent: bool,
        key_id: str | None = None,
    ) -> None:
        self._count(scope, reason, key_id)
        await unauthorized(scope, sent_credential=sent)(scope, receive, send)

    def _count(self, scope: Scope, reason: FailureReason, key_id: str | None) -> None:
        if self.on_failure is not None:
            self.on_failure(reason.value)
        line = access_line(scope)
        if line is not None:
            line.denied(reason.value, key_id)
