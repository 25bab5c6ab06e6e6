"""Every route's endpoint and dependencies are coroutines, so none waits for a thread.

FastAPI runs a plain ``def`` endpoint or dependency in its thread pool: a hand-off to another
thread and back on every request, for work that is an attribute read. The one exception is
the metrics scrape, which reads the per-worker files of a multi-process registry.
"""

import inspect
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from pydantic import SecretStr

from app.main import create_app
from app.settings import Settings

IN_THREADS = {"/metrics"}  # blocking file reads, on purpose in the thread pool


def is_coroutine(call: object) -> bool:
    """Whether FastAPI awaits ``call`` rather than running it in a thread."""
    dunder = getattr(call, "__call__", None)  # noqa: B004 — instances with an async __call__
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(dunder)


def threaded(app: FastAPI) -> list[str]:
    """``path: call`` of every endpoint or dependency FastAPI would run in a thread."""
    found: list[str] = []
    for route in iter_route_contexts(app.routes):
        root: Dependant | None = getattr(route, "dependant", None)
        path = getattr(route, "path", "?")
        pending = [root] if root is not None else []
        while pending:
            dependant = pending.pop()
            call = dependant.call
            if call is not None and not is_coroutine(call) and path not in IN_THREADS:
                found.append(f"{path}: {getattr(call, '__qualname__', call)!r}")
            pending.extend(dependant.dependencies)
    return found


def test_no_route_runs_an_endpoint_or_a_dependency_in_the_thread_pool(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=SecretStr(f"sqlite:///{tmp_path / 'keys.db'}")))
    assert threaded(app) == []


def test_the_check_finds_a_plain_def_dependency(tmp_path: Path) -> None:
    def plain() -> int:
        return 1

    app = create_app(Settings(database_url=SecretStr(f"sqlite:///{tmp_path / 'keys.db'}")))

    @app.get("/v1/plain")
    async def endpoint(value: int = Depends(plain)) -> int:
        return value

    assert threaded(app) == [
        "/v1/plain: 'test_the_check_finds_a_plain_def_dependency.<locals>.plain'"
    ]
