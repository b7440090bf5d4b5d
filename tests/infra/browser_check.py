#!/usr/bin/env python3
"""Check by hand that Playwright drives Debian's Chromium here (what the `browser` fixture in tests/conftest.py uses).

Install: apt-get install -y --no-install-recommends chromium; pip install playwright (the dev extra).
Playwright's own browser download needs the internet; Debian's /usr/bin/chromium does not, and as
root it needs --no-sandbox. Prints the rendered heading and any console errors; exits 1 on a failure.
"""

import pathlib
import sys
import tempfile

from playwright.sync_api import sync_playwright

with tempfile.TemporaryDirectory() as tmp:
    html = pathlib.Path(tmp) / "page.html"
    html.write_text("<html><body><h1 id=t>hello</h1><canvas id=c></canvas>"
                    "<script>document.getElementById('t').textContent='rendered';</script></body></html>")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(html.as_uri())
        text = page.text_content("#t")
        print("playwright:", text, errors)
        page.screenshot(path=str(pathlib.Path(tmp) / "shot.png"))
        browser.close()
sys.exit(0 if text == "rendered" and not errors else 1)
