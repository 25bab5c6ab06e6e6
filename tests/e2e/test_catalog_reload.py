"""Editing prompt files under a real ``ctxfy serve`` and reloading by every trigger.

An operator's prompt starts at 1.0.0; each test adds a newer version and reloads it by one
trigger (SIGHUP, ``ctxfy prompts reload``, ``POST /v1/catalog/reload``, the watcher), then
checks over REST that the new version is current and the pinned 1.0.0 is still served.
A broken file is refused: the old catalog serves on, ``/health`` and ``/metrics`` say so.
With two workers, one SIGHUP to the supervisor reloads both, and restarts neither. A SIGHUP
that arrives while the app is still loading is held until the server can reload, not fatal.

Reloads are asynchronous to the signal that asks for them, so each wait polls the server
(every poll a real request) or its log, up to a deadline.
"""

import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import (
    STARTUP_TIMEOUT,
    RunningServer,
    ctxfy,
    free_port,
    pump_lines,
    running_server,
)
from tests.integration.prompt_files import prompt, write_prompt

NAME = "release_notes"
PINNED = "1.0.0"
TIMEOUT = 10.0
RELOAD_TIMEOUT = 20.0  # a reload takes milliseconds; the bound allows for a loaded machine
WORKERS = 2
ROUNDS = 20  # requests on fresh connections, so either worker may answer each
# Each test adds a version newer than every one before, whatever order the tests run in.
VERSIONS = (f"1.{minor}.0" for minor in itertools.count(1))
STARTED_PROCESS = re.compile(r"Started server process \[(\d+)\]")
DIED_PROCESS = re.compile(r"Child process \[(\d+)\] died")


@dataclass
class Reloading:
    """A running server and the operator's prompts directory it serves."""

    server: RunningServer
    prompts: Path

    def http(self) -> httpx.Client:
        """A client with the server's admin key; a fresh connection for every request, so
        that with several workers each may answer."""
        return httpx.Client(
            base_url=self.server.base_url,
            timeout=TIMEOUT,
            headers={"Authorization": f"Bearer {self.server.key}"},
            limits=httpx.Limits(max_keepalive_connections=0),
        )


def write_version(directory: Path, version: str, **fields: Any) -> Path:
    """``release_notes`` in ``version``, in a file of its own; ``fields`` are added."""
    document = prompt(
        name=NAME,
        title=f"Release notes {version}",
        description="Writes release notes.",
        version=version,
        messages=[{"role": "user", "content": f"Notes ({version}) for {{{{ who }}}}"}],
    )
    return write_prompt(directory, document | fields, f"{NAME}-{version}.yaml")


def start(directory: Path, env: dict[str, str]) -> Iterator[Reloading]:
    prompts = directory / "prompts"
    prompts.mkdir()
    write_version(prompts, PINNED)
    settings = {"CTXFY_PROMPTS_DIR": str(prompts), "CTXFY_DRAIN_SECONDS": "0", **env}
    with running_server(directory, settings, scope="admin") as server:
        yield Reloading(server, prompts)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reloading]:
    """One process, its pid file where it goes by default (the temp dir, by port)."""
    yield from start(tmp_path_factory.mktemp("reload-single"), {})


@pytest.fixture(scope="module")
def watching(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reloading]:
    """One process watching its prompts directory."""
    for running in start(tmp_path_factory.mktemp("reload-watch"), {"CTXFY_PROMPTS_WATCH": "true"}):
        running.server.wait_for_output("catalog_watch_started")
        yield running


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reloading]:
    """Two workers under uvicorn's supervisor."""
    yield from start(tmp_path_factory.mktemp("reload-workers"), {"CTXFY_WORKERS": str(WORKERS)})


