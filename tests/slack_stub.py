"""A small stand-in for the Slack Web API on 127.0.0.1, recording every call it receives.

Point the real ``slack_sdk.WebClient`` at it with ``SLACK_API_URL=stub.base_url``. By
default every method answers ``{"ok": true}``; ``fail_channel`` makes posts to one channel
answer a Slack error, and ``answer_next`` scripts the next responses (HTTP 429 with
Retry-After, a 500, an error body) before the default resumes.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Call:
    method: str  # e.g. "chat.postMessage"
    params: dict[str, Any]
    authorization: str | None

    @property
    def channel(self) -> str | None:
        return self.params.get("channel")

    @property
    def text(self) -> str | None:
        return self.params.get("text")

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return self.params.get("blocks") or []


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)


def rate_limited(retry_after: int = 0) -> Answer:
    return Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})


def slack_error(error: str) -> Answer:
    return Answer(200, {"ok": False, "error": error})


class SlackStub:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._scripted: deque[Answer] = deque()
        self._failing_channels: dict[str, str] = {}
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                ctype = self.headers.get("Content-Type") or ""
                params: dict[str, Any] = (
                    json.loads(raw) if "json" in ctype else dict(parse_qsl(raw))
                )
                if isinstance(params.get("blocks"), str):
                    params["blocks"] = json.loads(params["blocks"])
                method = self.path.rsplit("/", 1)[-1]
                answer = stub._record(Call(method, params, self.headers.get("Authorization")))
                body = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/api/"

    def _record(self, call: Call) -> Answer:
        with self._lock:
            self.calls.append(call)
            if self._scripted:
                return self._scripted.popleft()
            if call.channel in self._failing_channels:
                return slack_error(self._failing_channels[call.channel])
            return Answer(body={"ok": True, "channel": call.channel, "ts": f"{len(self.calls)}.0"})

    def answer_next(self, *answers: Answer) -> None:
        with self._lock:
            self._scripted.extend(answers)

    def fail_channel(self, channel: str, error: str = "channel_not_found") -> None:
        with self._lock:
            self._failing_channels[channel] = error

    def heal_channel(self, channel: str) -> None:
        """Posts to ``channel`` succeed again (the channel was created, the bot invited)."""
        with self._lock:
            self._failing_channels.pop(channel, None)

    def posts(self) -> list[Call]:
        return [c for c in self.calls if c.method == "chat.postMessage"]

    def __enter__(self) -> SlackStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
