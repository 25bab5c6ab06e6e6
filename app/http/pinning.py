"""``?version=`` on a prompt's preview and generate paths, served by the pinned path (pure ASGI)."""

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from domain.prompts import VERSION_PATTERN, VERSION_SEPARATOR

ACTIONS = frozenset({"preview", "generate"})


def pinned_path(path: str, query: bytes, prefix: str) -> str | None:
    """``{prefix}/{name}@{version}/{action}`` for an unpinned preview or generate path whose
    query pins a well-formed version, else ``None``.

    The query is read as Starlette reads it, so the version routed on is the one a route
    would see (the last one given).
    """
    if not path.startswith(prefix):
        return None
    name, slash, action = path[len(prefix) :].partition("/")
    if not slash or action not in ACTIONS or not name or VERSION_SEPARATOR in name:
        return None
    asked = None
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key == "version":
            asked = value
    if asked is None or VERSION_PATTERN.fullmatch(asked) is None:
        return None
    return f"{prefix}{name}{VERSION_SEPARATOR}{asked}/{action}"


class VersionQueryMiddleware:
    """Serves ``/v1/prompts/{name}/preview?version=V`` as ``/v1/prompts/{name}@V/preview``
    (and ``/generate`` alike).

    Each version's body is validated by its own argument model, on its own route; the
    unpinned route's model is the current version's, so a pin in the query has to choose
    the route before FastAPI reads the body. A value that is not a version is left to the
    unpinned route, which refuses it (422). ``raw_path`` stays as the client sent it, for
    the access line.
    """

    def __init__(self, app: ASGIApp, *, prefix: str = "/v1/prompts") -> None:
        self.app = app
        self.prefix = prefix.rstrip("/") + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["query_string"]:
            pinned = pinned_path(scope["path"], scope["query_string"], self.prefix)
            if pinned is not None:
                scope = {**scope, "path": pinned}
        await self.app(scope, receive, send)
