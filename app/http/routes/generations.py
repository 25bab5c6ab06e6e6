"""Generation records over REST: a caller's own generations, newest first, and each one read
back with its arguments and document when the policy kept them.

A key sees its own user's records; an ``admin`` key sees everyone's. Another user's record is
answered exactly like a record that does not exist (404, never 403), so ids tell nothing.
"""

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, Field

from app.http.deps import state_of
from app.http.errors import SECURED, responses
from app.http.security import InsufficientScope, require_scope
from app.services.generation_records import exposed_fields
from domain.generation import Route
from domain.generation_records import (
    MAX_PAGE,
    RECORD_ID_PATTERN,
    GenerationNotFound,
    GenerationOutcome,
    GenerationRecord,
    RecordQuery,
    is_record_id,
)
from domain.keys import USER_ID_PATTERN, Principal, Scope
from domain.ports import GenerationRecords
from domain.prompts import NAME_PATTERN

TAG = "generations"
PREFIX = "/v1/generations"
EXAMPLE_ID = "gen_01KBD3M2Z8Q4V7W9X0Y1Z2A3B4"

# RFC 3339 with its offset: the ISO 8601 forms Python also reads (dates alone, week dates,
# naive times, numbers of seconds) would answer something other than what was asked.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def location_of(generation_id: str) -> str:
    """Where the record ``generation_id`` is read (the ``Location`` of a generate response)."""
    return f"{PREFIX}/{generation_id}"


def _rfc3339(value: object) -> object:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 timestamp with an offset, e.g. 2026-12-01T09:00:00Z")
    return value


def _in_utc(value: datetime | None) -> datetime | None:
    """``value`` in UTC; an instant outside what UTC can name is before or after every record."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00, 9999-12-31T23:59:59-01:00
        return _EARLIEST if value.year == _EARLIEST.year else _LATEST


class GenerationSummary(BaseModel):
    """What a generation was: who asked, for which prompt version, which LLM, cost, outcome."""

    generation_id: str = Field(examples=[EXAMPLE_ID])
    created_at: datetime
    request_id: str | None = Field(description="The X-Request-ID of the generating request.")
    key_id: str | None = Field(description="The key that asked.")
    user_id: str | None = Field(description="The user that key belongs to.")
    prompt: str = Field(examples=["context_stack"])
    prompt_version: str = Field(examples=["1.0.0"])
    route: Route | None = Field(description="Whose LLM was asked; null when none could be.")
    provider: str | None
    model: str | None
    outcome: GenerationOutcome
    failure: str | None = Field(description="The error code, when the outcome is not `ok`.")
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float | None
    has_document: bool = Field(description="Whether the record keeps the document.")


class GenerationDetail(GenerationSummary):
    """A whole record: ``arguments`` and ``document`` are null unless the policy keeps them
    (``CTXFY_GENERATION_RECORDS=full``)."""

    arguments: dict[str, str | int | float | bool | None] | None = Field(
        description="The validated arguments, redacted like log lines."
    )
    document: str | None = Field(description="The document the LLM wrote, redacted likewise.")


class GenerationPage(BaseModel):
    """Records, newest first; ``next_cursor`` continues the list, null on its last page."""

    generations: list[GenerationSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null when there is none.",
        examples=[EXAMPLE_ID],
    )


def _shown(record: GenerationRecord) -> dict[str, Any]:
    """Every field a summary or detail model takes (a summary ignores the content)."""
    return exposed_fields(record) | {"has_document": record.document is not None}


async def get_records(request: Request) -> GenerationRecords | None:
    """Where records are read from; ``None`` when this server keeps none."""
    recorder = state_of(request).recorder
    return recorder.records if recorder is not None else None


Records = Annotated[GenerationRecords | None, Depends(get_records)]
Reader = Annotated[Principal, Depends(require_scope(Scope.READ))]


async def _page(
    records: GenerationRecords, query: RecordQuery
) -> tuple[list[GenerationRecord], bool]:
    """One page of ``query`` and whether another follows it."""
    if query.limit < MAX_PAGE:
        found = list(await records.list(replace(query, limit=query.limit + 1)))
        return found[: query.limit], len(found) > query.limit
    found = list(await records.list(query))
    if len(found) < query.limit:
        return found, False
    after: Sequence[GenerationRecord] = await records.list(
        replace(query, before_id=found[-1].record_id, limit=1)
    )
    return found, bool(after)


def build_router() -> APIRouter:
    """The generation record routes (``read`` scope)."""
    router = APIRouter(
        prefix=PREFIX,
        tags=[TAG],
        dependencies=[Depends(require_scope(Scope.READ))],
    )

    @router.get(
        "",
        operation_id="list_generations",
        summary="List generations",
        description="Generation records, newest first, `limit` at a time: the caller's own "
        "user's, or every user's for an `admin` key. Follow `next_cursor` for the next page; "
        "records written meanwhile never make a page repeat or skip one. Filtering by "
        "another user's `user_id` needs the `admin` scope (403 otherwise).",
        responses=responses(*SECURED, RequestValidationError, InsufficientScope),
    )
    async def list_generations(
        caller: Reader,
        records: Records,
        prompt: Annotated[
            str | None, Query(pattern=NAME_PATTERN.pattern, description="Only this prompt's.")
        ] = None,
        outcome: Annotated[
            GenerationOutcome | None, Query(description="Only generations that ended so.")
        ] = None,
        since: Annotated[
            AwareDatetime | None,
            BeforeValidator(_rfc3339),
            AfterValidator(_in_utc),
            Query(description="Only those created at or after this RFC 3339 timestamp."),
        ] = None,
        user_id: Annotated[
            str | None,
            Query(
                pattern=USER_ID_PATTERN.pattern,
                description="Only this user's (`admin`; others may name only themselves).",
            ),
        ] = None,
        cursor: Annotated[
            str | None,
            Query(
                pattern=RECORD_ID_PATTERN.pattern,
                description="The `next_cursor` of the page before.",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    ) -> GenerationPage:
        if caller.may(Scope.ADMIN):
            owner = user_id
        elif user_id is None or user_id == caller.user_id:
            owner = caller.user_id
        else:
            raise InsufficientScope(Scope.ADMIN)
        if records is None:
            return GenerationPage(generations=[], next_cursor=None)
        query = RecordQuery(
            user_id=owner,
            prompt=prompt,
            outcome=outcome,
            since=since,
            before_id=cursor,
            limit=limit,
        )
        found, more = await _page(records, query)
        return GenerationPage(
            generations=[GenerationSummary(**_shown(record)) for record in found],
            next_cursor=found[-1].record_id if more else None,
        )

    @router.get(
        "/{generation_id}",
        operation_id="get_generation",
        summary="Read a generation",
        description="One generation record, with its arguments and document when the policy "
        "kept them (`CTXFY_GENERATION_RECORDS=full`). Another user's record is a 404, like "
        "one that does not exist, unless the key is `admin`.",
        # FastAPI documents a 422 for any route with a parameter; this one's is ours.
        responses=responses(*SECURED, RequestValidationError, GenerationNotFound),
    )
    async def get_generation(
        caller: Reader,
        records: Records,
        # Unchecked here: a malformed id is answered like an unknown one, a 404.
        generation_id: Annotated[str, Path(description="The record's id.")],
    ) -> GenerationDetail:
        if records is None or not is_record_id(generation_id):
            raise GenerationNotFound
        owner = None if caller.may(Scope.ADMIN) else caller.user_id
        record = await records.get(generation_id, user_id=owner)
        if record is None:
            raise GenerationNotFound
        return GenerationDetail(**_shown(record))

    return router
