"""ULMFiT on the tweets with the paper's ablations, beside ELMo and the Unit I models, in one
table (Howard & Ruder 2018, Table 6/7 style).

1. General-domain language model: an AWD-LSTM pretrained on ~2.9M words of English from ASSETS
   (the Shakespeare plays, the State of the Union addresses, Moby Dick — the corpus of
   scripts/bench_word2vec_vs_gensim.py).
2. For each row, `prosa train --arch ulmfit` on the stratified 80/20 split (seed 42): target LM
   fine-tuning on the training tweets' text, then the classifier —
   full ULMFiT; without general-domain pretraining (random LM, still fine-tuned on the tweets);
   without gradual unfreezing; without discriminative learning rates.
3. ELMo features + classifier: a biLM pretrained on the training split's texts (the split
   `prosa data split` makes, the one `prosa train` uses), frozen, under the scalar mix and a dense
   head (full split only: with --max-rows the row is left out, as the subset's split differs).
4. The LSTM over GloVe (the quickstart's settings) in the same run, for reference.

    scripts/setup-assets.sh && cargo build --release -p prosa-cli
    python3 scripts/ulmfit_tweets.py [WORK_DIR] [--max-rows N] [--skip-pretraining]

Prints the table (accuracy, macro-F1, the LMs' validation perplexities, times); every run's
folder, learning curves and report stay under WORK_DIR. Runs resume: a step whose WORK/NAME.json
holds a result is not run again (delete it to re-run), so a long full-split run can be stopped
and started again.
"""
import argparse
import csv
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from bench_word2vec_vs_gensim import PROSA, english_mix, write_corpus  # noqa: E402

# The general-domain LM: 3 layers, embedding 200, inner layers 512, 12k words, one epoch, with
# the AWD-LSTM paper's update rule — SGD at a high rate, gradients clipped at 0.25 (Adam at
# 5e-3 with clipping at 1 stayed on the unigram plateau; README, "ELMo and ULMFiT").
PRETRAIN = ["--vocab-size", "12000", "--layers", "3", "--hidden", "200", "--intermediate", "512",
            "--max-length", "70", "--batch-size", "32", "--epochs", "1", "--optimizer", "sgd",
            "--lr", "20", "--max-grad-norm", "0.25", "--warmup-ratio", "0",
            "--drop-mult", "0.5", "--eval-steps", "300"]
# The classifier runs: the tweets' LM fine-tuned for 3 epochs, then 6 classifier epochs.
CLASSIFIER = ["--arch", "ulmfit", "--epochs", "6", "--lr", "5e-3", "--batch-size", "32",
              "--lm-epochs", "3", "--seed", "42"]
ROWS = [
    ("ulmfit", "ULMFiT (general LM → tweets LM → classifier)", ["PRETRAINED"]),
    ("no-pretraining", "ULMFiT without general-domain pretraining", []),
    ("no-unfreezing", "ULMFiT without gradual unfreezing", ["PRETRAINED", "--no-gradual-unfreezing"]),
    ("no-discriminative", "ULMFiT without discriminative rates", ["PRETRAINED", "--no-discriminative-lr"]),
]


# ELMo: the biLM of the README's ELMo section, then its frozen features under a dense head.
ELMO_PRETRAIN = ["--hidden", "128", "--vocab-size", "10000", "--max-length", "40", "--epochs", "2"]
ELMO_CLASSIFIER = ["--arch", "elmo", "--hidden", "128", "--dropout", "0.2", "--lr", "3e-3",
                   "--epochs", "10", "--patience", "3", "--seed", "42"]


def run(args, name, work):
    """Runs prosa with `args`: stdout to WORK/NAME.json, stderr to WORK/NAME.log; returns
    seconds. A finished earlier run (WORK/NAME.json parses) is kept: its recorded seconds."""
    out_path, seconds_path = work / f"{name}.json", work / f"{name}.seconds"
    try:
        json.loads(out_path.read_text())
        print(f"{name}: kept from an earlier run ({out_path})")
        return float(seconds_path.read_text()) if seconds_path.exists() else float("nan")
    except (OSError, ValueError):
        pass
    started = time.time()
    with open(out_path, "w") as out, open(work / f"{name}.log", "w") as err:
        subprocess.run([PROSA, *args], check=True, stdout=out, stderr=err)
    seconds = time.time() - started
    seconds_path.write_text(f"{seconds}\n")
    return seconds


