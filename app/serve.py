"""Run the application under uvicorn, draining before a graceful shutdown on SIGTERM.

On SIGTERM each serving process marks its application as draining (``/health/ready``
answers 503, so load balancers stop sending traffic), keeps serving in-flight and new
requests for ``drain_seconds``, then shuts down as uvicorn always does: stop accepting,
wait for open requests (``timeout_graceful_shutdown``), run the lifespan's shutdown, and
exit with status 0. A second SIGTERM, or SIGINT (Ctrl+C), ends the drain at once; SIGINT
keeps uvicorn's own behaviour (a second one forces the exit). With ``drain_seconds=0``
SIGTERM stops at once, as under plain uvicorn, except that readiness fails during the
shutdown and the exit status is 0 rather than uvicorn's re-raised SIGTERM (143).

With several workers, uvicorn's supervisor forwards SIGTERM (and turns SIGINT into SIGTERM)
to every worker, and each worker drains; the supervisor waits for all of them and exits 0.
The supervisor forwards only once: a second signal sent to it alone does not cut the
drain short (Ctrl+C on a terminal does, as it reaches the workers too).

SIGHUP reloads the prompt catalog (``LiveCatalog.reload``: validated first, the old catalog
kept if a file is broken). The supervisor forwards it to every worker instead of replacing
them all, as uvicorn would: a replacement that met a broken prompt file would not start. A
worker asks its siblings to reload by sending SIGHUP to the supervisor
(``infrastructure.process.reload_signals.sibling_reloader``).
"""

import asyncio
import contextlib
import gc
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

from app.http.header_guard import HeaderGuardProtocol, HeaderLimits
from infrastructure.process.pid_file import remove_pid_file, write_pid_file
from infrastructure.process.reload_signals import SUPERVISOR_PID_ENV, signal_workers

# A spawned worker imports this module (to unpickle its target) before it can answer the
# supervisor's health check, and one silent for 5 s is killed: the application's modules
# (FastMCP's take seconds on a busy machine) are imported as the app loads, not here.
if TYPE_CHECKING:
    from app.state import AppState

logger = structlog.get_logger(__name__)

# The collector's thresholds once serving (``settle_gc``): young, middle, old generation.
GC_THRESHOLDS = (10_000, 50, 100)


# uvicorn's middleware (proxy headers, trace logging, ASGI2/WSGI adapters) wraps the app
# in at most a few layers, each exposing the next as ``.app``.
_MAX_WRAPPERS = 8


class DrainingConfig(uvicorn.Config):
    """uvicorn's configuration plus the drain period and the header limits (read by
    ``HeaderGuardProtocol``, the default ``http`` protocol); it travels to spawned workers."""

    def __init__(
        self,
        app: str,
        *,
        drain_seconds: float,
        header_limits: HeaderLimits | None = None,
        **options: Any,
    ) -> None:
        if drain_seconds < 0:
            raise ValueError("drain_seconds must not be negative")
        options.setdefault("http", HeaderGuardProtocol)
        super().__init__(app, **options)
        self.drain_seconds = drain_seconds
        self.header_limits = header_limits or HeaderLimits()


