"""A minimal headless-Chromium driver over the DevTools protocol, for tests.

Chromium started with --remote-debugging-pipe reads protocol commands
(JSON, NUL-terminated) from file descriptor 3 and writes replies and events
to descriptor 4.  That is all a page test needs: no driver package, no
network port.  Only what the landscape page test uses is here.
"""

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium process with one page."""

    def __init__(self, path, width=1100, height=1000, timeout=60.0):
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self.events = []
        # Our ends: we write commands to to_browser_w, read from_browser_r.
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        def child_fds():
            # The child must see its ends as fds 3 and 4: copy both above
            # 10 first, so that placing one cannot overwrite the other.
            r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        args = [path, "--headless=new", "--no-sandbox",
                "--remote-debugging-pipe", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions",
                f"--window-size={width},{height}", "about:blank"]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=child_fds,
            close_fds=False)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._w = to_browser_w
        self._r = from_browser_r
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget",
                                 targetId=page["targetId"],
                                 flatten=True)["sessionId"]

    # -- the protocol

    def _send(self, method, params, session):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _read_message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from the browser")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError("the browser exited")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, session=None, **params):
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def page(self, method, **params):
        return self.call(method, self.session, **params)

    # -- what tests use

    def evaluate(self, expression):
        result = self.page("Runtime.evaluate", expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: "
                               f"{result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{expression!r} stayed false")

    def screenshot(self):
        data = self.page("Page.captureScreenshot", format="png")["data"]
        return base64.b64decode(data)

    def click(self, x, y):
        for kind in ("mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", type=kind, x=x, y=y,
                      button="left", clickCount=1)

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