def elmo_row(work):
    """Pretrains the biLM on the training split's texts and trains the classifier on its
    frozen features; returns the table row."""
    split = work / "split"
    if not (split / "train.csv").exists():
        subprocess.run([PROSA, "data", "split", "--out", str(split)], check=True)
    with open(split / "train.csv", newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    corpus = work / "tweets-train.txt"
    # One tweet per paragraph: a blank line between texts, so none runs into the next.
    corpus.write_text("".join(" ".join(t.split()) + "\n\n" for t in texts), encoding="utf-8")
    bilm = work / "elmo-bilm"
    pretrain_seconds = run(["pretrain", "--arch", "elmo", "--corpus", str(corpus), "--output-dir", str(bilm),
                            *ELMO_PRETRAIN, "--json"], "elmo-bilm", work)
    ppl, unigram = lm_results(bilm)
    out = work / "elmo"
    seconds = run(["train", *ELMO_CLASSIFIER, "--pretrained", str(bilm / "model"), "--output-dir", str(out),
                   "--json"], "elmo", work)
    result = json.loads((work / "elmo.json").read_text())
    title = "ELMo (biLM on the training tweets, frozen) + scalar mix + dense"
    return (title, result["accuracy"], result["macro_f1"], ppl, unigram, pretrain_seconds + seconds)


def lm_results(folder):
    """(validation perplexity at the end, unigram perplexity) of an LM run's results.json."""
    r = json.loads((folder / "results.json").read_text())
    return r["curve"][-1][1], r["unigram_perplexity"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("work", nargs="?", default="/tmp/prosa-ulmfit")
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--skip-pretraining", action="store_true")
    a = parser.parse_args()
    work = pathlib.Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    lm = work / "general-lm"
    if not a.skip_pretraining:
        corpus = work / "english-2.9M.txt"
        words = write_corpus(english_mix(), corpus)
        print(f"general-domain corpus: {words} words")
        seconds = run(["pretrain", "--arch", "awd-lstm", "--corpus", str(corpus), "--output-dir", str(lm),
                       *PRETRAIN, "--json"], "general-lm", work)
        print(f"general-domain LM: {seconds / 60:.1f} min")
    ppl, unigram = lm_results(lm)
    print(f"general-domain LM: validation perplexity {ppl:.1f} (unigram model {unigram:.1f})")
    rows_flag = ["--max-rows", str(a.max_rows)] if a.max_rows else []
    # ELMo first: its row is ready in ~20 minutes, the ULMFiT rows take hours on the full split.
    elmo = elmo_row(work) if a.max_rows is None else None
    table = []
    for key, title, flags in ROWS:
        flags = [f for flag in flags for f in (["--pretrained", str(lm / "model")] if flag == "PRETRAINED" else [flag])]
        out = work / key
        seconds = run(["train", *CLASSIFIER, *rows_flag, *flags, "--output-dir", str(out), "--json"], key, work)
        result = json.loads((work / f"{key}.json").read_text())
        table.append((title, result["accuracy"], result["macro_f1"], *lm_results(out / "lm"), seconds))
    if elmo is not None:
        table.append(elmo)
    out = work / "lstm-glove"
    seconds = run(["train", "--arch", "lstm", "--vectors", str(ROOT / "data/vectors/glove.6B.50d.top20k.bin"),
                   "--hidden", "64", "--epochs", "3", "--lr", "3e-3", "--seed", "42", *rows_flag,
                   "--output-dir", str(out), "--json"], "lstm-glove", work)
    result = json.loads((work / "lstm-glove.json").read_text())
    table.append(("LSTM over GloVe (quickstart)", result["accuracy"], result["macro_f1"], None, None, seconds))
    print("\n| model | accuracy | macro-F1 | tweets LM perplexity (unigram) | time |")
    print("| --- | --- | --- | --- | --- |")
    for title, acc, f1, ppl, unigram, seconds in table:
        ppl = "—" if ppl is None else f"{ppl:.1f} ({unigram:.1f})"
        print(f"| {title} | {acc:.3f} | {f1:.3f} | {ppl} | {seconds:.0f} s |")


if __name__ == "__main__":
    main()
