"""The official MCP conformance suite (npm ``@modelcontextprotocol/conformance``) run
against a real server, what it reported, and what Ctxfy is expected to fail."""

import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

NODE_DIR = Path(__file__).with_name("node")
NODE = NODE_DIR / "node_modules" / ".bin" / "node"
PACKAGE_DIR = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "conformance"
CLI = PACKAGE_DIR / "dist" / "index.js"
EXPECTED_FAILURES = Path(__file__).with_name("conformance-expected-failures.yaml")

MODES = ("stateful", "stateless")
# Each revision's frozen requirement set, run at that revision's wire: the 2025-11-25 one
# through initialize and sessions, the 2026-07-28 one sessionless (server/discover, _meta).
REVISIONS = ("2025-11-25", "2026-07-28")
# The suite's own limit per scenario, and ours for a whole run (a run takes a few seconds).
SCENARIO_TIMEOUT_MS = 10_000
RUN_TIMEOUT = 60.0
# Only these two kinds of reason may excuse a failure (see the expected-failures file).
REASON_KINDS = ("fixture", "unsupported")
FAILURE = "FAILURE"
_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT[\d-]+Z$")


@dataclass(frozen=True, slots=True)
class Check:
    """One check of a scenario, as the suite wrote it to ``checks.json``."""

    id: str
    status: str
    message: str
    details: str

    def describe(self) -> str:
        """The check on one line, details shortened."""
        return " ".join(
            p for p in (f"{self.id}: {self.status}", self.message, self.details[:600]) if p
        )


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """Every check one scenario ran."""

    scenario: str
    checks: tuple[Check, ...]

    @property
    def failing(self) -> dict[str, Check]:
        """The failed checks by id (an id may repeat; its first failure stands for all)."""
        failed: dict[str, Check] = {}
        for check in self.checks:
            if check.status == FAILURE:
                failed.setdefault(check.id, check)
        return failed


@dataclass(frozen=True, slots=True)
class SuiteRun:
    """One run of the suite at one revision: its exit status, output and results."""

    revision: str
    returncode: int
    output: str = field(repr=False)
    scenarios: Mapping[str, ScenarioResult] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ExpectedFailure:
    """A scenario (or one of its checks) Ctxfy is known to fail, and why."""

    scenario: str
    check: str | None
    reason: str
    modes: frozenset[str]


def installed() -> bool:
    """Whether ``npm ci`` has put Node and the suite into ``tests/e2e/node``."""
    return NODE.exists() and CLI.exists()


def required_scenarios(revision: str) -> tuple[str, ...]:
    """The server scenarios the suite runs for ``revision``: the scored ones and those it
    runs without scoring, from its requirement set (empty if the suite is not installed)."""
    path = PACKAGE_DIR / "requirements" / f"{revision}.yaml"
    if not path.exists():
        return ()
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    not_scored = [
        entry["scenario"] for entry in document.get("not_scored", []) if entry["leg"] == "server"
    ]
    return tuple(dict.fromkeys([*document["server"], *not_scored]))


def run_suite(url: str, revision: str, output_dir: Path) -> SuiteRun:
    """Run the suite's server scenarios for ``revision`` against ``url`` (bounded in time).

    Raises:
        subprocess.TimeoutExpired: the run took longer than ``RUN_TIMEOUT``.
    """
    output_dir.mkdir(parents=True)
    env = {**os.environ, "PATH": f"{NODE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    completed = subprocess.run(
        [
            str(NODE),
            str(CLI),
            "server",
            "--url",
            url,
            "--requirements",
            revision,
            "--timeout",
            str(SCENARIO_TIMEOUT_MS),
            "--output-dir",
            str(output_dir),
        ],
        cwd=output_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    return SuiteRun(
        revision=revision,
        returncode=completed.returncode,
        output=completed.stdout + completed.stderr,
        scenarios=read_results(output_dir),
    )


def read_results(output_dir: Path) -> dict[str, ScenarioResult]:
    """Each scenario's checks from ``<output_dir>/server-<scenario>-<time>/checks.json``."""
    results: dict[str, ScenarioResult] = {}
    for path in sorted(output_dir.glob("server-*/checks.json")):
        match = _RESULT_DIR.match(path.parent.name)
        if match is None:
            continue
        raw = json.loads(path.read_text(encoding="utf-8"))
        checks = tuple(
            Check(
                id=str(c["id"]),
                status=str(c["status"]),
                message=str(c.get("errorMessage") or ""),
                details=json.dumps(c.get("details"), ensure_ascii=False),
            )
            for c in raw
        )
        results[match["scenario"]] = ScenarioResult(match["scenario"], checks)
    return results


def load_expected_failures(path: Path = EXPECTED_FAILURES) -> tuple[ExpectedFailure, ...]:
    """The entries of the expected-failures file.

    Raises:
        ValueError: an entry lacks a scenario or reason, or names an unknown mode.
    """
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    loaded = []
    for entry in entries:
        name, reason = entry.get("scenario"), entry.get("reason")
        if not isinstance(name, str) or not isinstance(reason, str):
            raise ValueError(f"{path.name}: each entry needs a scenario and a reason: {entry}")
        modes = frozenset(entry.get("modes", MODES))
        if not modes <= set(MODES):
            raise ValueError(f"{path.name}: {name}: modes must be among {MODES}")
        scenario, _, check = name.partition(":")
        loaded.append(ExpectedFailure(scenario, check or None, reason, modes))
    return tuple(loaded)


def problems(result: ScenarioResult, mode: str, expected: Iterable[ExpectedFailure]) -> list[str]:
    """How ``result`` departs from what ``expected`` says of it in ``mode``: each
    unexpected failure, and each expected failure that no longer fails."""
    listed = [e for e in expected if e.scenario == result.scenario and mode in e.modes]
    failing = result.failing
    where = EXPECTED_FAILURES.name
    if any(e.check is None for e in listed):
        if failing:
            return []
        return [f"{result.scenario} passes now: remove it from {where}"]
    excused = {e.check for e in listed}
    found = [
        f"unexpected failure: {check.describe()}"
        for check_id, check in failing.items()
        if check_id not in excused
    ]
    found += [
        f"{result.scenario}:{check_id} no longer fails: remove it from {where}"
        for check_id in sorted(c for c in excused if c is not None and c not in failing)
    ]
    return found