class DrainingServer(uvicorn.Server):
    """A uvicorn server that, on SIGTERM, reports not-ready and drains before exiting, and
    on SIGHUP reloads its prompt catalog."""

    def __init__(self, config: uvicorn.Config, *, pid_file: Path | None = None) -> None:
        super().__init__(config)
        self.drain_seconds = config.drain_seconds if isinstance(config, DrainingConfig) else 0.0
        self.drain_until: float | None = None
        self._drain_logged = False
        self.pid_file = pid_file  # written once serving, for `ctxfy prompts reload`
        self.reload_requested = False
        self._reloads: set[asyncio.Task[None]] = set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        """uvicorn's SIGINT and SIGTERM handling, plus SIGHUP: reload the prompt catalog."""
        with super().capture_signals():
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            # Like uvicorn, signal.signal rather than the loop's handlers, so the previous
            # handler comes back; and it is in place before the app loads, so a SIGHUP
            # during start-up (whose default action ends the process) waits for serving.
            previous = signal.signal(signal.SIGHUP, self.handle_reload)
            # SIGHUP is blocked while the app loads (``run``, ``_DrainingProcess.start``):
            # one that arrived meanwhile is delivered now, to the handler.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
            try:
                yield
            finally:
                signal.signal(signal.SIGHUP, previous)

    def handle_reload(self, sig: int, frame: FrameType | None) -> None:
        """Reload the catalog on the next tick (a signal handler sets a flag only)."""
        self.reload_requested = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up; then, if serving, the collector settled and the pid file."""
        await super().startup(sockets)
        if not self.started:
            return
        settle_gc()
        state = app_state(getattr(self.config, "loaded_app", None))
        if state is not None:
            state.catalog.on_change(_settle_gc_after_reload)
        if self.pid_file is not None:
            announce_pid(self.pid_file)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, after dropping any reload still loading."""
        for task in self._reloads:
            task.cancel()
        await asyncio.gather(*self._reloads, return_exceptions=True)
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Start draining on the first SIGTERM; anything else is uvicorn's usual exit."""
        # A signal handler: set flags only; logging happens on the next tick.
        self._mark_draining()
        if sig != signal.SIGTERM:
            super().handle_exit(sig, frame)
        elif not self.started or self.drain_until is not None or self.drain_seconds == 0:
            # Not serving yet, a second SIGTERM, or no drain: stop now. The signal is not
            # re-raised at exit (uvicorn would), so a graceful stop exits with status 0.
            self.should_exit = True
        else:
            self.drain_until = time.monotonic() + self.drain_seconds

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's tick (every 0.1 s): start a reload SIGHUP asked for, end the drain once
        its period is over."""
        if self.reload_requested and not self.should_exit:
            self.reload_requested = False
            self._start_reload()
        if self.drain_until is not None and not self.should_exit:
            if not self._drain_logged:
                self._drain_logged = True
                logger.info("draining", drain_seconds=self.drain_seconds)
            if time.monotonic() >= self.drain_until:
                logger.info("drain_complete")
                self.should_exit = True
        return await super().on_tick(counter)

    def _mark_draining(self) -> None:
        state = app_state(getattr(self.config, "loaded_app", None))
        if state is not None:
            state.lifecycle.start_draining()

    def _start_reload(self) -> None:
        state = app_state(getattr(self.config, "loaded_app", None))
        if state is None:
            logger.warning("sighup_ignored", detail="the app served has no prompt catalog")
            return
        task = asyncio.get_running_loop().create_task(_reload(state))
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)


def settle_gc() -> None:
    """Collect, then freeze what is alive, and collect less often.

    Once started, a worker holds some 130,000 long-lived objects (catalog, routes, FastMCP's
    components, imported modules); every full collection would walk them all (100 ms or
    more on this hardware), and with the default thresholds one runs every few hundred
    requests. Frozen, they are never walked; a first threshold of 10,000 makes young
    collections rarer. Collection stays on: the MCP SDK makes reference cycles per request.
    Objects frozen before are thawed first, so a catalog replaced by a reload is collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    logger.info("gc_settled", frozen=gc.get_freeze_count(), thresholds=GC_THRESHOLDS)


async def _settle_gc_after_reload(old: object, new: object, change: object) -> None:
    settle_gc()


async def _reload(state: "AppState") -> None:
    from app.services.catalog import ReloadTrigger  # loaded with the app (see the imports)

    # The pid on the reload's log lines tells the workers apart.
    with structlog.contextvars.bound_contextvars(pid=os.getpid()):
        await state.catalog.reload(ReloadTrigger.SIGNAL)


def app_state(app: object) -> "AppState | None":
    """The ``AppState`` of a Ctxfy app, looking through uvicorn's wrappers; else ``None``."""
    if app is None:  # not loaded yet; nothing is imported (this may run in a signal handler)
        return None
    from app.state import AppState  # loaded with the app (see the imports)

    for _ in range(_MAX_WRAPPERS):
        if app is None:
            return None
        state = getattr(getattr(app, "state", None), "ctxfy", None)
        if isinstance(state, AppState):
            return state
        app = getattr(app, "app", None)
    return None


