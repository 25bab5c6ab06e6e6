# mypy: ignore-errors
# Reason: this script runs in the legacy-clients venv (mcp 1.x, fastmcp 3), not in .venv,
# whose mcp 2 / fastmcp 4 have neither these modules nor these signatures.
"""An old MCP client against a Ctxfy URL, reporting what it saw as one JSON document.

Run by the legacy-clients venv's python in isolated mode (``python -I``); it imports
nothing from the repository. The client (``sdk1`` or ``fastmcp3``) and sampling
(``--sampling`` / ``--no-sampling``) are chosen on the command line; the bearer key, the
prompt and tool with their arguments, and the client LLM's fixed answer arrive as JSON on
stdin. It lists prompts, gets one, lists tools and calls one, then prints::

    {"client", "protocol_version", "prompts", "rendered", "tools",
     "tool": {"is_error", "text", "structured"}, "sampled": [{"messages", "system_prompt",
     "max_tokens", "temperature"}]}
"""

import argparse
import json
import sys
import warnings
from typing import Any

import anyio
import mcp.types as types

TIMEOUT = 60


def _texts(content: list[Any]) -> str:
    return "\n".join(block.text for block in content if isinstance(block, types.TextContent))


class FixedLlm:
    """The client's own LLM: answers every sampling request with one text and model."""

    def __init__(self, text: str, model: str) -> None:
        self.text, self.model = text, model
        self.asked: list[dict[str, Any]] = []

    def answer(self, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.asked.append(
            {
                "messages": [
                    _texts([m.content]) if not isinstance(m.content, list) else _texts(m.content)
                    for m in params.messages
                ],
                "system_prompt": params.systemPrompt,
                "max_tokens": params.maxTokens,
                "temperature": params.temperature,
            }
        )
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=self.text),
            model=self.model,
        )


async def sdk1(request: dict[str, Any], llm: FixedLlm | None) -> dict[str, Any]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> Any:
        return llm.answer(params)

    headers = {"Authorization": f"Bearer {request['key']}"}
    # Deprecated in mcp 1.x in favour of streamable_http_client, and still what most of its
    # users call: the old clients under test are the ones people run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        transport = streamablehttp_client(request["url"], headers=headers, timeout=TIMEOUT)
    async with (
        transport as (read, write, _),
        ClientSession(read, write, sampling_callback=sampling if llm else None) as session,
    ):
        initialized = await session.initialize()
        prompts, cursor = [], None
        while True:
            page = await session.list_prompts(params=types.PaginatedRequestParams(cursor=cursor))
            prompts += [p.name for p in page.prompts]
            if not (cursor := page.nextCursor):
                break
        got = await session.get_prompt(request["prompt"], request["prompt_arguments"])
        tools, cursor = [], None
        while True:
            listed = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
            tools += [t.name for t in listed.tools]
            if not (cursor := listed.nextCursor):
                break
        result = await session.call_tool(request["tool"], request["tool_arguments"])
    return {
        "protocol_version": initialized.protocolVersion,
        "prompts": prompts,
        "rendered": _texts([got.messages[0].content]),
        "tools": tools,
        "tool": {
            "is_error": result.isError,
            "text": _texts(result.content),
            "structured": result.structuredContent,
        },
    }


async def fastmcp3(request: dict[str, Any], llm: FixedLlm | None) -> dict[str, Any]:
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport

    def sampling(messages: Any, params: types.CreateMessageRequestParams, context: Any) -> Any:
        return llm.answer(params)

    transport = StreamableHttpTransport(request["url"], auth=request["key"])
    client = Client(transport, sampling_handler=sampling if llm else None, timeout=TIMEOUT)
    async with client:
        initialized = client.initialize_result
        prompts = [p.name for p in await client.list_prompts()]
        got = await client.get_prompt(request["prompt"], request["prompt_arguments"])
        tools = [t.name for t in await client.list_tools()]
        result = await client.call_tool(
            request["tool"], request["tool_arguments"], raise_on_error=False
        )
    return {
        "protocol_version": initialized.protocolVersion if initialized else None,
        "prompts": prompts,
        "rendered": _texts([got.messages[0].content]),
        "tools": tools,
        "tool": {
            "is_error": result.is_error,
            "text": _texts(result.content),
            "structured": result.structured_content,
        },
    }


CLIENTS = {"sdk1": sdk1, "fastmcp3": fastmcp3}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("client", choices=sorted(CLIENTS))
    parser.add_argument("--sampling", action=argparse.BooleanOptionalAction, required=True)
    args = parser.parse_args()
    request = json.load(sys.stdin)
    llm = FixedLlm(**request["answer"]) if args.sampling else None
    with anyio.fail_after(TIMEOUT):
        seen = await CLIENTS[args.client](request, llm)
    seen |= {"client": args.client, "sampled": llm.asked if llm else []}
    sys.stdout.write(json.dumps(seen) + "\n")


if __name__ == "__main__":
    anyio.run(main)
