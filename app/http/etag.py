"""Strong entity tags and conditional GETs for cacheable reads (RFC 9110 §8.8.3, §13.1.2).

A representation is serialised once, when the catalog it shows is built, with a tag that
hashes everything its bytes depend on; a request whose ``If-None-Match`` names that tag is
answered 304 without a body. Every worker and replica serving the same catalog with the same
code computes the same tag.
"""

import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header
from starlette.responses import Response

# Caches may keep the body, but must ask (with the tag) before reusing it; the key decides
# what a caller may read, so shared caches must not keep it.
CACHE_CONTROL = "private, no-cache"
_QUOTED = re.compile(r'(?:W/)?"([^"]*)"')

IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        description="Entity tags from earlier answers (or `*`): a match is answered 304.",
    ),
]


def entity_tag(*parts: str) -> str:
    """A strong ``ETag`` value (quoted) that names exactly ``parts``."""
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return f'"{digest[:32]}"'


def none_match(header: str, tag: str) -> bool:
    """Whether an ``If-None-Match`` value matches ``tag``, by weak comparison.

    ``*`` matches any current representation; otherwise each listed tag is compared by its
    opaque part, ``W/`` or not. A value that lists no well-formed tag matches nothing.
    """
    if header.strip() == "*":
        return True
    wanted = tag.strip('"')
    return any(found == wanted for found in _QUOTED.findall(header))


@dataclass(frozen=True, slots=True)
class Representation:
    """One JSON body, serialised once, and its strong entity tag."""

    body: bytes
    etag: str

    def respond(self, if_none_match: str | None) -> Response:
        """200 with the body, or 304 without one when ``if_none_match`` names the tag."""
        headers = {"ETag": self.etag, "Cache-Control": CACHE_CONTROL}
        if if_none_match is not None and none_match(if_none_match, self.etag):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type="application/json", headers=headers)


_HEADERS: dict[str, Any] = {
    "ETag": {
        "description": "Strong entity tag of this representation; it changes exactly when "
        "the catalog (or the server's version) does.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": f"`{CACHE_CONTROL}`: revalidate with `If-None-Match` before reuse.",
        "required": True,
        "schema": {"type": "string"},
    },
}


def cacheable() -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of a cacheable read: the 200's headers, and the 304."""
    return {
        200: {"headers": _HEADERS},
        304: {
            "description": "Not Modified: `If-None-Match` named the current entity tag; no body.",
            "headers": _HEADERS,
        },
    }
