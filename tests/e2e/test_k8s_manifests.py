"""The Kubernetes overlays (``deploy/k8s``) as kubectl's kustomize renders them, checked by
the tools an operator's pipeline runs (kubernetes-validate for the schemas, checkov for
security) and for what neither knows: probes on the app's own paths and port, a grace period
longer than the shutdown it covers, settings the app accepts, a budget that lets nodes drain.
"""

import ast
import inspect
import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import ValidationError

import app.cli
from app.settings import Settings
from tests.e2e.checkov_venv import CheckovVenvError, checkov_command
from tests.e2e.server import running_server

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "staging", "prod")
EXAMPLE_SECRET = K8S / "base" / "secret.example.yaml"
# The oldest release whose kubelet runs the preStop sleep action by default, and the newest
# the locked kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
SKIP_KEY = re.compile(r"checkov\.io/skip\d+")
SKIP_VALUE = re.compile(r"(CKV2?_K8S_\d+)=([^=]*)")  # checkov splits on "=": one only
TIMEOUT = 120  # each kubectl, kubernetes-validate or checkov run; each takes a few seconds
# Secrets that the app accepts, for the settings the ConfigMaps leave to the Secret.
SECRET_VALUES = {
    "CTXFY_DATABASE_URL": "postgresql://ctxfy:secret@postgres:5432/ctxfy",
    "CTXFY_REDIS_URL": "redis://redis:6379/0",
    "CTXFY_MCP_STATE_KEYS": "k" * 43,
}

type Manifest = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rendered:
    """One overlay as rendered: the file written and its documents."""

    path: Path
    documents: tuple[Manifest, ...]

    def find(self, kind: str) -> Manifest | None:
        """The one document of ``kind``, or ``None``."""
        found = [d for d in self.documents if d["kind"] == kind]
        assert len(found) <= 1, f"{self.path.name}: {len(found)} {kind} documents"
        return found[0] if found else None

    def one(self, kind: str) -> Manifest:
        """The one document of ``kind``."""
        found = self.find(kind)
        assert found is not None, f"{self.path.name} renders no {kind}"
        return found

    @property
    def config(self) -> dict[str, str]:
        """The ConfigMap's data."""
        data: dict[str, str] = self.one("ConfigMap")["data"]
        return data

    @property
    def container(self) -> Manifest:
        """The Deployment's one container."""
        containers: list[Manifest] = self.one("Deployment")["spec"]["template"]["spec"][
            "containers"
        ]
        assert len(containers) == 1
        return containers[0]


def _run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    """Every overlay, rendered by ``kubectl kustomize`` into a file of its own."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not on PATH: install Debian's kubectl package (.ci/run does)")
    directory = tmp_path_factory.mktemp("k8s")
    overlays = {}
    for name in OVERLAYS:
        done = _run([kubectl, "kustomize", str(K8S / "overlays" / name)])
        if done.returncode != 0:
            version = _run([kubectl, "version", "--client"]).stdout
            pytest.fail(
                f"kubectl kustomize overlays/{name} failed (the manifests are written for "
                f"kustomize v5, as in kubectl 1.27+; this kubectl: {version.strip()}):\n"
                + done.stderr
            )
        path = directory / f"{name}.yaml"
        path.write_text(done.stdout)
        overlays[name] = Rendered(path, tuple(d for d in yaml.safe_load_all(done.stdout) if d))
    return overlays


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, Rendered]) -> Rendered:
    """Each rendered overlay in turn."""
    return rendered[request.param]


def _files(rendered: dict[str, Rendered]) -> list[Path]:
    return [*(r.path for r in rendered.values()), EXAMPLE_SECRET]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_document_matches_the_kubernetes_schemas_strictly(
    rendered: dict[str, Rendered], version: str
) -> None:
    command = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", version]
    done = _run([*command, *map(str, _files(rendered))])
    assert done.returncode == 0, done.stdout + done.stderr


def _documents(rendered: dict[str, Rendered]) -> list[tuple[str, Manifest]]:
    """(file name, document) for every rendered document and the example Secret."""
    documents = [(r.path.name, d) for r in rendered.values() for d in r.documents]
    documents.append((EXAMPLE_SECRET.name, yaml.safe_load(EXAMPLE_SECRET.read_text())))
    return documents


def _skip_annotations(document: Manifest) -> Iterator[tuple[str, str]]:
    annotations: dict[str, str] = document["metadata"].get("annotations") or {}
    for key, value in annotations.items():
        if SKIP_KEY.fullmatch(key):
            yield key, value


def _without_skips(document: Manifest) -> Manifest:
    metadata = dict(document["metadata"])
    annotations = metadata.pop("annotations", None) or {}
    kept = {k: v for k, v in annotations.items() if not SKIP_KEY.fullmatch(k)}
    return {**document, "metadata": metadata | ({"annotations": kept} if kept else {})}


@dataclass(frozen=True, slots=True, repr=False)  # a failure shows the check, not the report
class CheckovReport:
    """checkov's results for the files as written, and for copies without skip annotations."""

    as_written: Manifest
    bare: Manifest
    parsing_errors: int


