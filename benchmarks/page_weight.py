"""What each page of the built book costs a reader: bytes, requests, 404s, console errors.

Serves a built book (default ``_build/html``) on localhost, opens each page in headless
Chromium, waits for it to settle, and reads the browser's network and console logs.  Prints
one JSON line per page and a summary line.  Bytes are what crossed the wire (this server
sends no compression), counted once per URL.

    .venv/bin/python benchmarks/page_weight.py [--html _build/html] [--settle 3] [PAGE ...]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDGET_PAGES = ["notebooks/01_forward_process.html", "notebooks/04_posterior.html",
                "notebooks/05_reverse_process.html", "notebooks/07_training_sampling.html"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _driver(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 f"--user-data-dir={profile}", "--window-size=1280,1000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def measure(driver, url: str, settle: float) -> dict:
    driver.get("about:blank")
    driver.get_log("performance"), driver.get_log("browser")  # drop what came before
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get(url)
    time.sleep(settle)
    status, size = {}, {}
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        p = msg.get("params", {})
        if msg["method"] == "Network.responseReceived":
            status[p["requestId"]] = (p["response"]["url"], p["response"]["status"])
        elif msg["method"] == "Network.loadingFinished":
            size[p["requestId"]] = p["encodedDataLength"]
    per_url: dict[str, int] = {}
    for rid, (u, _) in status.items():
        if not u.startswith("data:"):
            per_url[u] = max(per_url.get(u, 0), size.get(rid, 0))
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return {
        "bytes": sum(per_url.values()),
        "requests": len(per_url),
        "not_found": sorted({u for u, s in status.values() if s == 404}),
        "console_errors": len([e for e in errors if " 404 " not in e]),
        "console_error_samples": sorted(set(e[:160] for e in errors if " 404 " not in e))[:4],
        "largest": sorted(((v, u.rsplit("/", 1)[-1]) for u, v in per_url.items()), reverse=True)[:4],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", default=str(ROOT / "_build" / "html"), help="the built book")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait after load")
    parser.add_argument("pages", nargs="*", default=WIDGET_PAGES, help="pages relative to --html")
    args = parser.parse_args()
    handler = functools.partial(_Quiet, directory=args.html)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    profile = tempfile.mkdtemp(prefix="ddpm-weight-")
    driver = _driver(profile)
    try:
        total = {"bytes": 0, "console_errors": 0, "not_found": 0}
        for page in args.pages:
            r = measure(driver, f"{base}/{page}", args.settle)
            total["bytes"] += r["bytes"]
            total["console_errors"] += r["console_errors"]
            total["not_found"] += len(r["not_found"])
            r["not_found"] = [u.replace(base, "") for u in r["not_found"]]
            print(json.dumps({"page": page, **r}, ensure_ascii=False))
        print(json.dumps({"benchmark": "page_weight", "pages": len(args.pages), **total}))
    finally:
        driver.quit()
        httpd.shutdown()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
