#!/usr/bin/env python3
"""Loads every page of a built gallery in headless Chromium (over the DevTools protocol on
loopback) and checks that each image decodes with a non-zero width and that no console error
or failed request occurs; saves a screenshot of the index.

usage: check_site.py SITE_DIR SCREENSHOT.png
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    site, shot = os.path.abspath(sys.argv[1]), sys.argv[2]
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not browser:
        print("no chromium found", file=sys.stderr)
        return 77
    port = free_port()
    profile = tempfile.mkdtemp(prefix="dipviz-chromium-")
    proc = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                             f"--remote-debugging-port={port}", f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2))
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            print("chromium did not start", file=sys.stderr)
            return 1
        ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30)
        counter = [0]
        events = []

        def call(method, **params):
            counter[0] += 1
            ws.send(json.dumps({"id": counter[0], "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                if msg.get("id") == counter[0]:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg.get("result", {})
                events.append(msg)

        def wait_for(name, timeout=20):
            end = time.time() + timeout
            while time.time() < end:
                for i, e in enumerate(events):
                    if e.get("method") == name:
                        del events[: i + 1]
                        return e
                events.append(json.loads(ws.recv()))
            raise RuntimeError(f"timed out waiting for {name}")

        for domain in ("Page", "Runtime", "Log", "Network"):
            call(f"{domain}.enable")
        failures = []
        pages_checked = 0
        images_checked = 0
        html_files = sorted(os.path.join(root, f) for root, _, files in os.walk(site) for f in files if f.endswith(".html"))
        for path in html_files:
            events.clear()
            call("Page.navigate", url="file://" + path)
            wait_for("Page.loadEventFired")
            result = call("Runtime.evaluate", awaitPromise=True, returnByValue=True, expression=
                          "Promise.all(Array.from(document.images).map(i => i.decode().then(() => i.naturalWidth, () => 0)))")
            widths = result.get("result", {}).get("value", [])
            images_checked += len(widths)
            if any(w == 0 for w in widths):
                failures.append(f"{os.path.relpath(path, site)}: {sum(1 for w in widths if w == 0)} image(s) did not decode")
            for e in events:
                m, p = e.get("method"), e.get("params", {})
                if m == "Runtime.exceptionThrown":
                    failures.append(f"{os.path.relpath(path, site)}: exception {p.get('exceptionDetails', {}).get('text')}")
                elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                    failures.append(f"{os.path.relpath(path, site)}: console error")
                elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                    failures.append(f"{os.path.relpath(path, site)}: {p['entry'].get('text')}")
                elif m == "Network.loadingFailed":
                    failures.append(f"{os.path.relpath(path, site)}: failed request {p.get('errorText')}")
            pages_checked += 1
        call("Emulation.setDeviceMetricsOverride", width=1000, height=800, deviceScaleFactor=1, mobile=False)
        call("Page.navigate", url="file://" + os.path.join(site, "index.html"))
        wait_for("Page.loadEventFired")
        png = call("Page.captureScreenshot", format="png")["data"]
        with open(shot, "wb") as f:
            f.write(base64.b64decode(png))
        print(json.dumps({"pages": pages_checked, "images": images_checked, "failures": failures}))
        return 1 if failures else 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