@pytest.fixture(scope="module")
def checkov(
    rendered: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory
) -> CheckovReport:
    """One checkov run (no network) over every overlay and the example Secret, as written
    and with their skip annotations removed (in ``bare/``)."""
    try:
        command = checkov_command()
    except CheckovVenvError as exc:
        pytest.fail(str(exc))
    bare = tmp_path_factory.mktemp("bare")
    for file in {name for name, _ in _documents(rendered)}:
        documents = [_without_skips(d) for name, d in _documents(rendered) if name == file]
        (bare / file).write_text(yaml.safe_dump_all(documents))
    paths = [*map(str, _files(rendered)), *(str(bare / p.name) for p in _files(rendered))]
    options = ["--framework", "kubernetes", "--skip-download", "--compact", "-o", "json"]
    done = _run([*command, *options, "-f", *paths])
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov exited {done.returncode} without a report:\n{done.stderr}")
    assert isinstance(report, dict), "one framework, one report"

    def results(bare_copies: bool) -> Manifest:
        return {
            kind: [
                c for c in checks if (Path(c["file_path"]).parent.name == bare.name) is bare_copies
            ]
            for kind, checks in report["results"].items()
            if isinstance(checks, list)
        }

    return CheckovReport(results(False), results(True), report["summary"]["parsing_errors"])


def test_checkov_fails_no_check_on_any_overlay(checkov: CheckovReport) -> None:
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} in {c['file_path']}"
        for c in checkov.as_written["failed_checks"]
    ]
    assert failed == []
    assert checkov.parsing_errors == 0
    checked = {Path(c["file_path"]).name for c in checkov.as_written["passed_checks"]}
    assert checked == {f"{name}.yaml" for name in OVERLAYS} | {EXAMPLE_SECRET.name}


