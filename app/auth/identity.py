"""Where the caller's identity lives in a request, and how refusals announce themselves."""

from domain.keys import Scope

PRINCIPAL = "ctxfy.principal"  # the ASGI scope key holding the caller's Principal
REALM = 'Bearer realm="ctxfy"'
UNAUTHORIZED_MESSAGE = "A valid API key is required (Authorization: Bearer or X-API-Key)."


def unauthorized(*, sent_credential: bool) -> tuple[int, dict[str, str]]:
    """Status and headers of a 401; identical for every kind of bad key."""
    challenge = f'{REALM}, error="invalid_token"' if sent_credential else REALM
    return 401, {"WWW-Authenticate": challenge}


class InsufficientScope(Exception):
    """The caller is authenticated but its key lacks the scope the operation needs."""

    def __init__(self, needed: Scope) -> None:
        super().__init__(f"This operation needs the {needed.value!r} scope.")
        self.needed = needed

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of the 403."""
        return f'{REALM}, error="insufficient_scope", scope="{self.needed.value}"'


class NotAuthenticated(Exception):
    """A protected route was reached without a principal (the middleware is missing)."""