class _DrainingProcess(multiprocess.Process):
    """A supervised worker whose server is a ``DrainingServer``."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(self.config)
        return self._server

    def start(self) -> None:
        """Start the worker with SIGHUP blocked (a signal mask survives exec), so one
        forwarded before its handler is installed waits rather than ending it."""
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class ReloadingSupervisor(multiprocess.Multiprocess):
    """uvicorn's supervisor, except that SIGHUP reloads every worker's catalog in place."""

    def __init__(
        self,
        config: uvicorn.Config,
        sockets: list[socket.socket],
        *,
        send: Callable[[int, int], None] = os.kill,
    ) -> None:
        super().__init__(config, sockets)
        self._send = send

    def handle_hup(self) -> None:
        """Forward SIGHUP to every worker, instead of uvicorn's restart of them all."""
        reached = signal_workers(self.processes, signal.SIGHUP, send=self._send)
        logger.info("reload_forwarded", signal="SIGHUP", workers=list(reached))


def announce_pid(path: Path) -> None:
    """Write this process's pid to ``path``; a failure is logged and serving goes on."""
    try:
        write_pid_file(path, os.getpid())
    except OSError as exc:
        logger.warning(
            "pid_file_not_written",
            path=str(path),
            error=exc.strerror or str(exc),
            detail="`ctxfy prompts reload` cannot find this server: set CTXFY_PID_FILE to "
            "a writable path, or send SIGHUP to the pid yourself",
        )
        return
    logger.info("pid_file_written", path=str(path), pid=os.getpid())


def run(
    app_import: str,
    *,
    host: str,
    port: int,
    workers: int = 1,
    drain_seconds: float = 0.0,
    header_limits: HeaderLimits | None = None,
    pid_file: Path | None = None,
    **options: Any,
) -> None:
    """Serve ``app_import`` (``"module:attribute"``) like ``uvicorn.run``, draining on SIGTERM.

    Args:
        app_import: the app, or with ``factory=True`` its factory, as an import string.
        host: interface to bind.
        port: port to bind.
        workers: worker processes; above 1, uvicorn's supervisor runs them.
        drain_seconds: how long to keep serving, not ready, after SIGTERM; 0 stops at once.
        header_limits: how long and how much a request's line and headers may take.
        pid_file: where to write the pid to signal (the supervisor's, with several
            workers) once serving; removed at exit.
        **options: any other ``uvicorn.Config`` keyword (``factory``, ``log_config``, …).
    """
    config = DrainingConfig(
        app_import,
        drain_seconds=drain_seconds,
        header_limits=header_limits,
        host=host,
        port=port,
        workers=workers,
        **options,
    )
    if config.workers > 1:
        sock = config.bind_socket()
        # uvicorn builds every worker (first start, restarts, SIGTTIN) from this
        # module-level name and offers no other hook; it is swapped only in this supervisor
        # process, which runs nothing else, and restored afterwards.
        original = multiprocess.Process
        multiprocess.Process = _DrainingProcess  # type: ignore[misc]  # no other hook, see above
        os.environ[SUPERVISOR_PID_ENV] = str(os.getpid())  # spawned workers inherit it
        try:
            supervisor = ReloadingSupervisor(config, sockets=[sock])
            if pid_file is not None:
                announce_pid(pid_file)
            supervisor.run()
        finally:
            multiprocess.Process = original  # type: ignore[misc]  # restoring the above
            os.environ.pop(SUPERVISOR_PID_ENV, None)
            if pid_file is not None:
                remove_pid_file(pid_file, os.getpid())
        return
    # Loading the app takes a while: a SIGHUP meanwhile waits for the server's handler
    # (``DrainingServer.capture_signals`` unblocks it) rather than ending the process.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        config.load_app()  # fails fast, like uvicorn.run, on a wrong import string
        server = DrainingServer(config, pid_file=pid_file)
        # uvicorn re-raises SIGINT once its graceful shutdown is done.
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if pid_file is not None:
            remove_pid_file(pid_file, os.getpid())
    if not server.started:
        sys.exit(STARTUP_FAILURE)