def _skip_keys(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if SKIP_KEY.fullmatch(str(key)):
                yield str(key)
            yield from _skip_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _skip_keys(item)


def _found(checks: list[Manifest]) -> set[tuple[str, str, str]]:
    return {(Path(c["file_path"]).name, c["resource"], c["check_id"]) for c in checks}


def test_every_checkov_skip_is_in_place_with_a_reason_and_still_needed(
    rendered: dict[str, Rendered], checkov: CheckovReport
) -> None:
    annotated = set()
    for file, document in _documents(rendered):
        metadata = document["metadata"]
        # checkov reads a resource's own annotations only (not, say, its pod template's).
        below = [k for key, v in document.items() if key != "metadata" for k in _skip_keys(v)]
        assert below == [], f"{file}: skips checkov cannot see"
        resource = f"{document['kind']}.{metadata.get('namespace', 'default')}.{metadata['name']}"
        for key, value in _skip_annotations(document):
            parsed = SKIP_VALUE.fullmatch(value)
            assert parsed, f"{file} {resource} {key}: want CKV_K8S_<n>=<reason>, not {value!r}"
            assert parsed[2].strip(), f"{file} {resource} {key}: {parsed[1]} has no reason"
            annotated.add((file, resource, parsed[1]))
    skipped = checkov.as_written["skipped_checks"]
    assert all(c["check_result"]["suppress_comment"].strip() for c in skipped)
    assert _found(skipped) == annotated
    # Without its annotation each skipped check fails, and nothing else does: no skip
    # outlives the finding it was written for.
    assert _found(checkov.bare["failed_checks"]) == annotated


def _port(container: Manifest, port: int | str) -> int:
    """A port number, or the number of the container port so named."""
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    assert len(numbers) == 1, f"no container port is named {port!r}"
    number: int = numbers[0]
    return number


def test_the_probes_ask_the_apps_health_paths_on_the_port_it_serves(overlay: Rendered) -> None:
    container = overlay.container
    served = int(overlay.config["CTXFY_PORT"])
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startupProbe": "/health/live",
        "livenessProbe": "/health/live",
        "readinessProbe": "/health/ready",
    }
    assert {_port(container, probe["port"]) for probe in probes.values()} == {served}
    (service_port,) = overlay.one("Service")["spec"]["ports"]
    assert _port(container, service_port["targetPort"]) == served
    (ingress,) = overlay.one("NetworkPolicy")["spec"]["ingress"]
    assert [_port(container, p["port"]) for p in ingress["ports"]] == [served]
    pod = overlay.one("Deployment")["spec"]["template"]["metadata"]
    assert int(pod["annotations"]["prometheus.io/port"]) == served


