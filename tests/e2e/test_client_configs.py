"""Every client configuration README shows is parsed from README and tried on a real server."""

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from infrastructure.catalog.loader import load_catalog
from tests.e2e.inspector import json_document, run_inspector
from tests.e2e.server import RunningServer

pytestmark = pytest.mark.anyio

README = Path(__file__).parents[2] / "README.md"
SNIPPET = re.compile(
    r"^```(?P<lang>\w+) client-config=(?P<name>[\w-]+)\n(?P<body>.*?)^```$", re.M | re.S
)
DOCUMENTED_URL = "http://127.0.0.1:8000/mcp"
PLACEHOLDER = "CTXFY_KEY"
CLIENTS = {"claude-code", "cursor", "vscode", "windsurf", "claude-desktop", "inspector"}


@dataclass(frozen=True, slots=True)
class Connection:
    """What a client configuration makes the client send."""

    url: str
    headers: dict[str, str]


def snippets() -> dict[str, str]:
    found = {m["name"]: m["body"] for m in SNIPPET.finditer(README.read_text(encoding="utf-8"))}
    assert set(found) == CLIENTS, "README's client configurations changed: update this test"
    return found


def _header(text: str) -> tuple[str, str]:
    name, _, value = text.partition(":")
    return name.strip(), value.strip()


def _resolve(value: str, key: str, env: dict[str, str]) -> str:
    """Fill in what the client would: a prompted input, an environment variable, the key."""
    value = value.replace("${input:ctxfy-key}", key)
    value = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m[1], m[0]), value)
    return value.replace(PLACEHOLDER, key)


def connection(name: str, body: str, key: str) -> Connection:
    """The URL and headers the client ``name`` uses, read from its README configuration."""
    if name in ("claude-code", "inspector"):
        words = shlex.split(body)
        url = next(w for w in words if w.startswith(("http://", "https://")))
        headers = dict(
            _header(_resolve(words[i + 1], key, {})) for i, w in enumerate(words) if w == "--header"
        )
        return Connection(url, headers)
    config: dict[str, Any] = json.loads(body)
    servers = config.get("mcpServers") or config["servers"]
    entry = servers["ctxfy"]
    if entry.get("command") == "npx":  # the mcp-remote bridge: URL and headers are arguments
        env = {k: _resolve(v, key, {}) for k, v in entry.get("env", {}).items()}
        args: list[str] = entry["args"]
        url = next(a for a in args if a.startswith(("http://", "https://")))
        headers = dict(
            _header(_resolve(args[i + 1], key, env)) for i, a in enumerate(args) if a == "--header"
        )
        return Connection(url, headers)
    url = entry.get("url") or entry["serverUrl"]
    return Connection(url, {k: _resolve(v, key, {}) for k, v in entry["headers"].items()})


@pytest.mark.parametrize("name", sorted(CLIENTS - {"inspector"}))
async def test_a_documented_client_configuration_reaches_the_prompts(
    server: RunningServer, name: str
) -> None:
    documented = connection(name, snippets()[name], server.key)
    assert documented.url == DOCUMENTED_URL
    assert documented.headers == {"Authorization": f"Bearer {server.key}"}

    transport = StreamableHttpTransport(server.mcp_url, headers=documented.headers)
    with anyio.fail_after(30):
        async with Client(transport) as client:
            listed = [p.name for p in await client.list_prompts()]
    assert listed == [e.name for e in load_catalog()]


def test_the_documented_inspector_command_lists_the_prompts(
    inspector_cli: list[str], server: RunningServer
) -> None:
    words = shlex.split(snippets()["inspector"])
    assert words[:3] == ["npx", "@modelcontextprotocol/inspector", "--cli"]
    assert words[3] == DOCUMENTED_URL
    options = [_resolve(w, server.key, {}) for w in words[4:]]
    # run_inspector passes the URL, transport and header itself; the rest is the README's.
    documented = connection("inspector", snippets()["inspector"], server.key)
    assert documented.headers == {"Authorization": f"Bearer {server.key}"}
    completed = run_inspector(inspector_cli, server, *options[options.index("--method") :])
    assert completed.returncode == 0, completed.stderr
    prompts = json_document(completed.stdout)["prompts"]
    assert isinstance(prompts, list)
    assert [p["name"] for p in prompts] == [e.name for e in load_catalog()]
