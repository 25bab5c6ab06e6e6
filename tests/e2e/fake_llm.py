"""A fake OpenAI-compatible Chat Completions server on 127.0.0.1, scripted by the test.

It answers ``POST /v1/chat/completions`` with whatever it was last told to (a completion, an
error status, or nothing until released) and records every request it receives.
"""

import json
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

COMPLETIONS_PATH = "/v1/chat/completions"
JOIN_TIMEOUT = 5.0
# How often a hanging request looks at its release while watching for the client to leave.
HANG_POLL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer 200 with a completion of ``text`` by ``model``, and this token usage."""

    text: str = "# A document\nwritten by the fake LLM"
    model: str = "fake-model"
    prompt_tokens: int = 120
    completion_tokens: int = 34


@dataclass(frozen=True, slots=True)
class Fail:
    """Answer ``status`` with an OpenAI-style error body (and ``Retry-After``, if given)."""

    status: int
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class Hang:
    """Answer nothing until ``released`` is set, or until the client closes the connection
    (recorded as a hang-up); then close the connection unanswered."""

    released: threading.Event = field(default_factory=threading.Event)


type Behaviour = Reply | Fail | Hang


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request as the fake received it; header names are lower-cased."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeLlm:
    """The fake's script and its record; every method is safe to call from the test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._behaviour: Behaviour = Reply()
        self._hangs: list[Hang] = []
        self._seen: list[SeenRequest] = []
        self._hung_up: list[SeenRequest] = []
        self._hang_up = threading.Condition(self._lock)

    @property
    def base_url(self) -> str:
        """What ``CTXFY_LLM_BASE_URL`` should be."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[SeenRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._seen)

    @property
    def hung_up(self) -> list[SeenRequest]:
        """Hanging requests whose client closed the connection, oldest first."""
        with self._lock:
            return list(self._hung_up)

    def wait_for_hang_up(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Whether ``count`` hanging requests' clients have closed their connections,
        waiting (bounded by ``timeout``) for them to."""
        with self._hang_up:
            return self._hang_up.wait_for(lambda: len(self._hung_up) >= count, timeout)

    def reply(self, reply: Reply) -> None:
        """Answer every request from now on with ``reply``."""
        self._set(reply)

    def fail(self, status: int, retry_after: str | None = None) -> None:
        """Answer every request from now on with ``status``."""
        self._set(Fail(status, retry_after))

    def hang(self) -> None:
        """Leave every request from now on unanswered until ``release()`` or shutdown."""
        self._set(Hang())

    def release(self) -> None:
        """Let every hanging request end (unanswered)."""
        with self._lock:
            hangs, self._hangs = self._hangs, []
        for hang in hangs:
            hang.released.set()

    def reset(self) -> None:
        """Release hanging requests, forget what was seen, and reply with the default."""
        self.release()
        with self._lock:
            self._behaviour = Reply()
            self._seen.clear()
            self._hung_up.clear()

    def _set(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._behaviour = behaviour
            if isinstance(behaviour, Hang):
                self._hangs.append(behaviour)

    def _received(self, seen: SeenRequest) -> Behaviour:
        with self._lock:
            self._seen.append(seen)
            return self._behaviour

    def _client_left(self, seen: SeenRequest) -> None:
        with self._hang_up:
            self._hung_up.append(seen)
            self._hang_up.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = FakeLlm(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        fake = cast(_Server, self.server).fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"unparsed": raw.decode("utf-8", "replace")}
        headers = {name.lower(): value for name, value in self.headers.items()}
        seen = SeenRequest(self.path, headers, body)
        behaviour = fake._received(seen)
        if self.path != COMPLETIONS_PATH:
            self._answer(404, {"error": {"message": f"no route {self.path}"}})
        elif isinstance(behaviour, Reply):
            self._answer(200, _completion(behaviour))
        elif isinstance(behaviour, Fail):
            extra = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
            error = {"message": "scripted failure", "type": "fake", "code": behaviour.status}
            self._answer(behaviour.status, {"error": error}, extra)
        else:
            if self._client_leaves_before(behaviour.released):
                fake._client_left(seen)
            self.close_connection = True

    def _client_leaves_before(self, released: threading.Event) -> bool:
        """Wait for ``released``; ``True`` if the client closes the connection first."""
        while not released.is_set():
            readable, _, _ = select.select([self.connection], [], [], HANG_POLL_SECONDS)
            if readable:
                try:
                    gone = not self.connection.recv(1, socket.MSG_PEEK)
                except ConnectionError:
                    gone = True
                if gone:
                    return True
                released.wait()  # it sent more instead: nothing to watch for
        return False

    def _answer(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads ``FakeLlm.requests`` instead."""


def _completion(reply: Reply) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


@contextmanager
def fake_llm() -> Iterator[FakeLlm]:
    """Serve a ``FakeLlm`` on a free port in a daemon thread; release and stop it on exit."""
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.fake
    finally:
        server.fake.release()
        server.shutdown()
        server.server_close()
        thread.join(timeout=JOIN_TIMEOUT)
