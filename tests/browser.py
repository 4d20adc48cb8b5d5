"""A minimal headless-Chromium driver over the Chrome DevTools protocol (test-only).

Opens pages from disk, follows links, reports every image's load state and every console error
or failed request, and takes screenshots. Needs the `chromium` binary (Debian: apt-get install
chromium) and `websocket-client` (the [test] extra).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Browser:
    """`with Browser() as b: b.open(url); b.images(); b.errors` — one page, driven over CDP."""

    def __init__(self, width: int = 1200, height: int = 900):
        self.width, self.height = width, height
        self.errors: list[str] = []
        self._ids = itertools.count(1)

    def __enter__(self):
        import websocket
        self._profile = tempfile.mkdtemp(prefix="jaxvis-chromium-")
        self._proc = subprocess.Popen(
            [chromium_path(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--allow-file-access-from-files", "--remote-debugging-port=0", f"--user-data-dir={self._profile}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port, t_end = None, time.monotonic() + 30
        while port is None and time.monotonic() < t_end:
            line = self._proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            port = int(m.group(1)) if m else None
        if port is None:
            self.__exit__(None, None, None)
            raise RuntimeError("chromium did not start its DevTools endpoint")
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        self._ws = websocket.create_connection(url, timeout=30)
        for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            self.call(method)
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc):
        try:
            self._ws.close()
        except Exception:
            pass
        self._proc.kill()
        self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _event(self, msg: dict) -> None:
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
        elif m == "Runtime.exceptionThrown":
            self.errors.append("exception: " + p["exceptionDetails"].get("text", ""))
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.errors.append("log: " + p["entry"].get("text", "") + " " + p["entry"].get("url", ""))
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            self.errors.append("network: " + p.get("errorText", ""))

    def call(self, method: str, wait_event: str | None = None, **params):
        i = next(self._ids)
        self._ws.send(json.dumps({"id": i, "method": method, "params": params}))
        result, seen = None, wait_event is None
        while result is None or not seen:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result = msg.get("result", {})
            else:
                self._event(msg)
                seen = seen or msg.get("method") == wait_event
        return result

    def eval(self, js: str):
        r = self.call("Runtime.evaluate", expression=js, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{js!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", wait_event="Page.loadEventFired", url=url)

    def images(self) -> list[tuple[str, bool, int]]:
        """(src, complete, naturalWidth) of every image, after scrolling so lazy images load."""
        self.eval("new Promise(r => { document.querySelectorAll('img').forEach(i => i.loading = 'eager');"
                  " window.scrollTo(0, document.body.scrollHeight); setTimeout(r, 50); })")
        t_end = time.monotonic() + 20
        while True:
            imgs = self.eval("Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth])")
            if all(c for _, c, _ in imgs) or time.monotonic() > t_end:
                return [tuple(x) for x in imgs]
            time.sleep(0.1)

    def href(self, selector: str) -> str:
        return self.eval(f"document.querySelector({json.dumps(selector)}).href")

    def screenshot(self, path: str | os.PathLike) -> None:
        self.eval("window.scrollTo(0, 0)")
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
