"""The compose stack's monitoring, checked with real tools: promtool on the alert rules and the
Prometheus configuration, and a real Prometheus scraping a real ``ctxfy serve`` that evaluates
every expression the Grafana dashboard and the alert rules use."""

import json
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.settings import Settings
from infrastructure.catalog.loader import load_catalog
from tests.e2e.fake_llm import FakeLlm
from tests.e2e.prometheus import RunningPrometheus, promtool_binary, running_prometheus
from tests.e2e.server import RunningServer, running_server

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
PROMETHEUS_DIR = DEPLOY / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "ctxfy.json"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
RUNBOOK = ROOT / "docs" / "operations.md"
RUNBOOK_PREFIX = "docs/operations.md#"
SECRETS = {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "CTXFY_MCP_STATE_KEYS", "GRAFANA_ADMIN_PASSWORD"}

# What Grafana substitutes before it sends a panel's query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$instance": ".+"}
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
# Every alert ends in one comparison with a number: the signal, the operator, the threshold.
COMPARISON = re.compile(
    r"^(?P<signal>.+?)\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<threshold>[0-9.]+)$", re.DOTALL
)
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?::(?P<kind>[?-])(?P<rest>[^}]*))?\}")

PROMPT = "context_stack"
EXAMPLE = load_catalog().get(PROMPT).definition.example_arguments
MCP_HEADERS = {
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2025-06-18",
}
TIMEOUT = 30.0
COMMAND_TIMEOUT = 30.0
# Above Prometheus's first scrape: discovery hands it the target after about 5 s.
SCRAPE_TIMEOUT = 10.0
DATA_TIMEOUT = 20.0


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool_binary(), *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def with_bool(expression: str) -> str:
    """The alert's signal as 0 or 1 wherever it has data, firing or not."""
    match = COMPARISON.match(expression.strip())
    assert match, f"not `signal <op> number`: {expression}"
    return f"{match['signal']} {match['op']} bool {match['threshold']}"


def panels(container: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)  # rows hold panels of their own


def grafana_queries() -> list[str]:
    """Every PromQL query of the dashboard, as Grafana sends it; a template variable's
    ``label_values(selector, label)`` is sent as its selector."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        match = LABEL_VALUES.match(variable["query"]["query"])
        assert match, variable
        queries.append(match["selector"])
    substituted = []
    for query in queries:
        for name, value in GRAFANA_VARIABLES.items():
            query = query.replace(name, value)
        assert "$" not in query, f"a Grafana variable the test does not know: {query}"
        substituted.append(query)
    return substituted


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_promtool_accepts_the_alert_rules_and_the_prometheus_configuration() -> None:
    rules = promtool("check", "rules", ALERTS.name)
    config = promtool("check", "config", "prometheus.yml")

    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in rules.stdout
    # dns_sd_configs is only parsed here: promtool resolves no names, so nothing to warn about.
    assert config.returncode == 0, config.stdout + config.stderr
    assert "WARNING" not in config.stdout + config.stderr


def test_every_alert_fires_and_stays_silent_in_its_promtool_unit_test() -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    evaluations = [check for case in tests for check in case["alert_rule_test"]]

    run = promtool("test", "rules", "alerts_test.yml")

    assert run.returncode == 0, run.stdout + run.stderr
    for rule in alert_rules():
        outcomes = {bool(e["exp_alerts"]) for e in evaluations if e["alertname"] == rule["alert"]}
        assert outcomes == {True, False}, f"{rule['alert']} must be tested firing and silent"


def test_every_alert_has_a_for_a_severity_and_a_runbook_section() -> None:
    headings = re.findall(r"^#{2,4} (.+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    anchors = {github_anchor(heading) for heading in headings}

    for rule in alert_rules():
        annotations = rule["annotations"]
        assert rule["for"], rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert annotations["summary"], rule["alert"]
        assert annotations["description"], rule["alert"]
        assert annotations["runbook_url"] == RUNBOOK_PREFIX + rule["alert"].lower()
        assert rule["alert"].lower() in anchors, f"no section {rule['alert']} in {RUNBOOK}"


def interpolate(text: str, environment: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}``, ``${NAME:?error}`` and ``$$``."""

    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        if value := environment.get(match["name"], ""):
            return value
        if match["kind"] == "?":
            raise KeyError(f"{match['name']}: {match['rest']}")
        return match["rest"] or ""

    return INTERPOLATION.sub(substitute, text)