def until[T](probe: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
    """``probe()`` again and again until ``done`` says so, within ``RELOAD_TIMEOUT``."""
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {value!r} after {RELOAD_TIMEOUT}s")


def current_version(http: httpx.Client) -> str:
    response = http.get(f"/v1/prompts/{NAME}")
    assert response.status_code == 200, response.text
    version: str = response.json()["version"]
    return version


def wait_until_current(http: httpx.Client, version: str) -> str:
    return until(lambda: current_version(http), lambda v: v == version, f"{NAME}'s version")


def assert_pinned_version_served(http: httpx.Client) -> None:
    described = http.get(f"/v1/prompts/{NAME}@{PINNED}")
    preview = http.post(f"/v1/prompts/{NAME}@{PINNED}/preview", json={"who": "Ada"})
    assert described.status_code == 200, described.text
    assert described.json()["version"] == PINNED
    assert preview.status_code == 200, preview.text
    assert preview.json()["version"] == PINNED
    assert f"Notes ({PINNED}) for Ada" in json.dumps(preview.json()["messages"])


def reloads(http: httpx.Client, trigger: str, outcome: str) -> float:
    """``ctxfy_catalog_reload_total`` for a trigger and outcome, summed over workers."""
    response = http.get("/metrics")
    assert response.status_code == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "ctxfy_catalog_reload_total"
        and sample.labels == {"trigger": trigger, "outcome": outcome}
    )


def catalog_detail(http: httpx.Client) -> str:
    checks = http.get("/health").json()["checks"]
    detail: str = next(check["detail"] for check in checks if check["name"] == "catalog")
    return detail


def events(server: RunningServer, since: int = 0) -> list[dict[str, Any]]:
    """The JSON log lines from the ``since``-th on."""
    with server.arrived:
        lines = server.lines[since:]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return parsed


def wait_for_log(
    server: RunningServer, done: Callable[[list[str]], bool], what: str, timeout: float
) -> None:
    with server.arrived:
        if not server.arrived.wait_for(lambda: done(server.lines), timeout):
            raise AssertionError(f"{what} did not appear in the server's log")


def test_sighup_serves_the_new_version_and_still_the_pinned_one(single: Reloading) -> None:
    version = next(VERSIONS)
    write_version(single.prompts, version)
    with single.http() as http:
        changed = reloads(http, "signal", "changed")

        single.server.process.send_signal(signal.SIGHUP)

        assert wait_until_current(http, version) == version
        assert_pinned_version_served(http)
        assert reloads(http, "signal", "changed") == changed + 1
        assert "(changed)" in catalog_detail(http)


def test_the_collector_is_settled_once_serving_and_again_after_each_reload(
    single: Reloading,
) -> None:
    def settled() -> list[dict[str, Any]]:
        return [event for event in events(single.server) if event.get("event") == "gc_settled"]

    at_start = settled()
    assert at_start, "no gc_settled line at start-up"
    assert at_start[0]["thresholds"] == [10_000, 50, 100]
    assert at_start[0]["frozen"] > 10_000  # the app's long-lived objects, frozen
    version = next(VERSIONS)
    write_version(single.prompts, version)
    with single.http() as http:
        assert http.post("/v1/catalog/reload").json()["outcome"] == "changed"
    wait_for_log(
        single.server,
        lambda lines: len(settled()) > len(at_start),
        "gc_settled after the reload",
        RELOAD_TIMEOUT,
    )


def test_ctxfy_prompts_reload_signals_the_server_it_finds_by_port(single: Reloading) -> None:
    version = next(VERSIONS)
    write_version(single.prompts, version)

    # The same environment as the server: its port names the pid file in the temp dir.
    said = ctxfy(single.server.env, "prompts", "reload")

    assert f"sent SIGHUP to the server, pid {single.server.process.pid}" in said
    assert f"ctxfy-{single.server.port}.pid" in said
    with single.http() as http:
        assert wait_until_current(http, version) == version
        assert_pinned_version_served(http)


def test_post_catalog_reload_serves_the_new_version_at_once(single: Reloading) -> None:
    version = next(VERSIONS)
    write_version(single.prompts, version)
    with single.http() as http:
        response = http.post("/v1/catalog/reload")

        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "changed"
        assert response.json()["added"] == [f"{NAME}@{version}"]
        assert current_version(http) == version
        assert_pinned_version_served(http)


