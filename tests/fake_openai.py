"""A small scripted OpenAI-compatible server for tests: real HTTP on 127.0.0.1, nothing patched.

    with FakeOpenAI([Reply(status=429, headers={"Retry-After": "0"}), Reply({"ok": True})]) as srv:
        llm = LLM(Endpoint(srv.base_url, "m", "k"))
        ...
        assert srv.completions == 1 and len(srv.requests) == 2

`POST /v1/chat/completions` answers the next scripted `Reply` (or whatever a callable script
returns for the request body) in the shape a real server uses; `GET /v1/models` lists one model.
The server stops by itself after `lifetime_s`, even if a test forgets to leave the `with`.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

_STEP_S = 0.02  # how finely a delayed reply notices that the server is shutting down

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
}


@dataclass
class Reply:
    """One scripted answer.

    status 200: `content` is the assistant message (a dict is sent as its JSON text; None sends
    a null content). Other statuses: an OpenAI-style error body whose message is `content` (or
    a default). `raw_body` replaces the whole body, byte for byte (for malformed bodies).
    `delay_s` waits before answering (to trip client timeouts). `headers` are added as is.
    """

    content: str | dict[str, Any] | None = None
    status: int = 200
    delay_s: float = 0.0
    raw_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"


Script = Sequence[Reply] | Callable[[dict[str, Any]], Reply]


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released; nobody else takes it in practice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """The body an OpenAI-compatible server sends with a non-200 status."""
    kind, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    return {"error": {"message": message or f"fake server: {phrase}", "type": kind, "code": code, "param": None}}


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 5  # an idle keep-alive connection is dropped after this, so no handler lingers

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet tests
        pass

    def do_GET(self) -> None:
        fake = self.server.fake
        if fake._stopping.is_set():  # a kept-alive connection after stop(): hang up
            self.close_connection = True
            return
        if self.path.rstrip("/") == "/v1/models":
            body = {"object": "list", "data": [{"id": fake.model, "object": "model", "created": 0, "owned_by": "fake"}]}
            self._send(200, json.dumps(body))
        else:
            self._send(404, json.dumps(error_body(404, f"fake server: no route GET {self.path}")))

    def do_POST(self) -> None:
        fake = self.server.fake
        if fake._stopping.is_set():
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, json.dumps(error_body(404, f"fake server: no route POST {self.path}")))
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            self._send(400, json.dumps(error_body(400, "fake server: the request body is not a JSON object")))
            return
        with fake._lock:
            fake.requests.append(body)
        if fake.api_key is not None and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            sent = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            # Like OpenAI, the message repeats the key it got: a client must not pass it on.
            self._send(401, json.dumps(error_body(401, f"Incorrect API key provided: {sent}")))
            return
        if body.get("stream"):
            self._send(400, json.dumps(error_body(400, "fake server: streaming is not supported")))
            return
        try:
            reply = fake._next(body)
        except Exception as e:  # a broken callable script: show it to the test as a 500
            reply = Reply(f"fake server: the script raised {e!r}", status=500)
        if reply.delay_s > 0:
            deadline = time.monotonic() + reply.delay_s
            while time.monotonic() < deadline:
                if fake._stopping.wait(min(_STEP_S, max(0.0, deadline - time.monotonic()))):
                    self.close_connection = True
                    return
        if reply.raw_body is not None:
            text = reply.raw_body
        elif reply.status == 200:
            text = json.dumps(fake._completion(body, reply))
        else:
            message = reply.content if isinstance(reply.content, str) else None
            text = json.dumps(error_body(reply.status, message))
        if reply.status == 200:
            with fake._lock:
                fake.completions += 1
        self._send(reply.status, text, reply.headers)

    def _send(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timed out) before we answered
            self.close_connection = True


class FakeOpenAI:
    """A scripted OpenAI-compatible server on 127.0.0.1 (a context manager).

    `requests`: every chat-completion POST body received, parsed, in order (errors included).
    `completions`: how many were answered with status 200.
    A callable script gets each request body and returns the Reply for it.
    """

    def __init__(
        self,
        script: Script = (),
        *,
        api_key: str | None = None,
        model: str = "fake-model",
        lifetime_s: float = 60.0,
    ) -> None:
        self.api_key = api_key
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.completions = 0
        self._script = script
        self._served = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-openai-{self.port}", daemon=True
        )
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True
        self._thread.start()
        self._timer.start()

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving and wait for the serving thread (safe to call twice, or from the timer)."""
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
        if not first:  # the timer or another caller is stopping it: wait for that
            self._stopped.wait(5)
            return
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        self._stopped.set()

    def wait_stopped(self, timeout_s: float) -> bool:
        """True once the server has stopped (by `stop()`, the `with` or its lifetime)."""
        return self._stopped.wait(timeout_s)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The messages of the last request received (a shortcut for tests)."""
        return list(self.requests[-1]["messages"]) if self.requests else []

    def _next(self, body: dict[str, Any]) -> Reply:
        if callable(self._script):
            return self._script(body)
        with self._lock:
            if self._served >= len(self._script):
                return Reply("fake server: script exhausted", status=500)
            reply = self._script[self._served]
            self._served += 1
            return reply

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content = json.dumps(reply.content) if isinstance(reply.content, dict) else reply.content
        with self._lock:
            n = self.completions + 1
        return {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
