"""Screenshot of the served live view, as a person would see it: headless Chromium opens it.

Needs Debian's chromium and the playwright Python package (not in the project's requirements:
only this script uses them): ``apt-get install chromium && .venv/bin/pip install playwright``.

    cdp-graph use_sim:=true live_view:=true ... &     # the stack, serving the viewer on :9090
    cdp-episodes --episodes 2 &
    .venv/bin/python scripts/live_view_screenshot.py docs/live_view.png --wait 40
"""

from __future__ import annotations

import argparse
import time
from urllib.parse import quote

from playwright.sync_api import sync_playwright

# Chromium as this machine's probe starts it (no GPU: SwiftShader's WebGL; no network).
ARGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="PNG to write")
    p.add_argument("--web-port", type=int, default=9090)
    p.add_argument("--grpc-port", type=int, default=9876)
    p.add_argument("--wait", type=float, default=30.0, help="seconds the viewer streams before the shot")
    p.add_argument("--size", default="1600x1000")
    p.add_argument("--shots", type=int, default=1, help="take this many shots (OUT_1.png, ...) ...")
    p.add_argument("--every", type=float, default=10.0, help="... this many seconds apart")
    args = p.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    data = f"rerun+http://127.0.0.1:{args.grpc_port}/proxy"
    url = f"http://localhost:{args.web_port}/?url={quote(data, safe='')}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": w, "height": h})
        page.goto(url)
        time.sleep(args.wait)
        stem = args.out.removesuffix(".png")
        for i in range(args.shots):
            out = args.out if args.shots == 1 else f"{stem}_{i + 1}.png"
            page.screenshot(path=out, timeout=120_000)  # software WebGL on a busy machine is slow
            print(f"{time.strftime('%H:%M:%S')} wrote {out} ({url})", flush=True)
            if i + 1 < args.shots:
                time.sleep(args.every)
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
