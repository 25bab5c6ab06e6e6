"""Response headers every answer carries: no sniffing, no caching, no framing (pure ASGI)."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.routes.docs import DOCS_PATH, OAUTH2_REDIRECT_PATH, REDOC_PATH

# API answers are data, never pages: nothing may load, run or frame them.
API_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
)
# The documentation pages load Swagger UI and ReDoc from this server only (their start-up
# scripts and styles are inline), and may not be framed either.
DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    b"frame-ancestors 'none'"
)
DOCS_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", DOCS_CSP),
    (b"referrer-policy", b"no-referrer"),
)
DOCS_PATHS = frozenset({DOCS_PATH, OAUTH2_REDIRECT_PATH, REDOC_PATH})


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = DOCS_HEADERS if scope["path"] in DOCS_PATHS else API_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
