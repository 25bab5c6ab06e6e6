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
"""

import contextlib
import signal
import sys
import time
from types import FrameType
from typing import Any

import structlog
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

from app.http.header_guard import HeaderGuardProtocol, HeaderLimits
from app.state import AppState

logger = structlog.get_logger(__name__)

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
    """A uvicorn server that, on SIGTERM, reports not-ready and drains before exiting."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.drain_seconds = config.drain_seconds if isinstance(config, DrainingConfig) else 0.0
        self.drain_until: float | None = None
        self._drain_logged = False

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
        """uvicorn's tick (every 0.1 s), ending the drain once its period is over."""
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


def app_state(app: object) -> AppState | None:
    """The ``AppState`` of a Ctxfy app, looking through uvicorn's wrappers; else ``None``."""
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


def run(
    app_import: str,
    *,
    host: str,
    port: int,
    workers: int = 1,
    drain_seconds: float = 0.0,
    header_limits: HeaderLimits | None = None,
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
        # uvicorn builds every worker (first start, restarts, SIGHUP, SIGTTIN) from this
        # module-level name and offers no other hook; it is swapped only in this supervisor
        # process, which runs nothing else, and restored afterwards.
        original = multiprocess.Process
        multiprocess.Process = _DrainingProcess  # type: ignore[misc]  # no other hook, see above
        try:
            multiprocess.Multiprocess(config, sockets=[sock]).run()
        finally:
            multiprocess.Process = original  # type: ignore[misc]  # restoring the above
        return
    config.load_app()  # fails fast, like uvicorn.run, on a wrong import string
    server = DrainingServer(config)
    # uvicorn re-raises SIGINT once its graceful shutdown is done.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
