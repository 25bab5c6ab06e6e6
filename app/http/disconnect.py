"""Stop work nobody waits for: a REST call whose client closes its connection is cancelled."""

from collections.abc import Awaitable, Callable

import anyio
from starlette.types import Receive

from app.http.errors import ClientDisconnected


async def unless_disconnected[T](receive: Receive, work: Callable[[], Awaitable[T]]) -> T:
    """``work()``'s result, unless the client disconnects first: then ``work`` is cancelled.

    Call once the request body has been read: from then on ``receive`` yields only
    ``http.disconnect``, when the client closes its connection (uvicorn) or once the
    response is complete, by which time the watch has ended.

    Raises:
        ClientDisconnected: the client went away; ``work`` was cancelled (or had just ended).
    """
    gone = False
    failure: Exception | None = None
    result: list[T] = []

    async def watch(work_scope: anyio.CancelScope) -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass  # more body after the whole body was read: there is none to wait for
        gone = True
        work_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(watch, group.cancel_scope)
        try:
            result.append(await work())
        except Exception as exc:  # re-raised below, outside the group, so never as a group
            failure = exc
        group.cancel_scope.cancel()
    if gone:
        raise ClientDisconnected
    if failure is not None:
        raise failure
    return result[0]
