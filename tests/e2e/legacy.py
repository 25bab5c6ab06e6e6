"""Old MCP clients in a virtualenv of their own, and what they report seeing.

mcp 1.x and fastmcp 3 cannot be imported beside the project's mcp 2 / fastmcp 4, so they
live in a venv under ``.tools/`` (git-ignored, kept between runs on one machine), built by
the interpreter running the tests and rebuilt only when the pins or that interpreter change.
``legacy_client.py`` runs there and prints one JSON document, read here as ``Seen``.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.server import RunningServer

PINS = ("mcp==1.30.0", "fastmcp==3.4.10")
VENV_DIR = Path(__file__).parents[2] / ".tools" / "legacy-clients-venv"
MARKER = "ctxfy-legacy-clients.txt"
CLIENT_SCRIPT = Path(__file__).with_name("legacy_client.py")
VENV_TIMEOUT = 120
INSTALL_TIMEOUT = 600  # a fresh machine downloads ~60 wheels; a warm pip cache takes ~30 s
CLIENT_TIMEOUT = 90  # the script bounds itself at 60 s; this catches a hang before that


class LegacyVenvError(RuntimeError):
    """The legacy-clients venv could not be built; the message carries pip's output."""


def _record() -> str:
    return "\n".join((f"python {sys.version}", *PINS)) + "\n"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _ready(venv: Path) -> bool:
    marker = venv / MARKER
    return marker.is_file() and marker.read_text() == _record() and _python(venv).exists()


def _run(step: str, command: list[str], timeout: float) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        # on POSIX the partial output of a timed-out run is bytes, even in text mode
        output = [o.decode() if isinstance(o, bytes) else o for o in (exc.stdout, exc.stderr)]
        raise LegacyVenvError(
            f"{step} took over {timeout}s:\n" + "\n".join(filter(None, output))
        ) from exc
    if done.returncode != 0:
        raise LegacyVenvError(f"{step} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def legacy_python(venv: Path = VENV_DIR) -> Path:
    """The python of a venv holding exactly ``PINS``, built (bounded) unless already there.

    It is built beside ``venv`` and renamed into place, so a run that stops half-way, or
    two runs building at once, never leave a venv that looks ready and is not.

    Raises:
        LegacyVenvError: venv creation or pip failed or timed out.
    """
    if _ready(venv):
        return _python(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=venv.parent, prefix=f"{venv.name}.building.") as tmp:
        build = Path(tmp) / "venv"
        _run("python -m venv", [sys.executable, "-m", "venv", str(build)], VENV_TIMEOUT)
        pip = [str(_python(build)), "-m", "pip", "install", "--no-input", *PINS]
        _run(f"pip install {' '.join(PINS)}", pip, INSTALL_TIMEOUT)
        (build / MARKER).write_text(_record())
        if not _ready(venv):
            shutil.rmtree(venv, ignore_errors=True)
            try:
                build.rename(venv)
            except OSError:
                if not _ready(venv):  # a concurrent run's venv is fine to use; else fail
                    raise
    return _python(venv)


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
