"""Browser smoke test of the Dagster UI (`make ui-smoke`; not part of the tests or CI).

Starts `dagster-webserver` on 127.0.0.1 against the existing instance and warehouse (DAGSTER_HOME, GOSALES_HOME
and GOSALES_CONFIG as `make demo` / `make ui` use them), finds the latest materialized `division_model`
partition through the GraphQL API, opens its asset page in headless Chromium (Debian's `chromium` package)
and saves screenshots, so a person can see that the model charts render in the UI:

- SHOT                    the partition view of the asset page: the materialization's metadata table;
- SHOT stem + `.gains.png` / `.calibration.png`
                          the `gains_chart` / `calibration_chart` metadata opened from its "[Show Markdown]"
                          action (the UI shows markdown longer than 1,000 characters, such as an inline PNG,
                          only in that dialog).

The script drives Chromium over the DevTools protocol (the `websockets` client that dagster-webserver's uvicorn
installs) to click those actions, checks that each chart image actually decoded (non-zero natural size), and
exits non-zero with the reason otherwise. It marks the Dagster "join the community" dialog as seen on the
instance (the GraphQL mutation `setNuxSeen`, what its Skip button does), because it would cover the page. The
webserver and Chromium run in their own process groups and are stopped (SIGTERM, then SIGKILL) on exit.

    .venv/bin/python scripts/ui_smoke.py [--shot PATH] [--partition "2026-03|Simulation"] [--port N]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ASSET = "division_model"
CHARTS = ("gains_chart", "calibration_chart")
INSTALL_HINT = "install the Debian chromium package: apt-get install chromium"
# Headless, and no background connections (this machine's network is closed; they would only fail noisily).
CHROMIUM_FLAGS = ["--headless", "--disable-gpu", "--no-sandbox", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1600,2400"]
WIDTH, HEIGHT = 1600, 2400


class SmokeError(RuntimeError):
    """The smoke test failed; the message says why and what to do."""


# ---- processes -----------------------------------------------------------------------------------------------
def start(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM to the process group (the process and everything it started), SIGKILL after `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; give the rest of its group the same time to follow
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


# ---- the webserver -------------------------------------------------------------------------------------------
def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        doc = json.loads(resp.read())
    if doc.get("errors"):
        raise SmokeError(f"GraphQL errors: {doc['errors']}")
    return doc["data"]


def wait_for_webserver(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Until the code location is loaded (a load error is reported with its message)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SmokeError(f"dagster-webserver exited with {proc.returncode}:\n{tail(log)}")
        try:
            entries = graphql(url, """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
                locationOrLoadError { __typename ... on PythonError { message } } } } } }""")
            entries = entries["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                failed = [e for e in entries if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"]
                if failed:
                    raise SmokeError(f"the code location failed to load: {failed}")
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise SmokeError(f"dagster-webserver not ready after {timeout:.0f}s:\n{tail(log)}")


def latest_partition(url: str) -> str:
    """The partition of the latest `division_model` materialization (skipped partitions have none)."""
    data = graphql(url, """query($k: AssetKeyInput!) { assetOrError(assetKey: $k) { __typename
        ... on Asset { assetMaterializations(limit: 1) { partition } } } }""", {"k": {"path": [ASSET]}})
    asset = data["assetOrError"]
    mats = asset.get("assetMaterializations") or []
    if asset["__typename"] != "Asset" or not mats:
        raise SmokeError(f"no materialized {ASSET} partition in this instance: run `make demo` first "
                         "(or point DAGSTER_HOME / GOSALES_HOME at an instance that has one)")
    return mats[0]["partition"]


# ---- the browser ---------------------------------------------------------------------------------------------
class Browser:
    """Headless Chromium driven over the DevTools protocol (one page)."""

    def __init__(self, chromium: str, workdir: Path, timeout: float):
        from websockets.sync.client import connect

        self.timeout = timeout
        profile = workdir / "chromium-profile"
        self.log = workdir / "chromium.log"
        self.proc = start([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                           "about:blank"], self.log)
        self._connection = contextlib.ExitStack()
        self._id = 0
        try:
            port_file = profile / "DevToolsActivePort"  # Chromium writes the port it picked here
            self._wait(lambda: port_file.is_file() and port_file.read_text().strip(), "Chromium's DevTools port")
            port = port_file.read_text().splitlines()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
                pages = [t for t in json.loads(resp.read()) if t["type"] == "page"]
            self.ws = self._connection.enter_context(connect(pages[0]["webSocketDebuggerUrl"], max_size=None))
            self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                      mobile=False)
        except BaseException:
            self.close()
            raise

    def _wait(self, ready, what: str):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SmokeError(f"chromium exited with {self.proc.returncode}:\n{tail(self.log)}")
            value = ready()
            if value:
                return value
            time.sleep(0.25)
        raise SmokeError(f"timed out after {self.timeout:.0f}s waiting for {what}")

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:  # skip the protocol's events until our answer
            msg = json.loads(self.ws.recv(timeout=self.timeout))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise SmokeError(f"DevTools {method} failed: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression: str):
        """The value of a JavaScript expression in the page; None while it throws (e.g. during navigation)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return None if "exceptionDetails" in result else result.get("result", {}).get("value")

    def wait_for(self, expression: str, what: str):
        return self._wait(lambda: self.js(expression), what)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._connection.close()
        finally:
            stop(self.proc)


