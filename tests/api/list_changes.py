"""An MCP client's ``message_handler`` that records the ``list_changed`` notifications it gets."""

import anyio
import mcp_types
from fastmcp.client.messages import MessageHandler

PROMPTS_CHANGED = "notifications/prompts/list_changed"
TOOLS_CHANGED = "notifications/tools/list_changed"


class ListChanges(MessageHandler):
    """Records the ``list_changed`` notifications a client receives, in order."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self._arrived = anyio.Event()

    async def on_prompt_list_changed(
        self, message: mcp_types.PromptListChangedNotification
    ) -> None:
        self._record(PROMPTS_CHANGED)

    async def on_tool_list_changed(self, message: mcp_types.ToolListChangedNotification) -> None:
        self._record(TOOLS_CHANGED)

    def _record(self, method: str) -> None:
        self.received.append(method)
        self._arrived.set()
        self._arrived = anyio.Event()

    async def until(self, count: int) -> list[str]:
        """The notifications received, once there are ``count`` (bounded by the caller)."""
        while len(self.received) < count:
            await self._arrived.wait()
        return self.received
