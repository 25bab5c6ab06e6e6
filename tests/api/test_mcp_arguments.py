"""Prompt arguments over MCP are validated once, before anything renders, and handed on typed."""

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from fastmcp import Client, FastMCP
from fastmcp.prompts import Message, Prompt, PromptResult
from pydantic import Field

from app.mcp.arguments import PromptArgumentsMiddleware, ValidatedArguments, validated
from app.services.catalog import LiveCatalog
from infrastructure.catalog.catalog import PromptCatalog
from infrastructure.catalog.loader import load_catalog
from infrastructure.metrics import Metrics

pytestmark = pytest.mark.anyio


def live(catalog: PromptCatalog) -> LiveCatalog:
    """``catalog`` serving, never reloaded."""
    return LiveCatalog(
        catalog, load=lambda: catalog, metrics=Metrics(version="t"), now=lambda: datetime.now(UTC)
    )


class RecordingPrompt(Prompt):
    """A prompt that keeps the arguments FastMCP hands it."""

    received: list[dict[str, Any] | None] = Field(default_factory=list)

    async def render(self, arguments: dict[str, Any] | None = None) -> PromptResult:
        self.received.append(arguments)
        return PromptResult([Message("recorded")])


async def test_the_prompt_receives_the_validated_typed_arguments_not_the_wire_strings() -> None:
    catalog = load_catalog()
    server = FastMCP("t", middleware=[PromptArgumentsMiddleware(live(catalog))])
    recording = RecordingPrompt(name="task_breakdown")
    server.add_prompt(recording)
    wire = {"goal": "Single sign-on for the admin console", "max_tasks": "7"}

    with anyio.fail_after(10):
        async with Client(server) as mcp:
            await mcp.get_prompt("task_breakdown", wire)

    (received,) = recording.received
    assert isinstance(received, ValidatedArguments)
    assert received == catalog.get("task_breakdown").validate({**wire, "max_tasks": 7})
    assert received["max_tasks"] == 7
    assert received.entry is catalog.get("task_breakdown")


def test_arguments_already_validated_are_not_validated_again() -> None:
    entry = load_catalog().get("context_stack")
    values = validated(entry, {"task": "Rotate the signing keys.", "domain": "identity"})

    assert validated(entry, values) is values


def test_arguments_validated_for_another_entry_are_validated_again() -> None:
    first = load_catalog().get("context_stack")
    second = replace(first)  # another entry, as a reload that changed the file makes
    values = validated(first, {"task": "Rotate.", "domain": "identity"})

    again = validated(second, values)

    assert again is not values
    assert again.entry is second
