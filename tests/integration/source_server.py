"""A loopback HTTP(S) server whose routes serve scripted replies: good, slow, trickling, failing, dropped.

Each route holds a list of :class:`Reply`; the n-th request to a route gets the n-th reply, the last
repeating. Requests are recorded (path with query, headers), so a test can count attempts and see
the conditional headers a client sent. It binds 127.0.0.1 on a free port: nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0  # before the status line: a slow server
    trickle_seconds: float = 0.0  # between 16-byte pieces of the body: a server that trickles
    drop: bool = False  # close the connection without answering


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]


class SourceServer:
    """Start with ``with SourceServer() as server``; ``server.url(path)`` names a route."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.requests: dict[str, list[Request]] = defaultdict(list)
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def route(self, path: str, *replies: Reply) -> str:
        self.routes[path] = list(replies)
        return self.url(path)

    def url(self, path: str) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = "localhost" if self._ssl_context else "127.0.0.1"
        return f"{scheme}://{host}:{self._server.server_address[1]}{path}"

    def hits(self, path: str) -> int:
        return len(self.requests[path])

    def __enter__(self) -> SourceServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _next_reply(self, path: str, full_path: str, headers: dict[str, str]) -> Reply | None:
        with self._lock:
            self.requests[path].append(Request(full_path, headers))
            replies = self.routes.get(path)
            if not replies:
                return None
            return replies[min(len(self.requests[path]), len(replies)) - 1]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                headers = {name.lower(): value for name, value in self.headers.items()}
                reply = server._next_reply(urlsplit(self.path).path, self.path, headers)
                if reply is None:
                    reply = Reply(404, b"no such route")
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    self._answer(reply, headers)  # a client that gave up (a timeout under test) is no error

            def _answer(self, reply: Reply, headers: dict[str, str]) -> None:
                time.sleep(reply.delay_seconds)
                if reply.drop:
                    self.close_connection = True
                    return
                etag = reply.headers.get("ETag")
                if etag and headers.get("if-none-match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if not reply.trickle_seconds:
                    self.wfile.write(reply.body)
                    return
                for start in range(0, len(reply.body), 16):
                    self.wfile.write(reply.body[start:start + 16])
                    self.wfile.flush()
                    time.sleep(reply.trickle_seconds)

        return Handler
