"""HTTP servers on 127.0.0.1 for the published-model tests: ``python -m http.server`` over a folder
(as a mirror of the original server would be), and an in-process one that honours Range and can
cut a transfer short (to test resuming)."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import requests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def http_server(folder: Path, timeout: float = 20.0) -> Iterator[str]:
    """``python -m http.server`` serving ``folder`` on a free port; yields its URL, stops it after."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(url + "/", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"http.server on {url} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves files under ``server.folder`` honouring ``Range: bytes=N-``; the first answer for a
    path in ``server.cut`` (path -> byte count) stops after that many bytes and closes."""

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path = Path(self.server.folder) / self.path.lstrip("/")
        self.server.seen.append((self.path, self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = self.server.cut.pop(self.path, None)
        self.wfile.write(body[start:cut])
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


@contextmanager
def range_server(folder: Path) -> Iterator[ThreadingHTTPServer]:
    """A :class:`RangeHandler` server for ``folder``; ``.url`` is its address."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.folder, httpd.seen, httpd.cut = folder, [], {}
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