def mount_source(service: Mapping[str, Any], target: str) -> Path | None:
    """Where on the host a bind mount of ``service`` puts the container path ``target``."""
    volumes: list[str] = service.get("volumes", [])
    for volume in volumes:
        source, destination = volume.split(":")[:2]
        if source.startswith(".") and Path(target).is_relative_to(destination):
            return COMPOSE.parent / source / Path(target).relative_to(destination)
    return None


def test_the_compose_stack_runs_two_stateless_replicas_that_prod_settings_accept() -> None:
    text = COMPOSE.read_text()
    compose = yaml.safe_load(interpolate(text, dict.fromkeys(SECRETS, "s" * 40)))
    services = compose["services"]
    ctxfy = services["ctxfy"]
    dockerfile = (
        COMPOSE.parent / ctxfy["build"]["context"] / ctxfy["build"]["dockerfile"]
    ).read_text()
    image_env = dict(re.findall(r"\b(CTXFY_\w+)=(\S+)", dockerfile))
    volumes = json.loads(re.findall(r"^VOLUME (.+)$", dockerfile, flags=re.MULTILINE)[-1])
    writable = {entry.split(":")[0] for entry in ctxfy["tmpfs"]}
    environment = {**image_env, **{k: v for k, v in ctxfy["environment"].items() if v is not None}}
    settings = Settings.model_validate(
        {name.removeprefix("CTXFY_").lower(): value for name, value in environment.items()}
    )
    prometheus, grafana = services["prometheus"], services["grafana"]
    config_file = next(a.split("=", 1)[1] for a in prometheus["command"] if "config.file" in a)
    provider = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "ctxfy.yml").read_text())
    dashboards = mount_source(grafana, provider["providers"][0]["options"]["path"])

    assert set(re.findall(r"\$\{(\w+):\?", text)) == SECRETS
    assert ctxfy["deploy"]["replicas"] == 2
    assert (settings.env, settings.mcp_stateless) == ("prod", True)
    assert settings.database_url.get_secret_value().startswith("postgresql://ctxfy:")
    assert settings.redis_url is not None
    assert "@redis:" in settings.redis_url.get_secret_value()
    assert len(settings.state_keys) == 1
    assert all(service["read_only"] for service in services.values())
    assert set(volumes) <= writable
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, name
            assert services[dependency]["healthcheck"]["test"], dependency
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (
                (COMPOSE.parent / source).exists()
                if "/" in source
                else source in compose["volumes"]
            )
    assert mount_source(prometheus, config_file) == PROMETHEUS_DIR / "prometheus.yml"
    assert dashboards is not None
    assert (dashboards / DASHBOARD.name).samefile(DASHBOARD)


def test_every_dashboard_panel_reads_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text()
    )
    uids = {source["uid"] for source in provisioned["datasources"]}
    dashboard = json.loads(DASHBOARD.read_text())

    used = {
        target["datasource"]["uid"]
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    }

    assert used == uids


def scrapes(server: RunningServer) -> int:
    return sum('"path":"/metrics"' in line for line in server.lines)


def wait_for_scrapes(server: RunningServer, count: int) -> None:
    """Block until the server has logged ``count`` more scrapes of ``/metrics`` (bounded)."""
    with server.arrived:
        wanted = scrapes(server) + count
        if not server.arrived.wait_for(lambda: scrapes(server) >= wanted, SCRAPE_TIMEOUT):
            raise TimeoutError(f"Prometheus did not scrape {count} more times")


