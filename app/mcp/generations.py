"""Generation records as MCP resources: ``ctxfy://generations/{generation_id}``.

Every generation tool result links to its record, and ``resources/read`` of that link
returns it: the document as ``text/markdown`` when the server keeps documents (policy
``full``), then the record's metadata as ``application/json``. A key reads its own user's
records and an ``admin`` key anyone's; another user's id, an unknown one and a malformed one
all answer the same JSON-RPC error, the one FastMCP gives any unknown resource, so a
caller learns nothing about ids that are not theirs.
"""

import logging
from typing import Any

from fastmcp.exceptions import FastMCPError
from fastmcp.resources import ResourceContent, ResourceResult, ResourceTemplate
from fastmcp.server.dependencies import get_access_token
from mcp import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, Annotations, ResourceLink
from pydantic import PrivateAttr
from pydantic_core import to_jsonable_python

from app.services.generation_records import exposed_fields
from domain.generation_records import GenerationRecord, is_record_id
from domain.keys import Scope
from domain.ports import GenerationRecords, KeyStoreUnavailable

URI_PREFIX = "ctxfy://generations/"
URI_TEMPLATE = URI_PREFIX + "{generation_id}"
DOCUMENT_TYPE = "text/markdown"
METADATA_TYPE = "application/json"


def generation_uri(generation_id: str) -> str:
    """The resource URI of the record ``generation_id``."""
    return URI_PREFIX + generation_id


def generation_link(generation_id: str, prompt: str) -> ResourceLink:
    """The ``resource_link`` a generation tool result carries to its record."""
    return ResourceLink(
        type="resource_link",
        uri=generation_uri(generation_id),
        name=generation_id,
        title=f"Generation record of {prompt}",
        mime_type=DOCUMENT_TYPE,
        description="This generation's record: the document when the server keeps "
        "documents, and who generated it, from which prompt version, with which model. "
        "Read it back with resources/read if this result is lost.",
    )


def record_fields(record: GenerationRecord, *, document: bool = True) -> dict[str, Any]:
    """``record`` as JSON-ready fields, as REST shows it; the document is left out when
    ``document`` is false (it travels as its own content)."""
    fields = exposed_fields(record)
    if not document:
        del fields["document"]
    shown: dict[str, Any] = to_jsonable_python(fields)
    return shown


class RecordReadError(MCPError, FastMCPError):
    """A read of a record that ends in a JSON-RPC error, logged below FastMCP's ERROR level.

    FastMCP logs any other exception from a template with its traceback at ERROR and
    passes a ``FastMCPError`` through at its own ``log_level``; being an ``MCPError`` as
    well keeps the code chosen here on the wire.
    """

    def __init__(self, code: int, message: str, data: Any = None, *, log_level: int) -> None:
        MCPError.__init__(self, code, message, data)
        self.log_level = log_level


def not_found(uri: str) -> RecordReadError:
    """Word for word the error FastMCP answers for a resource it does not have."""
    return RecordReadError(
        INVALID_PARAMS, f"Resource not found: {uri!r}", {"uri": uri}, log_level=logging.DEBUG
    )


def reader_user() -> tuple[bool, str | None] | None:
    """Whether the caller is an admin, and its user id; None without an HTTP identity
    (the in-memory transport), which reads nothing."""
    token = get_access_token()
    if token is None:
        return None
    return Scope.ADMIN.value in token.scopes, token.subject


class GenerationRecordTemplate(ResourceTemplate):
    """``ctxfy://generations/{generation_id}``: one generation record, for its owner."""

    _records: GenerationRecords = PrivateAttr()

    @classmethod
    def serving(cls, records: GenerationRecords) -> "GenerationRecordTemplate":
        """The template reading ``records``."""
        template = cls(
            uri_template=URI_TEMPLATE,
            name="generation_record",
            title="Generation record",
            description="A generation's record, by the generation_id a generate_<prompt> "
            "tool returned: the document as text/markdown when the server keeps documents, "
            "then the metadata as application/json (prompt and version, route, provider, "
            "model, tokens, latency, outcome). A key reads its own user's records.",
            mime_type=DOCUMENT_TYPE,
            parameters={
                "type": "object",
                "properties": {"generation_id": {"type": "string"}},
                "required": ["generation_id"],
            },
            annotations=Annotations(audience=["user", "assistant"]),
        )
        template._records = records
        return template

    async def _read(self, uri: str, params: dict[str, Any]) -> ResourceResult:
        record_id = params.get("generation_id")
        caller = reader_user()
        if not isinstance(record_id, str) or not is_record_id(record_id) or caller is None:
            raise not_found(uri)
        admin, user_id = caller
        if not admin and user_id is None:
            raise not_found(uri)
        try:
            record = await self._records.get(record_id, user_id=None if admin else user_id)
        except KeyStoreUnavailable:
            raise RecordReadError(
                INTERNAL_ERROR,
                "Generation records are unavailable: the database cannot be reached. "
                "Try again shortly.",
                log_level=logging.WARNING,
            ) from None
        if record is None:
            raise not_found(uri)
        contents = (
            [] if record.document is None else [ResourceContent(record.document, DOCUMENT_TYPE)]
        )
        contents.append(ResourceContent(record_fields(record, document=False), METADATA_TYPE))
        return ResourceResult(contents)
