"""A small headless-Chromium driver over the DevTools protocol (local websocket), for report tests."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


def find_chromium() -> str | None:
    """Debian's chromium (or another chromium on PATH)."""
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """Headless chromium with a fresh profile; ``load(path)`` inspects one page."""

    def __init__(self, executable: str, timeout: float = 60.0) -> None:
        self.profile = tempfile.mkdtemp(prefix="brainprobe-chromium-")
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"chromium exited with {self.proc.returncode}: {err[-2000:]}")
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        self._id = 0

    def _page_ws(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        pages = [t for t in targets if t.get("type") == "page"]
        return pages[0]["webSocketDebuggerUrl"]

    def load(self, path: Path, width: int = 1366, height: int = 768) -> dict[str, Any]:
        """Open ``path`` at a laptop viewport; return console errors, image states, DOM facts, screenshot.

        Returns
        -------
        dict with ``errors`` (list of str: console errors, uncaught exceptions, failed loads),
        ``images`` (list of dicts src-prefix / complete / naturalWidth), ``facts`` (DOM query
        results) and ``screenshot`` (PNG bytes of the full page).
        """
        import websocket

        ws = websocket.create_connection(self._page_ws(), timeout=self.timeout, suppress_origin=True)
        events: list[dict[str, Any]] = []

        def call(method: str, **params: Any) -> dict[str, Any]:
            self._id += 1
            ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                if msg.get("id") == self._id:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg.get("result", {})
                events.append(msg)

        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                call(f"{domain}.enable")
            call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
            call("Page.navigate", url=path.resolve().as_uri())
            deadline = time.monotonic() + self.timeout
            while not any(e.get("method") == "Page.loadEventFired" for e in events):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} did not finish loading")
                events.append(json.loads(ws.recv()))
            facts = call(
                "Runtime.evaluate",
                returnByValue=True,
                expression="""(() => {
                  const imgs = Array.from(document.images).map(i => ({src: i.src.slice(0, 40),
                      complete: i.complete, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight}));
                  const tables = Array.from(document.querySelectorAll('table.findings'));
                  return {images: imgs,
                          findingsTables: tables.length,
                          findingsRows: tables.reduce((n, t) => n + t.tBodies[0].rows.length, 0),
                          findingsFirst: document.querySelector('#findings') !== null &&
                              document.querySelector('#findings').getBoundingClientRect().top <
                              (document.querySelector('figure') ? document.querySelector('figure').getBoundingClientRect().top : 1e9),
                          banner: document.querySelector('#simulated-banner') ? document.querySelector('#simulated-banner').innerText : null,
                          scrollWidth: document.documentElement.scrollWidth,
                          text: document.body.innerText.length,
                          requests: performance.getEntriesByType('resource').map(r => r.name)};
                })()""",
            )["result"]["value"]
            # drain events that arrived while evaluating
            ws.settimeout(0.5)
            try:
                while True:
                    events.append(json.loads(ws.recv()))
            except websocket.WebSocketTimeoutException:
                pass
            ws.settimeout(self.timeout)
            shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        finally:
            ws.close()
        errors: list[str] = []
        for e in events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                errors.append("exception: " + str(p.get("exceptionDetails", {}).get("text")))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errors.append("log: " + str(p["entry"].get("text")) + " " + str(p["entry"].get("url", "")))
            elif m == "Network.loadingFailed":
                errors.append("network: " + str(p.get("errorText")))
        return {"errors": errors, "images": facts.pop("images"), "facts": facts, "screenshot": base64.b64decode(shot["data"])}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def artifacts_dir() -> Path:
    """``test-artifacts/`` at the repository root (created)."""
    root = Path(os.environ.get("BRAINPROBE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
    root.mkdir(parents=True, exist_ok=True)
    return root
