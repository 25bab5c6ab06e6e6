"""The official MCP conformance suite against a real server, in both transport modes.

The suite connects through a local proxy that adds the key it cannot send itself (see
``tests/e2e/key_proxy.py``); a ``write`` key, so it sees every tool. Each scenario must pass,
unless ``conformance-expected-failures.yaml`` says it fails, in which case it must fail.
"""

import pytest

from tests.e2e.conformance import (
    MODES,
    REASON_KINDS,
    REVISIONS,
    Check,
    ExpectedFailure,
    ScenarioResult,
    SuiteRun,
    installed,
    load_expected_failures,
    problems,
    required_scenarios,
    run_suite,
)
from tests.e2e.key_proxy import running_key_proxy
from tests.e2e.server import running_server

EXPECTED = load_expected_failures()
SCENARIOS = {revision: required_scenarios(revision) for revision in REVISIONS}
CASES = [
    pytest.param(revision, scenario, id=f"{revision}-{scenario}")
    for revision in REVISIONS
    for scenario in SCENARIOS[revision]
]


@pytest.fixture(scope="module", params=MODES)
def suite(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, SuiteRun]]:
    """The suite's results at each revision against one server in one mode, which is
    stopped (by PID) before the results are judged."""
    mode: str = request.param
    if not installed():
        pytest.fail(
            "The MCP conformance suite is not installed in tests/e2e/node: run `make test` "
            "(or `npm ci --ignore-scripts` there) first."
        )
    root = tmp_path_factory.mktemp(f"conformance-{mode}")
    env = {
        "CTXFY_MCP_STATELESS": str(mode == "stateless").lower(),
        "CTXFY_DRAIN_SECONDS": "0",
        # Every scenario of both revisions through one key: rate limits have their own tests.
        "CTXFY_RATE_LIMIT_READ": "off",
        "CTXFY_RATE_LIMIT_GENERATE": "off",
    }
    with (
        running_server(root, env, scope="write") as server,
        running_key_proxy(("127.0.0.1", server.port), server.key) as proxy,
    ):
        runs = {
            revision: run_suite(proxy.mcp_url, revision, root / revision) for revision in REVISIONS
        }
    return mode, runs


@pytest.mark.parametrize(("revision", "scenario"), CASES)
def test_scenario_passes_unless_listed_as_an_expected_failure(
    suite: tuple[str, dict[str, SuiteRun]], revision: str, scenario: str
) -> None:
    mode, runs = suite
    run = runs[revision]
    result = run.scenarios.get(scenario)
    assert result is not None, f"{scenario} reported no checks:\n{run.output[-3000:]}"
    found = problems(result, mode, EXPECTED)
    assert not found, f"{scenario} ({mode}, {revision}):\n" + "\n".join(found)


@pytest.mark.parametrize("revision", REVISIONS)
def test_the_suite_runs_every_scenario_of_the_requirement_set(
    suite: tuple[str, dict[str, SuiteRun]], revision: str
) -> None:
    _, runs = suite
    run = runs[revision]
    assert SCENARIOS[revision], "the suite's requirement set lists no server scenarios"
    assert set(run.scenarios) == set(SCENARIOS[revision]), run.output[-3000:]
    assert run.returncode in (0, 1), run.output[-3000:]  # 1: a scored scenario failed


def test_every_expected_failure_names_a_scenario_the_suite_runs_and_an_allowed_reason() -> None:
    known = {scenario for scenarios in SCENARIOS.values() for scenario in scenarios}
    names = [f"{e.scenario}:{e.check}" if e.check else e.scenario for e in EXPECTED]
    assert len(names) == len(set(names)), "an entry is listed twice"
    for entry in EXPECTED:
        assert entry.scenario in known or not installed(), f"{entry.scenario}: no such scenario"
        assert entry.reason.split(":", 1)[0] in REASON_KINDS, f"{entry.scenario}: {entry.reason}"
        assert "\n" not in entry.reason.strip(), f"{entry.scenario}: one line, please"
        wholesale = [e for e in EXPECTED if e.scenario == entry.scenario and e.check is None]
        assert not (wholesale and entry.check), f"{entry.scenario}: listed whole and by check"


def scenario_with(**statuses: str) -> ScenarioResult:
    """A scenario whose checks have the given statuses."""
    checks = tuple(Check(id=i, status=s, message="", details="{}") for i, s in statuses.items())
    return ScenarioResult("some-scenario", checks)


def expected(name: str, modes: tuple[str, ...] = MODES) -> ExpectedFailure:
    scenario, _, check = name.partition(":")
    return ExpectedFailure(scenario, check or None, "fixture: test", frozenset(modes))


def test_a_listed_scenario_that_passes_is_reported_as_stale() -> None:
    result = scenario_with(a="SUCCESS", b="WARNING")
    assert problems(result, "stateful", [expected("some-scenario")]) == [
        "some-scenario passes now: remove it from conformance-expected-failures.yaml"
    ]
    assert problems(result, "stateful", []) == []


def test_a_failing_check_not_listed_is_reported_even_beside_a_listed_one() -> None:
    result = scenario_with(a="FAILURE", b="FAILURE", c="SUCCESS")
    found = problems(result, "stateful", [expected("some-scenario:a")])
    assert found == ["unexpected failure: b: FAILURE {}"]
    assert problems(result, "stateful", [expected("some-scenario")]) == []


def test_a_listed_check_that_passes_is_reported_as_stale() -> None:
    result = scenario_with(a="FAILURE", b="SUCCESS")
    found = problems(result, "stateful", [expected("some-scenario:a"), expected("some-scenario:b")])
    assert found == [
        "some-scenario:b no longer fails: remove it from conformance-expected-failures.yaml"
    ]


def test_an_entry_for_the_other_mode_excuses_nothing() -> None:
    result = scenario_with(a="FAILURE")
    found = problems(result, "stateless", [expected("some-scenario", modes=("stateful",))])
    assert found == ["unexpected failure: a: FAILURE {}"]