def drive_traffic(server: RunningServer, upstream: FakeLlm) -> None:
    """One request of each kind the panels and rules count: a REST preview and an MCP
    ``prompts/get`` (HTTP and MCP series), a refused key (auth failures, 4xx), a generation
    (LLM calls, latency, tokens, generation records) and one the LLM fails (LLM errors, 5xx).
    Rate-limit and session-refusal counters report 0 from the start; overloads are ``or
    vector(0)`` on the dashboard."""
    mcp_request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "prompts/get",
        "params": {"name": "adr", "arguments": {"decision_topic": "How replicas share keys"}},
    }
    auth = {"Authorization": f"Bearer {server.key}"}
    generate = f"/v1/prompts/{PROMPT}/generate"
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as http:
        assert http.post(f"/v1/prompts/{PROMPT}/preview", json=EXAMPLE, headers=auth).is_success
        assert "result" in http.post("/mcp", json=mcp_request, headers=auth | MCP_HEADERS).json()
        assert http.get("/v1/prompts", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.post(generate, json=EXAMPLE, headers=auth).is_success
        upstream.fail(500)
        try:
            assert http.post(generate, json=EXAMPLE, headers=auth).status_code == 502
        finally:
            upstream.reset()


def evaluate(
    prometheus: RunningPrometheus, server: RunningServer, queries: list[str]
) -> dict[str, Any]:
    """Each query's answer, asked again after each scrape (bounded) while some have no data."""
    deadline = time.monotonic() + DATA_TIMEOUT
    while True:
        answers = {query: prometheus.query(query) for query in queries}
        waiting = [
            q for q, a in answers.items() if a["status"] == "success" and not a["data"]["result"]
        ]
        if not waiting or time.monotonic() > deadline:
            return answers
        wait_for_scrapes(server, 1)


@pytest.fixture(scope="module")
def scraped(
    upstream: FakeLlm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningPrometheus]]:
    """A server with a fake server-side LLM, scraped every second by a Prometheus that
    evaluates the repository's alert rules, after one round of traffic."""
    env = {
        "CTXFY_MCP_STATELESS": "true",
        "CTXFY_DRAIN_SECONDS": "0",
        "CTXFY_LLM_BASE_URL": upstream.base_url,
        "CTXFY_LLM_API_KEY": "sk-upstream-e2e-0123456789",
        "CTXFY_LLM_MODEL": "operator-model",
        "CTXFY_LLM_MAX_RETRIES": "0",
        "CTXFY_LLM_BREAKER_FAILURES": "100",
        "CTXFY_RATE_LIMIT_GENERATE": "off",
    }
    with running_server(tmp_path_factory.mktemp("observed"), env, scope="write") as server:
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "ctxfy", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}
            ],
        }
        with running_prometheus(tmp_path_factory.mktemp("prometheus"), config) as prometheus:
            wait_for_scrapes(server, 1)  # so the rates see the traffic as an increase
            drive_traffic(server, upstream)
            yield server, prometheus


def test_every_dashboard_and_alert_expression_returns_data_from_a_real_scrape(
    scraped: tuple[RunningServer, RunningPrometheus],
) -> None:
    server, prometheus = scraped
    alerts = [rule["expr"] for rule in alert_rules()]
    # An alert's expression has data only while it fires; its signal, with `bool`, always.
    with_data = list(dict.fromkeys([*grafana_queries(), *map(with_bool, alerts)]))

    answers = evaluate(prometheus, server, with_data) | {a: prometheus.query(a) for a in alerts}

    failed = {q: a.get("error") for q, a in answers.items() if a["status"] != "success"}
    assert failed == {}
    assert [q for q in with_data if not answers[q]["data"]["result"]] == []


def test_prometheus_evaluates_every_alert_rule_without_error(
    scraped: tuple[RunningServer, RunningPrometheus],
) -> None:
    server, prometheus = scraped
    deadline = time.monotonic() + DATA_TIMEOUT
    while (rules := prometheus.rules()) and any(r["health"] == "unknown" for r in rules):
        assert time.monotonic() < deadline, rules
        wait_for_scrapes(server, 1)

    assert {rule["name"]: rule["health"] for rule in rules} == {
        rule["alert"]: "ok" for rule in alert_rules()
    }
