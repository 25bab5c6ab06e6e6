"""SIGHUP reloads: the server's handler, the supervisor's forwarding, a worker's siblings.

Signals are sent for real within this process where that is safe (the handlers are put
back afterwards); processes that would be signalled are fakes that record what they got.
"""

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
import uvicorn
from structlog.testing import capture_logs
from uvicorn.supervisors import multiprocess

from app.main import create_app
from app.serve import DrainingServer, ReloadingSupervisor, announce_pid, app_state
from app.services.catalog import ReloadTrigger
from app.settings import Settings
from app.state import AppState
from infrastructure.catalog.catalog import PromptCatalog
from infrastructure.process.reload_signals import (
    SUPERVISOR_PID_ENV,
    sibling_reloader,
    signal_workers,
)
from tests.integration.prompt_files import prompt, write_prompt

SUPERVISOR = 4242


@dataclass
class FakeWorker:
    """A supervised worker as the supervisor sees it."""

    pid: int | None
    exitcode: int | None = None


@dataclass
class Kernel:
    """Records the signals sent; the pids in ``gone`` have exited meanwhile."""

    gone: frozenset[int] = frozenset()
    sent: list[tuple[int, int]] = field(default_factory=list)

    def kill(self, pid: int, sig: int) -> None:
        if pid in self.gone:
            raise ProcessLookupError(pid)
        self.sent.append((pid, sig))


