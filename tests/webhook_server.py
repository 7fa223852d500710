"""A webhook service on a loopback port that records every call, for the systems tests.

Paths choose its behaviour: ``/flaky`` fails twice per idempotency key, then answers done;
``/later`` accepts for later (finish through a callback or ``/status/KEY``); ``/forged``
answers done but signs with the wrong secret; ``/done`` answers done at once; ``/redirect``
answers 302 to ``Service.redirect_to``; ``/replay`` answers the first task done, then
replays that same signed answer (headers and body) to every other task, as an attacker on
the path would. Every request's signature is checked against the real secret and the
verdict recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from compliance.systems.webhook import IDEMPOTENCY_HEADER, SignatureError, signed_headers, verify


@dataclass
class Call:
    method: str
    path: str
    key: str
    body: dict[str, Any] | None
    signature_ok: bool


@dataclass
class Service:
    secret: bytes
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    finished: set[str] = field(default_factory=set)  # keys the service considers done
    data: dict[str, Any] = field(default_factory=lambda: {"tickets": [{"id": 7, "subject": "Hi"}]})
    redirect_to: str = ""
    #: The first answer /replay sent: (headers, body), replayed to every later task.
    captured: tuple[dict[str, str], bytes] | None = None

    def keys(self, path: str) -> list[str]:
        return [c.key for c in self.calls if c.path == path]


@contextmanager
def webhook_service(secret: bytes) -> Iterator[Service]:
    service = Service(secret)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet test output
            pass

        def _answer(
            self, status: int, document: dict[str, Any], *, key: str, forged: bool = False
        ) -> tuple[dict[str, str], bytes]:
            body = json.dumps(document).encode()
            signed = signed_headers(b"not-the-secret" if forged else secret, body, key=key)
            self._reply(status, signed, body)
            return signed, body

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self, body: bytes, key: str) -> Call:
            try:
                verify(secret, dict(self.headers.items()), body, key=key)
                ok = True
            except SignatureError:
                ok = False
            call = Call(self.command, self.path, key, json.loads(body) if body else None, ok)
            service.calls.append(call)
            return call

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            key = self.headers.get(IDEMPOTENCY_HEADER, "")
            call = self._record(body, key)
            if not call.signature_ok:
                self._answer(401, {"status": "failed", "error": "bad signature"}, key=key)
                return
            tries = sum(1 for c in service.calls if c.key == call.key and c.path == self.path)
            if self.path == "/flaky" and tries <= 2:
                self._answer(503, {"status": "failed", "error": "busy"}, key=key)
            elif self.path == "/later":
                self._answer(202, {"status": "accepted"}, key=key)
            elif self.path == "/forged":
                self._answer(200, {"status": "done"}, key=key, forged=True)
            elif self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", service.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/replay" and service.captured is not None:
                self._reply(200, *service.captured)
            else:
                service.finished.add(call.key)
                answer = self._answer(200, {"status": "done", "data": service.data}, key=key)
                if self.path == "/replay":
                    service.captured = answer

        def do_GET(self) -> None:
            key = self.path.rsplit("/", 1)[-1]
            call = self._record(b"", key)
            if not call.signature_ok:
                self._answer(401, {"status": "failed", "error": "bad signature"}, key=key)
            elif key in service.finished:
                self._answer(200, {"status": "done", "data": service.data}, key=key)
            else:
                self._answer(200, {"status": "accepted"}, key=key)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
