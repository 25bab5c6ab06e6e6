"""The OpenAPI gate: schemathesis, every check and every phase (stateful included), against a
real ``ctxfy serve`` with a server LLM (the fake on 127.0.0.1) and an admin key.

Bounded: ``SCHEMATHESIS_EXAMPLES`` cases per operation and phase (default 50, about 2,600
requests), a fixed ``SCHEMATHESIS_SEED`` so a failure can be replayed, and a wall-clock cap.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.catalog_files import versioned_prompts
from tests.e2e.fake_llm import FakeLlm
from tests.e2e.server import RunningServer, running_server

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "50"))
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261201")
RUN_TIMEOUT = 900.0
PHASES = ("examples", "coverage", "fuzzing", "stateful")
HOOKS = "tests.e2e.schemathesis_hooks"


@pytest.fixture(scope="module")
def server(upstream: FakeLlm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # An operator's prompt in three versions (one deprecated), so every pinned operation
    # is fuzzed too.
    prompts = versioned_prompts(tmp_path_factory.mktemp("versioned-prompts"))
    env = {
        "CTXFY_PROMPTS_DIR": str(prompts),
        "CTXFY_LLM_BASE_URL": upstream.base_url,
        "CTXFY_LLM_API_KEY": "sk-upstream-schemathesis",
        "CTXFY_LLM_MODEL": "operator-model",
        "CTXFY_LLM_MAX_RETRIES": "0",
        "CTXFY_DRAIN_SECONDS": "0",
        # The fuzz checks the API's contract with one key and thousands of valid requests;
        # limits would answer those 429 (rate limits have tests of their own).
        "CTXFY_RATE_LIMIT_READ": "off",
        "CTXFY_RATE_LIMIT_WRITE": "off",
        "CTXFY_RATE_LIMIT_GENERATE": "off",
    }
    with running_server(tmp_path_factory.mktemp("openapi-fuzz"), env, scope="admin") as started:
        yield started


@pytest.fixture(scope="module")
def report(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Schemathesis's JSON run report; its console output goes to the test's output."""
    path = tmp_path_factory.mktemp("schemathesis") / "report.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{server.base_url}/openapi.json",
        "--checks=all",
        f"--phases={','.join(PHASES)}",
        f"--max-examples={EXAMPLES}",
        f"--seed={SEED}",
        "--workers=2",
        "--request-timeout=30",
        "--report=json",
        f"--report-json-path={path}",
    ]
    env = {
        **server.env,
        "SCHEMATHESIS_HOOKS": HOOKS,
        "CTXFY_SCHEMATHESIS_KEY": server.key,
        "CTXFY_SCHEMATHESIS_URL": server.base_url,
    }
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    output = done.stdout + done.stderr
    if not path.exists():
        pytest.fail(f"schemathesis wrote no report:\n{output}")
    result: dict[str, Any] = json.loads(path.read_text())
    result["console"] = output
    return result


def test_schemathesis_finds_nothing_with_every_check_and_phase(
    report: dict[str, Any], server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = report["test_cases"]
    figure = (
        f"{cases['generated']} cases over {report['operations']['tested']} operations "
        f"(seed {report['seed']}, {EXAMPLES} per operation and phase), "
        f"{cases['unique_failures']} failures, {len(report['errors'])} errors, "
        f"{report['auth']['reauth_count']} fresh admin keys, {report['running_time']:.0f} s"
    )
    with capsys.disabled():  # the gate's figure shows in CI's output, passing or not
        print(f"\nschemathesis: {figure}")  # noqa: T201 — the gate reports its figure
    assert report["exit_code"] == 0, report["console"][-20_000:]
    assert report["failures"] == []
    assert report["errors"] == []
    assert report["complete"]
    assert report["stop_reason"] == "completed"
    assert {name: phase["status"] for name, phase in report["phases"].items()} == dict.fromkeys(
        PHASES, "success"
    )
    assert report["operations"]["tested"] == report["operations"]["total"]
    assert not report["auth"]["reauth_broke"]


def test_the_server_logged_no_error_while_fuzzed(
    report: dict[str, Any], server: RunningServer
) -> None:
    def is_error(line: str) -> bool:
        try:
            record = json.loads(line)
        except ValueError:  # uvicorn's own lines before logging is configured
            return "Traceback" in line or "ERROR" in line
        return record.get("level") in ("error", "critical")

    assert [line for line in server.lines if is_error(line)] == []
