"""DNS-rebinding protection for ``/mcp``: the Host and Origin a request names must be ours.

The MCP transport spec requires servers to validate ``Origin``: a page on another site that
makes a browser post to a local server is refused with 403 (and a JSON-RPC error without an
id). ``Host`` must be one the server answers to, else 421 Misdirected Request. Both are
checked before authentication, on byte-level header scans (pure ASGI).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from mcp.types import INVALID_REQUEST
from starlette.types import ASGIApp, Receive, Scope, Send

from app.http.errors import jsonrpc_error
from app.http.request_context import access_line
from app.settings import host_name, is_loopback


def _origin(value: str) -> tuple[str, str, int | None] | None:
    """Scheme, host name and port of an ``Origin`` value, or ``None`` if it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname.lower(), port if port is not None else default


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """Which Host and Origin values ``/mcp`` accepts.

    Empty allowlists mean: a loopback name and any port, for a server bound to loopback;
    for any other bind, every Host, and Origins naming the Host they were sent to.
    """

    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    loopback_bind: bool = True

    def host_allowed(self, host: str) -> bool:
        """Whether a request naming ``host`` is for this server."""
        if self.allowed_hosts:
            name = host_name(host)
            return any(
                fnmatchcase(host.lower(), pattern) or fnmatchcase(name, pattern)
                for pattern in self.allowed_hosts
            )
        return is_loopback(host) if self.loopback_bind else True

    def origin_allowed(self, origin: str, host: str) -> bool:
        """Whether a browser page from ``origin`` may call the server at ``host``."""
        parsed = _origin(origin)
        if parsed is None:
            return False  # "null" (sandboxed pages, files) and anything malformed
        if self.allowed_origins:
            return any(_origin(o) == parsed for o in self.allowed_origins)
        _, name, _ = parsed
        if is_loopback(name):
            return is_loopback(host)
        return name == host_name(host)


def policy_from(
    *, allowed_hosts: Iterable[str], allowed_origins: Iterable[str], bind_host: str
) -> OriginPolicy:
    """The policy for a server bound to ``bind_host``."""
    return OriginPolicy(
        allowed_hosts=tuple(h.strip().lower() for h in allowed_hosts if h.strip()),
        allowed_origins=tuple(o.strip() for o in allowed_origins if o.strip()),
        loopback_bind=is_loopback(bind_host),
    )


class OriginGuardMiddleware:
    """Refuses ``/mcp`` requests whose Host or Origin is not this server's."""

    def __init__(self, app: ASGIApp, *, policy: OriginPolicy, path: str = "/mcp") -> None:
        self.app = app
        self.policy = policy
        self.path = path
        self.prefix = path + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.path or path.startswith(self.prefix)):
            await self.app(scope, receive, send)
            return
        host = origin = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        refusal = None
        if not self.policy.host_allowed(host):
            refusal = jsonrpc_error(
                421, INVALID_REQUEST, "This server does not answer to that Host."
            )
        elif origin and not self.policy.origin_allowed(origin, host):
            refusal = jsonrpc_error(
                403, INVALID_REQUEST, "Requests from this Origin are not allowed."
            )
        if refusal is None:
            await self.app(scope, receive, send)
            return
        line = access_line(scope)
        if line is not None:
            line.mcp_error = "origin_refused" if refusal.status_code == 403 else "host_refused"
        await refusal(scope, receive, send)
