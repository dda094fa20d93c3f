"""The worker's probe server: ``/health`` for the kubelet's liveness probe, ``/metrics`` for
Prometheus. The worker has no HTTP API of its own, so this is a plain standard-library server on
a daemon thread, started only when ``BUNKO_WORKER_HEALTH_PORT`` is set (the chart sets it).

Alive means a sign of life came recently: the loop beats on every poll between jobs, and a job's
lease thread beats on every renewal. A worker whose loop and lease thread have both stopped (a
deadlock, a wedged database driver) stops beating, and the kubelet restarts it; its job's lease
runs out and another worker takes the job over.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class Liveness:
    def __init__(self, max_silence_s: float) -> None:
        self.max_silence_s = max_silence_s
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()

    def silence_s(self) -> float:
        return time.monotonic() - self._last

    def alive(self) -> bool:
        return self.silence_s() <= self.max_silence_s


def serve(liveness: Liveness, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Start the probe server on a daemon thread; the caller shuts it down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                ok = liveness.alive()
                body = (
                    b'{"status":"ok"}'
                    if ok
                    else b'{"status":"stuck","silent_s":%d}' % int(liveness.silence_s())
                )
                self._send(200 if ok else 503, "application/json", body)
            elif self.path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest())
            else:
                self._send(404, "application/json", b'{"error":"not_found"}')

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a probe every few seconds is not news

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="worker-health", daemon=True).start()
    return server
