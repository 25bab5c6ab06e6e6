"""Old MCP clients in a virtualenv of their own, and what they report seeing.

mcp 1.x and fastmcp 3 cannot be imported beside the project's mcp 2 / fastmcp 4, so they
live in a venv under ``.tools/`` (git-ignored, kept between runs on one machine; see
``tool_venv``).
``legacy_client.py`` runs there and prints one JSON document, read here as ``Seen``.
"""

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.tool_venv import ToolVenvError, tool_python
from tests.e2e.server import RunningServer

PINS = ("mcp==1.30.0", "fastmcp==3.4.10")
CLIENT_SCRIPT = Path(__file__).with_name("legacy_client.py")
INSTALL_TIMEOUT = 600  # a fresh machine downloads ~60 wheels; a warm pip cache takes ~30 s
CLIENT_TIMEOUT = 90  # the script bounds itself at 60 s; this catches a hang before that


LegacyVenvError = ToolVenvError


def legacy_python() -> Path:
    """The python of the venv holding exactly ``PINS`` (``.tools/legacy-clients-venv``).

    Raises:
        LegacyVenvError: venv creation or pip failed or timed out.
    """
    return tool_python("legacy-clients-venv", PINS, install_timeout=INSTALL_TIMEOUT)


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What an old client made of a ``tools/call`` result."""

    is_error: bool
    text: str
    structured: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Asked:
    """One sampling request the old client's LLM received."""

    messages: tuple[str, ...]
    system_prompt: str | None
    max_tokens: int
    temperature: float | None


@dataclass(frozen=True, slots=True)
class Seen:
    """Everything one old client reported, parsed from its JSON document."""

    client: str
    protocol_version: str
    prompts: tuple[str, ...]
    rendered: str
    tools: frozenset[str]
    tool: ToolOutcome
    sampled: tuple[Asked, ...]

    @classmethod
    def parse(cls, document: str) -> "Seen":
        """Reads the script's one JSON document (a missing key is a ``KeyError``)."""
        seen = json.loads(document)
        tool = seen["tool"]
        return cls(
            client=str(seen["client"]),
            protocol_version=str(seen["protocol_version"]),
            prompts=tuple(map(str, seen["prompts"])),
            rendered=str(seen["rendered"]),
            tools=frozenset(map(str, seen["tools"])),
            tool=ToolOutcome(bool(tool["is_error"]), str(tool["text"]), tool["structured"]),
            sampled=tuple(
                Asked(
                    messages=tuple(map(str, asked["messages"])),
                    system_prompt=asked["system_prompt"],
                    max_tokens=int(asked["max_tokens"]),
                    temperature=asked["temperature"],
                )
                for asked in seen["sampled"]
            ),
        )


def run_legacy_client(
    python: Path,
    server: RunningServer,
    client: str,
    request: Mapping[str, object],
    *,
    sampling: bool,
) -> Seen:
    """Runs ``client`` in the legacy venv against ``server`` (bounded) and reads its report.

    ``request`` holds the prompt, tool, arguments and the client LLM's answer; the URL and
    the server's key are added here, on stdin rather than argv so no key shows in ``ps``.
    """
    flag = "--sampling" if sampling else "--no-sampling"
    stdin = json.dumps({**request, "url": server.mcp_url, "key": server.key})
    done = subprocess.run(
        [str(python), "-I", str(CLIENT_SCRIPT), client, flag],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{client} {flag} exited {done.returncode}:\n{done.stderr}"
    return Seen.parse(done.stdout)