@pytest.fixture
def restored_signals() -> Iterator[None]:
    """uvicorn's supervisor takes over a dozen signals when built; they are put back."""
    saved = {sig: signal.getsignal(sig) for sig in multiprocess.SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_signal_reaches_every_running_worker_and_skips_the_others() -> None:
    kernel = Kernel(gone=frozenset({103}))
    workers = [FakeWorker(101), FakeWorker(None), FakeWorker(102, exitcode=1), FakeWorker(103)]

    reached = signal_workers(workers, signal.SIGHUP, send=kernel.kill)

    assert reached == (101,)
    assert kernel.sent == [(101, signal.SIGHUP)]


@pytest.mark.usefixtures("restored_signals")
def test_the_supervisor_forwards_sighup_to_its_workers_instead_of_restarting_them() -> None:
    kernel = Kernel()
    supervisor = ReloadingSupervisor(uvicorn.Config("app.main:app"), sockets=[], send=kernel.kill)
    supervisor.processes.extend([FakeWorker(201), FakeWorker(202)])  # type: ignore[list-item]  # fakes for init_processes' workers
    restarted: list[bool] = []
    supervisor.restart_all = lambda: restarted.append(True)  # type: ignore[method-assign]  # uvicorn's SIGHUP action, which must not run

    signal.raise_signal(signal.SIGHUP)  # queued by the supervisor's own handler
    with capture_logs() as logs:
        supervisor.handle_signals()

    assert kernel.sent == [(201, signal.SIGHUP), (202, signal.SIGHUP)]
    assert restarted == []
    assert [(line["event"], line["workers"]) for line in logs] == [("reload_forwarded", [201, 202])]


def test_a_worker_asks_its_supervisor_to_reload_every_worker() -> None:
    kernel = Kernel()
    reload_siblings = sibling_reloader(
        {SUPERVISOR_PID_ENV: str(SUPERVISOR)}, parent=lambda: SUPERVISOR, send=kernel.kill
    )

    reload_siblings()

    assert kernel.sent == [(SUPERVISOR, signal.SIGHUP)]


def test_a_single_process_has_no_siblings_to_signal() -> None:
    kernel = Kernel()

    sibling_reloader({}, parent=lambda: SUPERVISOR, send=kernel.kill)()

    assert kernel.sent == []


@pytest.mark.parametrize("value", ["", "0", "1", "-5", "nine"])
def test_a_supervisor_pid_that_cannot_be_one_is_ignored(value: str) -> None:
    kernel = Kernel()

    sibling_reloader({SUPERVISOR_PID_ENV: value}, parent=lambda: 1, send=kernel.kill)()

    assert kernel.sent == []


def test_a_worker_whose_parent_is_not_the_supervisor_signals_nobody() -> None:
    # An orphaned worker (its supervisor gone), or a process that merely inherited the
    # variable: the pid may belong to anything by now.
    kernel = Kernel()
    reload_siblings = sibling_reloader(
        {SUPERVISOR_PID_ENV: str(SUPERVISOR)}, parent=lambda: 1, send=kernel.kill
    )

    with capture_logs() as logs:
        reload_siblings()

    assert kernel.sent == []
    assert [line["event"] for line in logs] == ["reload_siblings_skipped"]


def test_a_supervisor_that_cannot_be_signalled_is_logged_not_raised() -> None:
    kernel = Kernel(gone=frozenset({SUPERVISOR}))
    reload_siblings = sibling_reloader(
        {SUPERVISOR_PID_ENV: str(SUPERVISOR)}, parent=lambda: SUPERVISOR, send=kernel.kill
    )

    with capture_logs() as logs:
        reload_siblings()

    assert [(line["event"], line["log_level"]) for line in logs] == [
        ("reload_siblings_failed", "warning")
    ]


def test_the_server_takes_sighup_while_it_serves_and_gives_it_back_after() -> None:
    server = DrainingServer(uvicorn.Config("app.main:app"))
    before = signal.getsignal(signal.SIGHUP)

    with server.capture_signals():
        signal.raise_signal(signal.SIGHUP)
        requested = server.reload_requested

    assert requested
    assert signal.getsignal(signal.SIGHUP) == before


@pytest.fixture
def served(tmp_path: Path) -> tuple[DrainingServer, AppState, Path]:
    """A server around a real (not started) app whose prompts live in a temp directory."""
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    write_prompt(prompts, prompt(), "greet.yaml")
    settings = Settings(prompts_dir=prompts, database_url=f"sqlite:///{tmp_path / 'keys.db'}")
    config = uvicorn.Config(create_app(settings), lifespan="off")
    config.load()  # wraps the app as uvicorn does; the server must look through it
    state = app_state(config.loaded_app)
    assert state is not None
    return DrainingServer(config), state, prompts


@pytest.mark.anyio
async def test_a_requested_reload_runs_on_the_next_tick(
    served: tuple[DrainingServer, AppState, Path],
) -> None:
    server, state, prompts = served
    changed = anyio.Event()

    async def heard(old: PromptCatalog, new: PromptCatalog, change: object) -> None:
        changed.set()

    state.catalog.on_change(heard)
    write_prompt(prompts, prompt(version="1.1.0"), "greet-1.1.0.yaml")

    server.handle_reload(signal.SIGHUP, None)
    await server.on_tick(1)
    with anyio.fail_after(5):
        await changed.wait()

    assert state.catalog.current.get("greet").version == "1.1.0"
    assert state.catalog.last_reload is not None
    assert state.catalog.last_reload.trigger is ReloadTrigger.SIGNAL
    assert not server.reload_requested


@pytest.mark.anyio
async def test_no_reload_starts_once_the_server_is_shutting_down(
    served: tuple[DrainingServer, AppState, Path],
) -> None:
    server, state, _ = served
    server.handle_reload(signal.SIGHUP, None)
    server.should_exit = True
    running = len(anyio.get_running_tasks())

    assert await server.on_tick(1) is True

    assert len(anyio.get_running_tasks()) == running  # no reload task was started
    assert state.catalog.last_reload is None


def test_a_pid_file_that_cannot_be_written_is_logged_and_serving_goes_on(tmp_path: Path) -> None:
    with capture_logs() as logs:
        announce_pid(tmp_path / "read-only" / "ctxfy.pid")
        announce_pid(tmp_path / "ctxfy.pid")

    assert [line["event"] for line in logs] == ["pid_file_not_written", "pid_file_written"]
    assert "CTXFY_PID_FILE" in logs[0]["detail"]
    assert (tmp_path / "ctxfy.pid").read_text("ascii") == f"{os.getpid()}\n"
