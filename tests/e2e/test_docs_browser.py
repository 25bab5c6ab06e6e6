"""The documentation pages render in a real browser with no network beyond this server.

Debian's headless Chromium (installed by ``.ci/run``) loads ``/docs`` and ``/redoc`` from a
real server; the page's JavaScript must run and list the operations, which it can only do
with the assets Ctxfy ships itself, under its content security policy.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from infrastructure.catalog.loader import load_catalog
from tests.e2e.server import RunningServer

CHROMIUM = shutil.which("chromium")
# The switches a sandboxed, offline machine needs: no background calls home, no sandbox as root.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
)


def rendered(url: str, profile: Path) -> str:
    """The page's DOM once its scripts have run (bounded in virtual and real time)."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: .ci/run installs Debian's package")
    completed = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def test_swagger_ui_lists_every_operation_offline(server: RunningServer, tmp_path: Path) -> None:
    dom = rendered(f"{server.base_url}/docs", tmp_path)
    paths = set(re.findall(r'data-path="([^"]+)"', dom))
    assert {f"/v1/prompts/{e.name}/preview" for e in load_catalog()} <= paths
    assert {"/v1/prompts", "/v1/keys", "/health/ready"} <= paths


def test_redoc_renders_the_operations_offline(server: RunningServer, tmp_path: Path) -> None:
    dom = rendered(f"{server.base_url}/redoc", tmp_path)
    for entry in load_catalog():
        assert f"Preview: {entry.definition.title}" in dom
