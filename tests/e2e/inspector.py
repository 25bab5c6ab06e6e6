"""The MCP Inspector CLI (from npm) run against a real server."""

import json
import os
import subprocess
from pathlib import Path

from tests.e2e.server import RunningServer

TIMEOUT = 30


def run_inspector(
    cli: list[str], server: RunningServer, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the Inspector CLI on ``server``'s MCP endpoint with its key (bounded in time)."""
    node_bin = str(Path(cli[0]).parent)
    env = {**os.environ, "PATH": f"{node_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [
            *cli,
            server.mcp_url,
            "--transport",
            "http",
            "--header",
            f"Authorization: Bearer {server.key}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )


def json_document(output: str) -> dict[str, object]:
    """The JSON the Inspector printed, after any banner lines."""
    document: dict[str, object] = json.loads(output[output.index("{") :])
    return document