def serve_option(name: str, settings: Settings) -> float:
    """The ``name`` keyword ``ctxfy serve`` passes to ``app.serve.run``, as it would with
    ``settings``: a literal, a constant of ``app.cli``, or a field of its settings."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(app.cli.serve)))
    values = [
        keyword.value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and ast.unparse(call.func) == "run"
        for keyword in call.keywords
        if keyword.arg == name
    ]
    assert len(values) == 1, f"ctxfy serve no longer passes {name} to run()"
    match values[0]:
        case ast.Attribute(value=ast.Name(id="settings"), attr=field):
            seconds = getattr(settings, field)
        case ast.Name(id=constant):
            seconds = getattr(app.cli, constant)
        case value:
            seconds = ast.literal_eval(value)
    assert isinstance(seconds, int | float)
    return float(seconds)


def test_the_grace_period_outlasts_prestop_drain_and_graceful_shutdown(
    overlay: Rendered,
) -> None:
    # Stated in the ConfigMap, not left to the app's defaults.
    assert {"CTXFY_DRAIN_SECONDS", "CTXFY_SHUTDOWN_TIMEOUT_SECONDS"} <= set(overlay.config)
    settings = _settings({**overlay.config, **SECRET_VALUES})
    pod = overlay.one("Deployment")["spec"]["template"]["spec"]
    pre_stop = overlay.container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = serve_option("drain_seconds", settings)
    graceful = serve_option("timeout_graceful_shutdown", settings)
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain + graceful


def _dockerfile_uid_and_volumes() -> tuple[int, list[str]]:
    text = (ROOT / "Dockerfile").read_text()
    uid = re.search(r"useradd\b.*?--uid[= ](\d+)", text) or re.search(r"^USER (\d+)", text, re.M)
    assert uid, "the Dockerfile creates no user with a numeric uid"
    volumes = []
    for line in re.findall(r"^VOLUME\s+(.+)$", text, re.M):
        line = line.strip()
        volumes += json.loads(line) if line.startswith("[") else line.split()
    return int(uid[1]), volumes


def test_only_declared_volumes_are_writable_and_the_user_is_the_images(
    overlay: Rendered,
) -> None:
    pod = overlay.one("Deployment")["spec"]["template"]["spec"]
    container = overlay.container
    uid, volumes = _dockerfile_uid_and_volumes()
    assert pod["securityContext"]["runAsUser"] == container["securityContext"]["runAsUser"] == uid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = {Path(m["mountPath"]) for m in container["volumeMounts"] if m["name"] in empty_dirs}
    assert {Path(v) for v in volumes} <= writable, "a volume the image declares is not mounted"
    paths = [Path(overlay.config["CTXFY_PID_FILE"])]
    database = overlay.config.get("CTXFY_DATABASE_URL", "")
    if database.startswith("sqlite:///"):
        paths.append(Path(database.removeprefix("sqlite:///")))
    for path in paths:
        assert any(path.is_relative_to(w) for w in writable), f"{path} is read-only"


def _settings(values: dict[str, str]) -> Settings:
    fields = {key.removeprefix("CTXFY_").lower(): value for key, value in values.items()}
    unknown = set(fields) - set(Settings.model_fields)
    assert not unknown, f"not settings: {sorted(unknown)}"
    # model_validate reads no environment nor .env file: only the values given.
    return Settings.model_validate(fields)


def test_each_overlays_settings_start_the_app_once_the_secret_is_filled_in(
    overlay: Rendered,
) -> None:
    example = yaml.safe_load(EXAMPLE_SECRET.read_text())
    assert set(example["stringData"]) == set(SECRET_VALUES)
    # The pod's environment is that ConfigMap (its name carries kustomize's hash) and Secret.
    sources = [next(iter(s.values()))["name"] for s in overlay.container["envFrom"]]
    assert sources == [overlay.one("ConfigMap")["metadata"]["name"], example["metadata"]["name"]]
    settings = _settings({**overlay.config, **SECRET_VALUES})
    assert settings.env == overlay.path.stem
    assert settings.mcp_stateless


def test_the_example_secret_is_refused_unchanged_and_no_overlay_renders_a_secret(
    rendered: dict[str, Rendered],
) -> None:
    secret = yaml.safe_load(EXAMPLE_SECRET.read_text())["stringData"]
    with pytest.raises(ValidationError, match="CTXFY_MCP_STATE_KEYS"):
        _settings({**rendered["prod"].config, **secret})
    # Applying an overlay must never overwrite the Secret the operator created.
    assert [r.path.name for r in rendered.values() if r.find("Secret")] == []


def test_the_disruption_budget_lets_a_node_drain_at_the_fewest_replicas(
    overlay: Rendered,
) -> None:
    deployment = overlay.one("Deployment")
    autoscaler = overlay.find("HorizontalPodAutoscaler")
    if autoscaler is None:
        fewest = deployment["spec"]["replicas"]
    else:
        assert autoscaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert "replicas" not in deployment["spec"], "an apply would undo the autoscaler"
        fewest = autoscaler["spec"]["minReplicas"]
    budget = overlay.one("PodDisruptionBudget")["spec"]
    assert ("minAvailable" in budget) != ("maxUnavailable" in budget)
    allowed = (
        fewest - budget["minAvailable"] if "minAvailable" in budget else budget["maxUnavailable"]
    )
    assert allowed >= 1


def test_a_server_on_prods_settings_answers_each_probe_as_the_kubelet_sends_it(
    rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    prod = rendered["prod"]
    # The bind address, port and key store are the test's (running_server's): loopback only.
    kept = {k: v for k, v in prod.config.items() if k not in {"CTXFY_HOST", "CTXFY_PORT"}}
    env = {
        **kept,
        "CTXFY_PID_FILE": str(tmp_path / "ctxfy.pid"),
        "CTXFY_MCP_STATE_KEYS": SECRET_VALUES["CTXFY_MCP_STATE_KEYS"],
        "CTXFY_DRAIN_SECONDS": "0",  # stopped by the test, nothing to drain
    }
    container = prod.container
    probes = [container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe")]
    probes.append(container["readinessProbe"]["httpGet"])
    scrape = prod.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    with running_server(tmp_path, env) as server:
        for path in [p["path"] for p in probes] + [scrape["prometheus.io/path"]]:
            # The kubelet and Prometheus name the pod's address, not CTXFY_ALLOWED_HOSTS.
            host = f"10.0.0.7:{_port(container, 'http')}"
            response = httpx.get(server.base_url + path, headers={"Host": host}, timeout=10)
            assert response.status_code == 200, f"{path}: {response.status_code}"
