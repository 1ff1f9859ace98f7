"""The same recurrent training step in prosa and in PyTorch, measured in one run.

Step: embedding (vocab 10,000 × 100) → LSTM/GRU/Elman RNN (hidden 128) → dense → sigmoid,
binary cross-entropy, backward, AdamW; sequences of 30 ids, batches of 32, random data.
Both sides use 2 threads. Prints sequences per second and the ratio prosa / PyTorch.

    pip install torch
    cargo build --release
    python3 scripts/bench_recurrent_vs_torch.py
"""
import json
import pathlib
import subprocess
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROSA = ROOT / "target" / "release" / "prosa"
VOCAB, EMB, HIDDEN, SEQ, BATCH, STEPS = 10_000, 100, 128, 30, 32, 30


class Classifier(torch.nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB, EMB)
        self.rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](EMB, HIDDEN, batch_first=True)
        self.classifier = torch.nn.Linear(HIDDEN, 1)

    def forward(self, ids):
        out, _ = self.rnn(self.embedding(ids))
        return self.classifier(out[:, -1]).squeeze(1)


def torch_step_rate(cell):
    torch.manual_seed(0)
    model = Classifier(cell)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    data = [(torch.randint(1, VOCAB, (BATCH, SEQ)), torch.randint(0, 2, (BATCH,)).float()) for _ in range(8)]

    def step(k):
        ids, y = data[k % 8]
        optimizer.zero_grad()
        loss_fn(model(ids), y).backward()
        optimizer.step()

    for k in range(3):
        step(k)
    start = time.perf_counter()
    for k in range(STEPS):
        step(k)
    return STEPS * BATCH / (time.perf_counter() - start)


def prosa_step_rate(cell):
    out = subprocess.run([PROSA, "bench", "recurrent", "--cell", cell, "--vocab", str(VOCAB), "--embedding", str(EMB),
                          "--hidden", str(HIDDEN), "--seq", str(SEQ), "--batch", str(BATCH), "--steps", str(STEPS), "--json"],
                         check=True, capture_output=True, text=True, env={"RAYON_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout)["sequences_per_second"]


def main():
    if not PROSA.exists():
        sys.exit(f"{PROSA} not found: run `cargo build --release` first")
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, 2 threads; vocab {VOCAB}, embedding {EMB}, hidden {HIDDEN}, seq {SEQ}, batch {BATCH}")
    print(f"{'cell':<6}{'prosa seq/s':>14}{'PyTorch seq/s':>16}{'ratio':>8}")
    for cell in ["lstm", "gru", "rnn"]:
        ours, theirs = prosa_step_rate(cell), torch_step_rate(cell)
        print(f"{cell:<6}{ours:>14.0f}{theirs:>16.0f}{ours / theirs:>7.2f}x")


if __name__ == "__main__":
    main()
