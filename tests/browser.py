"""Headless Chromium driven over the DevTools protocol, with the standard library only.

Used by the browser tests: open pages, evaluate JavaScript in them, take screenshots, and
record every JavaScript dialog (``alert``) a page opens. The WebSocket client implements just
what the protocol needs (RFC 6455 text frames, client masking, fragmentation, ping/close).
"""
from __future__ import annotations

import base64
import json
import os
import queue
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The path of an installed Chromium or Chrome, else None."""
    return next((path for name in EXECUTABLES if (path := shutil.which(name))), None)


class WebSocket:
    """A blocking WebSocket client for ``ws://host:port/path`` URLs (text messages)."""

    def __init__(self, url: str, timeout: float):
        parts = urlparse(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv_some()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head[:200]!r}")

    def _recv_some(self) -> bytes:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("WebSocket closed by the browser")
        return chunk

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.buffer += self._recv_some()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        size = len(payload)
        if size < 126:
            header += bytes([0x80 | size])
        elif size < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", size)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", size)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        """The next complete text message (pings are answered, fragments joined)."""
        message = b""
        while True:
            first, second = self._read(2)
            opcode, size = first & 0x0F, second & 0x7F
            if size == 126:
                size = struct.unpack("!H", self._read(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(size)
            if opcode == 0x8:
                raise ConnectionError("WebSocket closed by the browser")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1):
                message += payload
                if first & 0x80:
                    return message.decode()

    def close(self) -> None:
        self.sock.close()


class Browser:
    """One headless Chromium with one page; use as a context manager.

    ``dialogs`` lists the messages of the JavaScript dialogs pages opened (each is accepted so
    the page goes on).
    """

    def __init__(self, executable: str, profile_dir: Path, timeout: float = 20.0, size: tuple[int, int] = (1280, 1400)):
        self.timeout = timeout
        self.dialogs: list[str] = []
        self.events: list[dict] = []
        self._next_id = 0
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--remote-debugging-port=0", f"--user-data-dir={profile_dir}",
             f"--window-size={size[0]},{size[1]}", "--hide-scrollbars", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + timeout
        endpoint = None
        while endpoint is None:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.close()
                raise TimeoutError(f"{executable} printed no DevTools endpoint within {timeout} s") from None
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            endpoint = match.group(1) if match else None
        self.ws = WebSocket(endpoint, timeout)
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _drain(self, lines: queue.Queue) -> None:
        for line in self.process.stderr:
            lines.put(line)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handle_event(self, message: dict) -> None:
        self.events.append(message)
        if message.get("method") == "Page.javascriptDialogOpening":
            self.dialogs.append(message["params"].get("message", ""))
            self._send("Page.handleJavaScriptDialog", {"accept": True}, session=True)

    def _send(self, method: str, params: dict | None, session: bool) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        return self._next_id

    def call(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        """Send a protocol command (to the page unless ``session`` is False); returns its result."""
        wanted = self._send(method, params, session)
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self._handle_event(message)

    def wait_for(self, event: str, since: int) -> dict:
        """The first ``event`` recorded after the first ``since`` events (waits for it)."""
        deadline = time.monotonic() + self.timeout
        while True:
            for message in self.events[since:]:
                if message.get("method") == event:
                    return message
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} within {self.timeout} s")
            message = json.loads(self.ws.recv())
            if "method" in message:
                self._handle_event(message)

    def open(self, url: str) -> None:
        """Navigate to ``url`` and wait for its load event."""
        since = len(self.events)
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise RuntimeError(f"{url}: {result['errorText']}")
        self.wait_for("Page.loadEventFired", since)

    def evaluate(self, expression: str) -> object:
        """The JSON value of ``expression`` in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        """A PNG of the viewport."""
        return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])

    def close(self) -> None:
        """Close the browser; the process is killed if it does not exit within 5 s."""
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                self._send("Browser.close", None, session=False)
            except OSError:
                pass
            ws.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
