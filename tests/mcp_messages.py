"""Raw MCP messages for tests that speak JSON-RPC over HTTP without a client library."""

from typing import Any

ACCEPT = {"accept": "application/json, text/event-stream"}


def initialize(client: str = "ctxfy-tests") -> dict[str, Any]:
    """An ``initialize`` request, as a client's first message."""
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": client, "version": "1.0.0"},
        },
    }
