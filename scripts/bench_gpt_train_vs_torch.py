"""Training speed of the same GPT-2 in prosa and in PyTorch (transformers' GPT2LMHeadModel),
measured in one run.

Model: 4 layers, width 256, 4 heads, vocabulary 8,000, context 128, dropout 0.1 (the defaults
of `prosa bench gpt-train`). Step: forward over 16 blocks of 128 random ids, causal-LM loss,
backward, AdamW. Both sides use 2 threads. Prints training tokens per second and the ratio
prosa / PyTorch.

    pip install torch transformers
    cargo build --release
    python3 scripts/bench_gpt_train_vs_torch.py
"""
import json
import os
import pathlib
import subprocess
import time

import torch
import transformers as tf

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROSA = ROOT / "target" / "release" / "prosa"
LAYERS, HIDDEN, HEADS, VOCAB, BLOCK, BATCH, STEPS = 4, 256, 4, 8000, 128, 16, 10


def torch_rate():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    config = tf.GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=BLOCK)
    model = tf.GPT2LMHeadModel(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, VOCAB, (BATCH, BLOCK))

    def step():
        optimizer.zero_grad()
        model(ids, labels=ids).loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    return STEPS * BATCH * BLOCK / (time.perf_counter() - start)


def prosa_rate():
    env = dict(os.environ, RAYON_NUM_THREADS="2")
    out = subprocess.run([PROSA, "bench", "gpt-train", "--layers", str(LAYERS), "--hidden", str(HIDDEN),
                          "--heads", str(HEADS), "--vocab", str(VOCAB), "--block", str(BLOCK),
                          "--batch", str(BATCH), "--steps", str(STEPS), "--json"],
                         check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout)["tokens_per_second"]


if __name__ == "__main__":
    theirs = torch_rate()
    ours = prosa_rate()
    print(f"GPT-2 {LAYERS}x{HIDDEN}, vocab {VOCAB}, {BATCH}x{BLOCK} tokens per step, 2 threads")
    print(f"  PyTorch {torch.__version__}: {theirs:8.0f} tokens/s")
    print(f"  prosa:          {ours:8.0f} tokens/s")
    print(f"  ratio prosa / PyTorch: {ours / theirs:.2f}x")
