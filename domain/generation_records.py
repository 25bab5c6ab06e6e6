"""Generation records: what every LLM generation was, kept for its owner and for audit.

A record names who asked (key and user), for which prompt version, which LLM answered
(route, provider, model), what it cost (tokens, latency) and how it ended; by policy it also
keeps the validated arguments and the document, so a client that lost an answer can read it
back. Ids sort by creation time and cannot be guessed.
"""

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.errors import CtxfyError
from domain.generation import Route
from domain.prompts import Scalar

RECORD_ID_PREFIX = "gen_"
# Crockford's base32: no I, L, O or U, so an id read aloud or retyped stays unambiguous.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TIME_CHARS = 10  # 48 bits of milliseconds: sortable until the year 10889
_RANDOM_CHARS = 16  # 80 random bits: unguessable
RECORD_ID_LENGTH = len(RECORD_ID_PREFIX) + _TIME_CHARS + _RANDOM_CHARS
RECORD_ID_PATTERN = re.compile(
    f"^{RECORD_ID_PREFIX}[{_ALPHABET}]{{{_TIME_CHARS + _RANDOM_CHARS}}}$"
)  # ``is_record_id`` as a regular expression, for schemas
MAX_PAGE = 100


class GenerationNotFound(CtxfyError):
    """No record of that id is the caller's to read (or there is no record of it at all)."""

    code = "generation_not_found"

    def __init__(self) -> None:
        # One message whatever the id was: another user's record must look like no record.
        super().__init__("No generation record with that id.")


class RecordPolicy(StrEnum):
    """How much of a generation is kept (``CTXFY_GENERATION_RECORDS``)."""

    FULL = "full"  # metadata, validated arguments and the document
    METADATA = "metadata"  # who, what, which LLM, cost and outcome: no content
    OFF = "off"  # nothing


class GenerationOutcome(StrEnum):
    """How a generation ended."""

    OK = "ok"
    ERROR = "error"  # ``failure`` names the error code
    CANCELLED = "cancelled"  # the caller went away; ``failure`` says how


def _encode(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_record_id(at: datetime, random_bits: Callable[[int], int] = secrets.randbits) -> str:
    """A ULID-style id: creation time in milliseconds, then 80 random bits."""
    milliseconds = int(at.timestamp() * 1000)
    return (
        RECORD_ID_PREFIX
        + _encode(milliseconds, _TIME_CHARS)
        + _encode(random_bits(_RANDOM_CHARS * 5), _RANDOM_CHARS)
    )


def is_record_id(text: str) -> bool:
    """Whether ``text`` has the shape of a record id (it may still name no record)."""
    body = text.removeprefix(RECORD_ID_PREFIX)
    return (
        len(text) == RECORD_ID_LENGTH
        and text.startswith(RECORD_ID_PREFIX)
        and all(c in _ALPHABET for c in body)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRecord:
    """One generation, as stored. Content fields are ``None`` unless the policy keeps them."""

    record_id: str
    created_at: datetime
    request_id: str | None
    key_id: str | None
    user_id: str | None
    prompt: str
    prompt_version: str
    route: Route | None  # None when no LLM could be picked
    provider: str | None
    model: str | None
    outcome: GenerationOutcome
    failure: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None
    arguments: Mapping[str, Scalar | None] | None = None
    document: str | None = None

    def __post_init__(self) -> None:
        if not is_record_id(self.record_id):
            raise ValueError(f"not a record id: {self.record_id!r}")
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        if (self.outcome is GenerationOutcome.OK) != (self.failure is None):
            raise ValueError("a failure code is given exactly when the outcome is not ok")
        if self.document is not None and self.outcome is not GenerationOutcome.OK:
            raise ValueError("only a generation that succeeded has a document")
        for label, count in (
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
        ):
            if count is not None and count < 0:
                raise ValueError(f"{label} must not be negative")

    def field_values(self) -> dict[str, Any]:
        """Every field by name, values as they are (``arguments`` as a plain dict): the
        one mapping every store and interface starts from."""
        values = {name: getattr(self, name) for name in RECORD_FIELDS}
        if self.arguments is not None:
            values["arguments"] = dict(self.arguments)
        return values

    def kept_under(self, policy: RecordPolicy) -> "GenerationRecord | None":
        """What ``policy`` keeps of this record: all of it, its metadata, or nothing."""
        match policy:
            case RecordPolicy.FULL:
                return self
            case RecordPolicy.METADATA:
                return _without_content(self)
            case RecordPolicy.OFF:
                return None


def _without_content(record: GenerationRecord) -> GenerationRecord:
    return replace(record, arguments=None, document=None)


RECORD_FIELDS = tuple(field.name for field in fields(GenerationRecord))


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordQuery:
    """Which records to list: newest first, ``limit`` at a time, after a cursor.

    ``user_id`` None means every user's (admin); the cursor is the last id of the page
    before, so pages never repeat or skip a record that was written meanwhile.
    """

    user_id: str | None
    prompt: str | None = None
    outcome: GenerationOutcome | None = None
    since: datetime | None = None
    before_id: str | None = None
    limit: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        if self.before_id is not None and not is_record_id(self.before_id):
            raise ValueError("the cursor is not a record id")
