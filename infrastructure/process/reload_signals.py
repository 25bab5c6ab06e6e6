"""Where a reload signal goes: from the supervisor to its workers, from a worker to all.

``ctxfy serve --workers N`` runs a supervisor (``app.serve.ReloadingSupervisor``) that
forwards SIGHUP to every worker. A worker reloaded some other way (``POST
/v1/catalog/reload``) reaches its siblings by sending SIGHUP to that supervisor.
"""

import os
import signal
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import structlog

logger = structlog.get_logger(__name__)

# Set by the supervisor for its workers: where a worker sends SIGHUP to reload them all.
SUPERVISOR_PID_ENV = "CTXFY_SUPERVISOR_PID"


class Worker(Protocol):
    """What the supervisor knows of a worker process."""

    @property
    def pid(self) -> int | None: ...  # None until started

    @property
    def exitcode(self) -> int | None: ...  # None while running


def signal_workers(
    workers: Iterable[Worker], sig: int, *, send: Callable[[int, int], None] = os.kill
) -> tuple[int, ...]:
    """Send ``sig`` to every running worker; the pids it reached.

    A worker that has exited is skipped: its replacement reads the files afresh.
    """
    reached: list[int] = []
    for worker in workers:
        if worker.pid is None or worker.exitcode is not None:
            continue
        try:
            send(worker.pid, sig)
        except ProcessLookupError:
            continue
        reached.append(worker.pid)
    return tuple(reached)


def sibling_reloader(
    environ: Mapping[str, str] = os.environ,
    *,
    parent: Callable[[], int] = os.getppid,
    send: Callable[[int, int], None] = os.kill,
) -> Callable[[], None]:
    """``AppState.reload_siblings``: in a worker, SIGHUP to the supervisor, which forwards
    it to every worker (this one too, whose second reload then finds nothing changed);
    elsewhere, nothing."""
    text = environ.get(SUPERVISOR_PID_ENV, "")
    if not text.isdigit() or int(text) < 2:
        return _alone
    supervisor = int(text)

    def reload_siblings() -> None:
        # Only the parent that spawned this worker: the variable may have been inherited
        # by some other process, and an orphaned worker's supervisor is gone.
        if parent() != supervisor:
            logger.warning("reload_siblings_skipped", supervisor=supervisor, parent=parent())
            return
        try:
            send(supervisor, signal.SIGHUP)
        except OSError as exc:
            logger.warning("reload_siblings_failed", supervisor=supervisor, error=str(exc))

    return reload_siblings


def _alone() -> None:
    """A process without siblings has none to reload."""
