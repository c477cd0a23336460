"""A headless Chromium (Debian's `chromium`) driven over the DevTools protocol on a pipe: no port, no extra package.

Chromium reads commands on its fd 3 and writes answers and events on its fd 4, each a JSON message ended by a NUL
byte. One browser serves every page; every wait is bounded by a deadline.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


class BrowserError(RuntimeError):
    pass


class Browser:
    def __init__(self, timeout_s: float = 20.0) -> None:
        binary = shutil.which("chromium")
        if binary is None:
            raise BrowserError("chromium is not installed: apt-get install chromium (scripts/bootstrap does)")
        self.timeout_s = timeout_s
        self.profile = tempfile.TemporaryDirectory(prefix="kgw-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def onto_fds_3_and_4() -> None:
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        argv = [binary, "--headless=new", "--remote-debugging-pipe", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                f"--user-data-dir={self.profile.name}", "--window-size=1280,900"]
        if os.geteuid() == 0:
            argv.append("--no-sandbox")  # Chromium refuses to run its sandbox as root
        self.process = subprocess.Popen(argv + ["about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=onto_fds_3_and_4)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=self.session)

    def close(self) -> None:
        os.close(self._to_browser)
        os.close(self._from_browser)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.profile.cleanup()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError(f"chromium did not answer within {self.timeout_s} s")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError(f"chromium exited (code {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        request: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            request["sessionId"] = session
        os.write(self._to_browser, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message["result"]
            self._events.append(message)

    def _wait_for_event(self, method: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == self.session:
                    del self._events[: index + 1]
                    return
            self._events.clear()
            self._events.append(self._read_message(deadline))

    def open(self, url: str) -> None:
        """Navigate and return once the page's load event has fired (every image loaded or failed by then)."""
        self._events.clear()
        answer = self.call("Page.navigate", {"url": url}, session=self.session)
        if answer.get("errorText"):
            raise BrowserError(f"{url}: {answer['errorText']}")
        self._wait_for_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session)
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression[:80]}…: {answer['exceptionDetails']}")
        return answer["result"].get("value")


def page_url(path: Path) -> str:
    return path.resolve().as_uri()