def _metadata_row(label: str) -> str:
    """JavaScript: the <tr> of the metadata table whose first cell is `label`."""
    return (f"[...document.querySelectorAll('tr')].find(tr => tr.cells.length > 1 "
            f"&& tr.cells[0].innerText.trim() === {json.dumps(label)})")


OPEN_DIALOG_IMAGE = "document.querySelector('.bp5-dialog img, [role=dialog] img')"
# No finite CSS transition/animation still running (the dialog fades and zooms in; spinners loop forever).
SETTLED = ("document.getAnimations().every(a => a.playState !== 'running' "
           "|| a.effect.getComputedTiming().iterations === Infinity)")


def capture(browser: Browser, url: str, shot: Path) -> list[Path]:
    browser.call("Page.navigate", url=url)
    rows = " && ".join(f"!!({_metadata_row(c)})" for c in CHARTS)
    browser.wait_for(rows, f"the metadata rows {', '.join(CHARTS)} on {url}")
    browser.wait_for(SETTLED, "the page to settle")
    saved = [browser.screenshot(shot)]
    for chart in CHARTS:
        clicked = browser.js(f"""(() => {{ const row = {_metadata_row(chart)};
            const action = row && [...row.querySelectorAll('a, button')].find(a => a.innerText.includes('Show Markdown'));
            if (!action) return false; action.click(); return true; }})()""")
        if not clicked:
            raise SmokeError(f"no [Show Markdown] action on the {chart} row of {url}")
        size = browser.wait_for(f"(() => {{ const img = {OPEN_DIALOG_IMAGE}; return img && img.complete "
                                "&& img.naturalWidth > 0 && [img.naturalWidth, img.naturalHeight]; })()",
                                f"the {chart} image to render in its dialog")
        print(f"{chart}: rendered {size[0]}x{size[1]} px")
        browser.wait_for(SETTLED, f"the {chart} dialog to finish opening")
        saved.append(browser.screenshot(shot.with_name(f"{shot.stem}.{chart.removesuffix('_chart')}.png")))
        browser.call("Input.dispatchKeyEvent", type="keyDown", key="Escape", code="Escape", windowsVirtualKeyCode=27)
        browser.call("Input.dispatchKeyEvent", type="keyUp", key="Escape", code="Escape", windowsVirtualKeyCode=27)
        browser.wait_for(f"!{OPEN_DIALOG_IMAGE}", f"the {chart} dialog to close")
    return saved


# ---- main ----------------------------------------------------------------------------------------------------
def find_chromium(explicit: str | None) -> str:
    for name in ([explicit] if explicit else ["chromium", "chromium-browser"]):
        path = shutil.which(name)
        if path:
            return path
    raise SmokeError(f"chromium not found ({explicit or 'chromium on PATH'}): {INSTALL_HINT}")


def main(argv: list[str] | None = None) -> int:
    home = Path(os.environ.get("GOSALES_HOME") or Path.cwd() / ".gosales").resolve()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shot", type=Path, default=Path(os.environ.get("SHOT") or home / "ui_smoke_division_model.png"),
                        help="where to save the screenshot (default: $SHOT or $GOSALES_HOME/ui_smoke_division_model.png)")
    parser.add_argument("--partition", help='division_model partition, e.g. "2026-03|Simulation" '
                        "(default: the latest materialized one)")
    parser.add_argument("--port", type=int, default=0, help="webserver port (default: a free one)")
    parser.add_argument("--chromium", help="Chromium executable (default: chromium on PATH)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for each stage (default 120)")
    args = parser.parse_args(argv)

    dagster_home = Path(os.environ.get("DAGSTER_HOME") or home / "dagster_home").resolve()
    env = {**os.environ, "GOSALES_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    webserver = browser = None
    with tempfile.TemporaryDirectory(prefix="gosales-ui-smoke-") as tmp:
        work = Path(tmp)
        try:
            chromium = find_chromium(args.chromium)
            if not (dagster_home / "dagster.yaml").is_file():
                raise SmokeError(f"no Dagster instance at {dagster_home} (no dagster.yaml): run `make demo` first")
            port = args.port or free_port()
            url = f"http://127.0.0.1:{port}"
            log = work / "webserver.log"
            webserver = start([str(BIN / "dagster-webserver"), "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1",
                               "-p", str(port)], log, env=env, cwd=REPO)
            wait_for_webserver(url, webserver, log, args.timeout)
            partition = args.partition or latest_partition(url)
            graphql(url, "mutation { setNuxSeen }")
            page = f"{url}/assets/{ASSET}?view=partitions&partition={urllib.parse.quote(partition, safe='')}"
            print(f"opening {page}")
            browser = Browser(chromium, work, args.timeout)
            for path in capture(browser, page, args.shot.resolve()):
                print(f"saved {path}")
        except SmokeError as err:
            print(f"ui-smoke: {err}", file=sys.stderr)
            return 1
        finally:
            if browser is not None:
                browser.close()
            if webserver is not None:
                stop(webserver)
    return 0


if __name__ == "__main__":
    sys.exit(main())
