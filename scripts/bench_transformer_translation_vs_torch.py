"""Training and greedy-translation speed of the same Transformer encoder–decoder in prosa and in
PyTorch (torch.nn.Transformer), measured in one run.

Model: 3 encoder + 3 decoder layers, d_model 256, 4 heads, feed-forward 1024, vocabulary 8,000
shared by source and target (tied embeddings), sinusoidal positions, dropout 0.1, post-LN (the
defaults of `prosa bench seq2seq`). Training step: 32 pairs of 24-token sources and targets,
label-smoothed (0.1) cross-entropy, backward, AdamW. Translation: 32 sources decoded greedily
for 24 tokens — prosa encodes once and caches keys and values; PyTorch's nn.Transformer has no
cache, so each step reruns the decoder on the prefix, as its users do. 2 threads each. Prints
both rates and the ratios prosa / PyTorch.

    pip install torch
    cargo build --release
    python3 scripts/bench_transformer_translation_vs_torch.py
"""
import json
import math
import os
import pathlib
import subprocess
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROSA = os.environ.get("PROSA", str(ROOT / "target" / "release" / "prosa"))
LAYERS, D, HEADS, VOCAB, LENGTH, BATCH, STEPS = 3, 256, 4, 8000, 24, 32, 10


class Translator(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB, D)
        self.transformer = torch.nn.Transformer(D, HEADS, LAYERS, LAYERS, 4 * D, dropout=0.1, batch_first=True)
        positions = torch.arange(2 * LENGTH + 2).unsqueeze(1)
        div = torch.exp(torch.arange(0, D, 2) * (-math.log(10000.0) / D))
        pe = torch.zeros(2 * LENGTH + 2, D)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(positions * div), torch.cos(positions * div)
        self.register_buffer("pe", pe)

    def embed(self, ids):
        return self.embedding(ids) * math.sqrt(D) + self.pe[: ids.shape[1]]

    def logits(self, hidden):
        return hidden @ self.embedding.weight.T

    def forward(self, src, tgt_in):
        mask = torch.nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1])
        return self.logits(self.transformer(self.embed(src), self.embed(tgt_in), tgt_mask=mask, tgt_is_causal=True))


def torch_rates():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = Translator().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=0)
    src = torch.randint(3, VOCAB, (BATCH, LENGTH))
    tgt = torch.randint(3, VOCAB, (BATCH, LENGTH - 1))
    tgt_in = torch.cat([torch.ones(BATCH, 1, dtype=torch.long), tgt], dim=1)
    labels = torch.cat([tgt, torch.full((BATCH, 1), 2)], dim=1)

    def step():
        optimizer.zero_grad()
        logits = model(src, tgt_in)
        loss_fn(logits.reshape(-1, VOCAB), labels.reshape(-1)).backward()
        optimizer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    train = STEPS * BATCH * 2 * LENGTH / (time.perf_counter() - start)

    model.eval()
    with torch.no_grad():
        start = time.perf_counter()
        memory = model.transformer.encoder(model.embed(src))
        out = torch.ones(BATCH, 1, dtype=torch.long)
        for _ in range(LENGTH):
            mask = torch.nn.Transformer.generate_square_subsequent_mask(out.shape[1])
            hidden = model.transformer.decoder(model.embed(out), memory, tgt_mask=mask, tgt_is_causal=True)
            logits = model.logits(hidden[:, -1])
            logits[:, 2] = -float("inf")  # as prosa's min_new_tokens: no early end
            out = torch.cat([out, logits.argmax(-1, keepdim=True)], dim=1)
        decode = BATCH / (time.perf_counter() - start)
    return train, decode


def prosa_rates():
    env = dict(os.environ, RAYON_NUM_THREADS="2")
    out = subprocess.run([PROSA, "bench", "seq2seq", "--layers", str(LAYERS), "--hidden", str(D),
                          "--heads", str(HEADS), "--vocab", str(VOCAB), "--length", str(LENGTH),
                          "--batch", str(BATCH), "--steps", str(STEPS), "--json"],
                         check=True, capture_output=True, text=True, env=env)
    m = json.loads(out.stdout)
    return m["training_tokens_per_second"], m["sentences_per_second"]


if __name__ == "__main__":
    theirs = torch_rates()
    ours = prosa_rates()
    print(f"Transformer {LAYERS}+{LAYERS} layers x {D}, {HEADS} heads, vocab {VOCAB}, "
          f"{BATCH} pairs of {LENGTH} tokens, 2 threads")
    print(f"{'':24}{'training tokens/s':>20}{'translations/s':>16}")
    print(f"{'PyTorch ' + torch.__version__:24}{theirs[0]:20.0f}{theirs[1]:16.1f}")
    print(f"{'prosa':24}{ours[0]:20.0f}{ours[1]:16.1f}")
    print(f"{'ratio prosa / PyTorch':24}{ours[0] / theirs[0]:19.2f}x{ours[1] / theirs[1]:15.2f}x")
