"""``scripts/bench`` runs from this checkout: every server starts, every case answers right.

A smoke run (one short round, a short open loop, no FastMCP 2.14 venv, this commit as the
``--before`` tree): it shows the script works, not how fast anything is; the figures come
from a full run (docs/performance.md).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
CASES = {
    "prompts/get stateless",
    "prompts/list stateless",
    "REST preview",
    "/health/live",
    "prompts/get stateful",
}


def test_the_benchmark_runs_every_case_without_a_failed_request(tmp_path: Path) -> None:
    summary_path = tmp_path / "bench.json"
    argv = [sys.executable, "-m", "scripts.bench", "--rounds", "1", "--seconds", "1"]
    argv += ["--open-seconds", "2", "--rate", "50", "--skip-bare2", "--auth-rounds", "200"]
    argv += ["--leak-requests", "2000", "--before", "HEAD", "--json", str(summary_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    if done.returncode != 0:
        pytest.fail(f"scripts/bench failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    summary = json.loads(summary_path.read_text())
    assert set(summary["cases"]) == CASES
    for case, servers in summary["cases"].items():
        assert servers["full"]["req_s"] > 0, case
        assert servers["before"]["req_s"] > 0, case
        assert all(server["errors"] == 0 for server in servers.values()), case
    assert summary["open_loop"]["sent"] == 100
    assert summary["open_loop"]["errors"] == 0
    assert summary["scaling"]["1"] > 0
    assert summary["scaling"]["2"] > 0
    assert "cache-hit target 50 us" in summary["auth_output"]
    assert set(summary["against_before"]) == CASES
    assert all(memory["requests"] >= 2_000 for memory in summary["rss"].values())
    worktrees = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True, check=True
    )
    assert "ctxfy-bench-" not in worktrees.stdout