def test_a_broken_file_is_refused_and_the_old_catalog_keeps_serving(single: Reloading) -> None:
    broken = write_version(single.prompts, "9.0.0", colour="red")  # not a prompt field
    with single.http() as http:
        serving = current_version(http)
        failed = reloads(http, "signal", "failed")
        try:
            # The CLI checks first, and signals nothing.
            refused = subprocess.run(
                [sys.executable, "-m", "app", "prompts", "reload"],
                env=single.server.env,
                capture_output=True,
                text=True,
                timeout=STARTUP_TIMEOUT,
                check=False,
            )
            # SIGHUP itself: the server checks too, and keeps what it has.
            single.server.process.send_signal(signal.SIGHUP)
            until(lambda: reloads(http, "signal", "failed"), lambda n: n == failed + 1, "failures")

            detail = catalog_detail(http)
            after = current_version(http)
            unknown = http.get(f"/v1/prompts/{NAME}@9.0.0")
            assert_pinned_version_served(http)
        finally:
            broken.unlink()
            single.server.process.send_signal(signal.SIGHUP)
            until(lambda: catalog_detail(http), lambda d: "failed" not in d, "recovery")

    assert refused.returncode == 2
    assert "nothing signalled" in refused.stderr
    assert str(broken) in refused.stderr
    assert after == serving
    assert unknown.status_code == 404
    assert "failed and the previous catalog is serving" in detail
    assert str(broken) in detail
    assert "colour" in detail


def test_the_watcher_serves_an_added_version_and_refuses_invalid_yaml(
    watching: Reloading,
) -> None:
    version = next(VERSIONS)
    with watching.http() as http:
        failed = reloads(http, "watch", "failed")

        write_version(watching.prompts, version)
        assert wait_until_current(http, version) == version
        assert_pinned_version_served(http)

        broken = watching.prompts / f"{NAME}-9.0.0.yaml"
        broken.write_text("name: release_notes\nversion: [9.0.0\n", "utf-8")
        until(lambda: reloads(http, "watch", "failed"), lambda n: n > failed, "watch failures")
        detail = catalog_detail(http)
        after = current_version(http)
        assert_pinned_version_served(http)

        broken.unlink()
        until(lambda: catalog_detail(http), lambda d: "failed" not in d, "recovery")

    assert after == version
    assert "failed and the previous catalog is serving" in detail
    assert str(broken) in detail


def live_workers(lines: list[str]) -> set[int]:
    started = {int(m[1]) for line in lines if (m := STARTED_PROCESS.search(line))}
    died = {int(m[1]) for line in lines if (m := DIED_PROCESS.search(line))}
    return started - died


def all_serving(lines: list[str]) -> bool:
    """Two workers up, each past its start-up (a worker killed while it was still
    importing, as uvicorn does to one that misses its health check, never logs a start)."""
    complete = sum("Application startup complete" in line for line in lines)
    started = sum(bool(STARTED_PROCESS.search(line)) for line in lines)
    return len(live_workers(lines)) == WORKERS and complete >= started


def forwarded_to(server: RunningServer, since: int) -> list[int]:
    """The workers the supervisor's next SIGHUP forwarding (from line ``since``) reached."""
    wait_for_log(
        server,
        lambda lines: any('"reload_forwarded"' in line for line in lines[since:]),
        "the supervisor forwarding SIGHUP",
        RELOAD_TIMEOUT,
    )
    line = next(e for e in events(server, since) if e["event"] == "reload_forwarded")
    pids: list[int] = line["workers"]
    return pids


def signal_reloads_by(server: RunningServer, pids: list[int], since: int) -> dict[int, str]:
    """Each worker's SIGHUP reload from line ``since`` on: pid -> its log event."""

    def seen() -> dict[int, str]:
        return {
            e["pid"]: e["event"]
            for e in events(server, since)
            if e.get("trigger") == "signal" and e.get("pid") in pids
        }

    wait_for_log(
        server, lambda _: len(seen()) == len(pids), "every worker's reload", RELOAD_TIMEOUT
    )
    return seen()


def every_answer(http: httpx.Client) -> set[str]:
    return {current_version(http) for _ in range(ROUNDS)}


