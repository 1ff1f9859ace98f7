"""Translation speed of a Marian-shaped model in prosa, transformers and CTranslate2, measured in
one run.

Model: MarianMTModel with 6 + 6 layers, d_model 512, 8 heads, feed-forward 2048, vocabulary
32,000 (shared embeddings, sinusoidal positions: opus-mt's shape), random weights (seed 0),
float32. Work: 256 sources of 24 tokens (random ids, seed 0, ending with </s>) in batches of 16,
greedy and beam 4, every translation exactly 24 tokens (the end token held back:
min_new_tokens / min_decoding_length). Each system loads the same folder (CTranslate2 converts
it first), translates one warm-up batch, then all batches; model loading and conversion are not
timed. 2 threads each. Prints sentences per second and the ratios prosa / transformers and
prosa / CTranslate2.

    pip install torch transformers sentencepiece ctranslate2
    cargo build --release -p prosa-cli
    python3 scripts/bench_marian_vs_transformers_ctranslate2.py [WORK_DIR]
"""
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROSA = os.environ.get("PROSA", str(ROOT / "target" / "release" / "prosa"))
SPM = ROOT / "crates" / "prosa" / "tests" / "fixtures" / "seq2seq" / "marian-spm"
VOCAB, SOURCES, LENGTH, BATCH, NEW_TOKENS, THREADS = 32000, 256, 24, 16, 24, 2


def make_folder(work):
    """A random opus-mt-shaped Marian folder with a 32k vocab.json (the fixture's .spm files)."""
    import transformers as tf

    folder = work / "marian-6x6-512"
    if (folder / "model.safetensors").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"</s>": 0, "<unk>": 1}
    for i in range(2, VOCAB - 1):
        vocab[f"▁t{i}"] = i
    vocab["<pad>"] = VOCAB - 1
    (folder / "vocab.json").write_text(json.dumps(vocab))
    for name in ["source.spm", "target.spm"]:
        shutil.copy(SPM / name, folder / name)
    tf.MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"),
                       str(folder / "vocab.json")).save_pretrained(folder)
    config = tf.MarianConfig(vocab_size=VOCAB, d_model=512, encoder_layers=6, decoder_layers=6,
                             encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=2048,
                             decoder_ffn_dim=2048, max_position_embeddings=512, scale_embedding=True,
                             activation_function="swish", pad_token_id=VOCAB - 1, eos_token_id=0,
                             decoder_start_token_id=VOCAB - 1, forced_eos_token_id=0, num_beams=1)
    torch.manual_seed(0)
    tf.MarianMTModel(config).save_pretrained(folder)
    return folder


def sources():
    rng = random.Random(0)
    return [[rng.randrange(2, VOCAB - 1) for _ in range(LENGTH - 1)] + [0] for _ in range(SOURCES)]


def batches(rows):
    return [rows[i:i + BATCH] for i in range(0, len(rows), BATCH)]


def time_transformers(folder, rows, beams):
    import transformers as tf

    torch.set_num_threads(THREADS)
    model = tf.MarianMTModel.from_pretrained(folder).eval()

    def run(batch):
        ids = torch.tensor(batch)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), num_beams=beams,
                                 max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
        assert out.shape[1] >= NEW_TOKENS
        return out

    run(rows[:BATCH])
    start = time.perf_counter()
    for b in batches(rows):
        run(b)
    return len(rows) / (time.perf_counter() - start)


def time_ctranslate2(folder, work, rows, beams):
    import ctranslate2

    converted = work / "marian-6x6-512-ct2"
    if not (converted / "model.bin").exists():
        ctranslate2.converters.TransformersConverter(str(folder)).convert(str(converted), force=True)
    translator = ctranslate2.Translator(str(converted), device="cpu", compute_type="float32",
                                       inter_threads=1, intra_threads=THREADS)
    pieces = {i: p for p, i in json.loads((folder / "vocab.json").read_text()).items()}
    tokens = [[pieces[i] for i in row] for row in rows]

    def run(batch):
        out = translator.translate_batch(batch, beam_size=beams, max_decoding_length=NEW_TOKENS,
                                         min_decoding_length=NEW_TOKENS, max_batch_size=BATCH)
        assert all(len(r.hypotheses[0]) >= NEW_TOKENS - 1 for r in out), [len(r.hypotheses[0]) for r in out]
        return out

    run(tokens[:BATCH])
    start = time.perf_counter()
    for b in batches(tokens):
        run(b)
    return len(rows) / (time.perf_counter() - start)


def time_prosa(folder, work, beams):
    ids = work / "sources.json"
    out = subprocess.run([PROSA, "bench", "translate", "--model", str(folder), "--ids", str(ids),
                          "--batch", str(BATCH), "--new-tokens", str(NEW_TOKENS), "--num-beams", str(beams),
                          "--json"], check=True, capture_output=True, text=True,
                         env=dict(os.environ, RAYON_NUM_THREADS=str(THREADS)))
    return json.loads(out.stdout)["sentences_per_second"]


def main():
    work = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/prosa-bench-marian")
    work.mkdir(parents=True, exist_ok=True)
    folder = make_folder(work)
    rows = sources()
    (work / "sources.json").write_text(json.dumps(rows))
    results = {}
    for beams in (1, 4):
        results[beams] = {
            "prosa": time_prosa(folder, work, beams),
            "transformers": time_transformers(folder, rows, beams),
            "ctranslate2": time_ctranslate2(folder, work, rows, beams),
        }
    print(f"Marian 6+6 × 512, vocabulary {VOCAB}: {SOURCES} sources × {LENGTH} tokens, batches of "
          f"{BATCH}, {NEW_TOKENS} new tokens each, {THREADS} threads, float32")
    print(f"{'decoding':<10}{'prosa':>10}{'transformers':>14}{'CTranslate2':>13}{'× transformers':>16}"
          f"{'× CTranslate2':>15}   (sentences/s)")
    for beams, r in results.items():
        name = "greedy" if beams == 1 else f"beam {beams}"
        print(f"{name:<10}{r['prosa']:>10.2f}{r['transformers']:>14.2f}{r['ctranslate2']:>13.2f}"
              f"{r['prosa'] / r['transformers']:>16.2f}{r['prosa'] / r['ctranslate2']:>15.2f}")
    print(json.dumps({str(k): v for k, v in results.items()}))


if __name__ == "__main__":
    main()
