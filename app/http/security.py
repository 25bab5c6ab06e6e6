"""Where the caller's identity lives in a request, how refusals announce themselves, and
the scope checks REST routes declare as dependencies (so a test can find them)."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from domain.errors import CtxfyError
from domain.keys import Principal, Scope

PRINCIPAL = "ctxfy.principal"  # the ASGI scope key holding the caller's Principal
REALM = 'Bearer realm="ctxfy"'
UNAUTHORIZED_MESSAGE = "A valid API key is required (Authorization: Bearer or X-API-Key)."


def challenge(*, sent_credential: bool) -> str:
    """The ``WWW-Authenticate`` value of a 401; identical for every kind of bad key."""
    return f'{REALM}, error="invalid_token"' if sent_credential else REALM


def invalid_request_challenge() -> str:
    """The ``WWW-Authenticate`` value of a 400 for a request that is not one credential."""
    return f'{REALM}, error="invalid_request"'


def scope_challenge(needed: Scope) -> str:
    """The ``WWW-Authenticate`` value of a 403 for a missing scope."""
    return f'{REALM}, error="insufficient_scope", scope="{needed.value}"'


class InsufficientScope(CtxfyError):
    """The caller is authenticated but its key lacks the scope the operation needs."""

    code = "insufficient_scope"

    def __init__(self, needed: Scope) -> None:
        super().__init__(f"This operation needs the {needed.value!r} scope.")
        self.needed = needed


class AmbiguousCredentials(CtxfyError):
    """More than one credential was presented, so which one counts is unclear."""

    code = "ambiguous_credentials"


class NotAuthenticated(CtxfyError):
    """A protected route was reached without a principal (the middleware is missing)."""

    code = "unauthorized"


def principal_of(request: Request) -> Principal:
    """The authenticated caller; the auth middleware put it in the scope."""
    principal = request.scope.get(PRINCIPAL)
    if not isinstance(principal, Principal):
        raise NotAuthenticated
    return principal


# Declared for OpenAPI (Swagger's Authorize button); the middleware has already
# authenticated the request by the time these run, so they never refuse anything.
BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")


@dataclass(frozen=True, slots=True)
class RequireScope:
    """A dependency: the caller's principal, if its key holds ``scope``."""

    scope: Scope

    async def __call__(  # a coroutine, so FastAPI runs it inline, not in its thread pool
        self,
        request: Request,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
        _api_key: Annotated[str | None, Security(API_KEY)] = None,
    ) -> Principal:
        principal = principal_of(request)
        if not principal.may(self.scope):
            raise InsufficientScope(self.scope)
        return principal


def require_scope(scope: Scope) -> RequireScope:
    """Declare the scope a route needs: ``Depends(require_scope(Scope.WRITE))``."""
    return RequireScope(scope)
