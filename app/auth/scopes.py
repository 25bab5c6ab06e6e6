"""Scope checks for REST routes, declared as dependencies so a test can find them."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.auth.identity import PRINCIPAL, InsufficientScope, NotAuthenticated
from domain.keys import Principal, Scope


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

    def __call__(
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
