"""MCP ``prompts/list`` and ``prompts/get`` through the in-memory client."""

import anyio
import pytest
from fastapi import FastAPI
from fastmcp import Client
from fastmcp.client.transports import FastMCPTransport
from mcp import MCPError
from mcp.types import INVALID_PARAMS, GetPromptResult, TextContent

from tests.api.harness import catalog_of

pytestmark = pytest.mark.anyio

CONTEXT_STACK = {"task": "Rotate the signing keys.", "domain": "identity platform"}


def texts(result: GetPromptResult) -> list[str]:
    found: list[str] = []
    for message in result.messages:
        assert isinstance(message.content, TextContent)
        found.append(message.content.text)
    return found


async def invalid_params(
    mcp: Client[FastMCPTransport], name: str, arguments: dict[str, str]
) -> MCPError:
    with anyio.fail_after(10), pytest.raises(MCPError) as caught:
        await mcp.get_prompt(name, arguments)
    assert caught.value.error.code == INVALID_PARAMS
    return caught.value


async def test_prompts_list_shows_every_prompt_with_description_and_arguments(
    app: FastAPI, mcp: Client[FastMCPTransport]
) -> None:
    with anyio.fail_after(10):
        listed = {prompt.name: prompt for prompt in await mcp.list_prompts()}

    assert list(listed) == [entry.name for entry in catalog_of(app)]
    for entry in catalog_of(app):
        definition, prompt = entry.definition, listed[entry.name]
        assert prompt.description == definition.description
        assert prompt.title == definition.title
        arguments = prompt.arguments or []
        assert [(a.name, a.required) for a in arguments] == [
            (a.name, a.required) for a in definition.arguments
        ]
        for shown, declared in zip(arguments, definition.arguments, strict=True):
            assert shown.description is not None
            assert shown.description.startswith(declared.description)
            assert declared.type.value in shown.description


async def test_an_argument_description_folds_in_type_choices_and_default(
    mcp: Client[FastMCPTransport],
) -> None:
    with anyio.fail_after(10):
        prompts = {prompt.name: prompt for prompt in await mcp.list_prompts()}
    arguments = {a.name: a for a in prompts["context_stack"].arguments or []}

    assert (arguments["output_format"].description or "").endswith(
        "(enum; one of markdown, yaml, xml; default markdown)"
    )
    assert (arguments["include_examples"].description or "").endswith("(boolean; default true)")


async def test_a_missing_required_argument_is_invalid_params_naming_it(
    mcp: Client[FastMCPTransport],
) -> None:
    error = await invalid_params(mcp, "context_stack", {"task": "Rotate the signing keys."})

    assert "domain" in error.error.message
    assert error.error.data == {
        "prompt": "context_stack",
        "errors": [{"field": "domain", "message": "Field required", "type": "missing"}],
    }


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        pytest.param({"include_examples": "maybe"}, "include_examples", "bool_parsing", id="bool"),
        pytest.param({"output_format": "pdf"}, "output_format", "literal_error", id="enum"),
        pytest.param({"domain": "x" * 201}, "domain", "string_too_long", id="too-long"),
        pytest.param({"colour": "blue"}, "colour", "extra_forbidden", id="unknown-extra"),
    ],
)
async def test_an_invalid_argument_is_invalid_params_naming_it(
    mcp: Client[FastMCPTransport], changes: dict[str, str], field: str, reason: str
) -> None:
    error = await invalid_params(mcp, "context_stack", CONTEXT_STACK | changes)

    assert field in error.error.message
    assert isinstance(error.error.data, dict)
    assert [(e["field"], e["type"]) for e in error.error.data["errors"]] == [(field, reason)]


async def test_an_integer_outside_its_range_is_invalid_params_naming_it(
    mcp: Client[FastMCPTransport],
) -> None:
    error = await invalid_params(mcp, "task_breakdown", {"goal": "Ship it.", "max_tasks": "2"})

    assert isinstance(error.error.data, dict)
    assert [e["field"] for e in error.error.data["errors"]] == ["max_tasks"]


async def test_an_unknown_prompt_is_invalid_params(mcp: Client[FastMCPTransport]) -> None:
    error = await invalid_params(mcp, "no_such_prompt", {})

    assert "no_such_prompt" in error.error.message


async def test_template_syntax_in_an_argument_renders_literally(
    mcp: Client[FastMCPTransport],
) -> None:
    with anyio.fail_after(10):
        result = await mcp.get_prompt("context_stack", CONTEXT_STACK | {"task": "{{ 7*7 }}"})

    (text,) = texts(result)
    assert "Task: {{ 7*7 }}" in text
    assert "49" not in text


@pytest.mark.parametrize(
    ("prompt", "as_string", "typed"),
    [
        pytest.param(
            "task_breakdown",
            {"goal": "Ship it.", "max_tasks": "3"},
            {"goal": "Ship it.", "max_tasks": 3},
            id="integer",
        ),
        pytest.param(
            "context_stack",
            CONTEXT_STACK | {"include_examples": "true"},
            CONTEXT_STACK | {"include_examples": True},
            id="boolean-true",
        ),
        pytest.param(
            "context_stack",
            CONTEXT_STACK | {"include_examples": "false"},
            CONTEXT_STACK | {"include_examples": False},
            id="boolean-false",
        ),
    ],
)
async def test_string_arguments_are_coerced_to_their_declared_types(
    app: FastAPI,
    mcp: Client[FastMCPTransport],
    prompt: str,
    as_string: dict[str, str],
    typed: dict[str, object],
) -> None:
    expected = catalog_of(app).get(prompt).render(typed)

    with anyio.fail_after(10):
        result = await mcp.get_prompt(prompt, as_string)

    assert texts(result) == [m.text for m in expected.messages]


@pytest.mark.parametrize(
    ("prompt", "given", "empty"),
    [
        pytest.param("context_stack", CONTEXT_STACK, "include_examples", id="boolean"),
        pytest.param("context_stack", CONTEXT_STACK, "output_format", id="enum"),
        pytest.param("task_breakdown", {"goal": "Ship it."}, "max_tasks", id="integer"),
    ],
)
async def test_an_empty_string_for_an_optional_non_string_argument_counts_as_unset(
    mcp: Client[FastMCPTransport], prompt: str, given: dict[str, str], empty: str
) -> None:
    with anyio.fail_after(10):
        with_empty = await mcp.get_prompt(prompt, given | {empty: ""})
        left_out = await mcp.get_prompt(prompt, given)

    assert texts(with_empty) == texts(left_out)
