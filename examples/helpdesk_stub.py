"""A helpdesk that speaks Privacy Desk's webhook contract, on loopback, for trying webhooks.

Run it in one terminal::

    HELPDESK_WEBHOOK_SECRET=demo-secret python -m examples.helpdesk_stub

and uncomment ``[systems.helpdesk]`` in compliance.toml (with the same variable set for the
jobs). It checks every request's ``v2`` signature (over the timestamp, the task's
idempotency key and the body), answers erasures at once (``done``) and access requests
later (``accepted``, then ``done`` with data on the status URL after ``--delay`` seconds),
signs every answer over the same task's key, and answers a repeated idempotency key with
its first answer. It keeps nothing on disk; it is a demo, not a helpdesk.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from compliance.systems.webhook import IDEMPOTENCY_HEADER, SignatureError, signed_headers, verify

SECRET_ENV = "HELPDESK_WEBHOOK_SECRET"


def make_handler(secret: bytes, delay: float) -> type[BaseHTTPRequestHandler]:
    answers: dict[str, dict[str, Any]] = {}  # idempotency key -> first answer
    accepted_at: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, document: dict[str, Any], key: str) -> None:
            """Answer, signed over the task's key: the answer is worth nothing for another task."""
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in signed_headers(secret, body, key=key).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            key = self.headers.get(IDEMPOTENCY_HEADER, "")
            try:
                verify(secret, dict(self.headers.items()), body, key=key)
            except SignatureError as exc:
                self._send(401, {"status": "failed", "error": str(exc)}, key)
                return
            if key in answers:  # a resend after a crash: same key, same answer, no new work
                self._send(200, answers[key], key)
                return
            request = json.loads(body)
            if request.get("kind") == "erasure":
                answers[key] = {"status": "done"}
                print(f"erased tickets of subject {request['subject'].get('id')} ({key[:8]})")
                self._send(200, answers[key], key)
            else:
                answers[key] = {"status": "accepted"}
                accepted_at[key] = time.monotonic()
                print(f"export of subject {request['subject'].get('id')} accepted ({key[:8]})")
                self._send(202, answers[key], key)

        def do_GET(self) -> None:
            key = self.path.rstrip("/").rsplit("/", 1)[-1]
            try:  # a poll is signed over the key with an empty body
                verify(secret, dict(self.headers.items()), b"", key=key)
            except SignatureError as exc:
                self._send(401, {"status": "failed", "error": str(exc)}, key)
                return
            if key not in accepted_at:
                self._send(404, {"status": "failed", "error": "unknown key"}, key)
            elif time.monotonic() - accepted_at[key] < delay:
                self._send(200, {"status": "accepted"}, key)
            else:
                data = {"tickets": [{"id": 1, "subject": "Cannot log in", "status": "closed"}]}
                self._send(200, {"status": "done", "data": data}, key)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"helpdesk_stub {self.command} {self.path}\n")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="A loopback helpdesk for Privacy Desk webhooks.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--delay", type=float, default=30.0, help="Seconds before an export is ready."
    )
    args = parser.parse_args()
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        sys.exit(f"Error: set {SECRET_ENV} (the same value the jobs see)")
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), make_handler(secret.encode(), args.delay)
    )
    print(f"helpdesk stub on http://127.0.0.1:{args.port}/privacy (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