def test_sighup_to_the_supervisor_reloads_every_worker_and_restarts_none(
    workers: Reloading,
) -> None:
    server = workers.server
    wait_for_log(server, all_serving, "two serving workers", STARTUP_TIMEOUT * 2)
    serving = live_workers(server.lines)
    version = next(VERSIONS)
    write_version(workers.prompts, version)
    mark = len(server.lines)

    server.process.send_signal(signal.SIGHUP)
    reached = forwarded_to(server, mark)
    reloaded = signal_reloads_by(server, reached, mark)
    with workers.http() as http:
        answers = every_answer(http)
        assert_pinned_version_served(http)
    again = len(server.lines)
    server.process.send_signal(signal.SIGHUP)
    reached_again = forwarded_to(server, again)
    reloaded_again = signal_reloads_by(server, reached_again, again)

    assert set(reached) == serving
    assert reloaded == dict.fromkeys(reached, "catalog_reloaded")
    assert answers == {version}
    # The same processes took the second signal, and none was started meanwhile.
    assert set(reached_again) == serving
    assert reloaded_again == dict.fromkeys(reached_again, "catalog_reload_unchanged")
    assert live_workers(server.lines) == serving
    assert not any(STARTED_PROCESS.search(line) for line in server.lines[mark:])


def test_a_reload_through_one_worker_reaches_the_other(workers: Reloading) -> None:
    server = workers.server
    wait_for_log(server, all_serving, "two serving workers", STARTUP_TIMEOUT * 2)
    version = next(VERSIONS)
    write_version(workers.prompts, version)
    mark = len(server.lines)

    with workers.http() as http:
        response = http.post("/v1/catalog/reload")
        reached = forwarded_to(server, mark)
        reloaded = signal_reloads_by(server, reached, mark)
        answers = every_answer(http)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "changed"
    assert set(reached) == live_workers(server.lines)
    # The worker that answered already had it; the other loaded it on the supervisor's word.
    assert sorted(reloaded.values()) == ["catalog_reload_unchanged", "catalog_reloaded"]
    assert answers == {version}


def sighup_blocked(pid: int) -> bool:
    """Whether process ``pid`` has SIGHUP blocked (Linux's /proc)."""
    status = Path(f"/proc/{pid}/status").read_text("ascii")
    mask = int(
        next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16
    )
    return bool(mask & (1 << (signal.SIGHUP - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads signal masks in /proc")
def test_a_sighup_while_the_app_is_loading_waits_then_reloads_and_the_pid_file_goes_at_exit(
    tmp_path: Path,
) -> None:
    # SIGHUP's default action ends a process; until the server's handler is in place the
    # signal is blocked, so it is held and delivered then.
    pid_file = tmp_path / "run" / "ctxfy.pid"
    pid_file.parent.mkdir()
    env = {
        **os.environ,
        "CTXFY_HOST": "127.0.0.1",
        "CTXFY_PORT": str(free_port()),
        "CTXFY_LOG_FORMAT": "json",
        "CTXFY_DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}",
        "CTXFY_PID_FILE": str(pid_file),
        "CTXFY_DRAIN_SECONDS": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=pump_lines, args=(process, lines), daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not sighup_blocked(process.pid):
            assert time.monotonic() < deadline, "the server never blocked SIGHUP"
            with pytest.raises(subprocess.TimeoutExpired):  # still running, not ended
                process.wait(timeout=0.01)
        process.send_signal(signal.SIGHUP)
        while not any('"trigger":"signal"' in line for line in seen):
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, "the server exited:\n" + "\n".join(seen)
            seen.append(line)
        written = pid_file.read_text("ascii").strip()  # written once serving, before a tick
    finally:
        process.terminate()
        exit_code = process.wait(timeout=TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()

    reload_line = json.loads(next(line for line in seen if '"trigger":"signal"' in line))
    assert any("Application startup complete" in line for line in seen)
    assert reload_line["event"] == "catalog_reload_unchanged"
    assert reload_line["pid"] == process.pid
    assert written == str(process.pid)
    assert exit_code == 0
    assert os.listdir(pid_file.parent) == []  # removed at exit, and no temporary file left
