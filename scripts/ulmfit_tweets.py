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
        [--record DIR] [--only ROW,...]

Prints the table (accuracy, macro-F1, the LMs' validation perplexities, times); every run's
folder, learning curves and report stay under WORK_DIR. Runs resume: a step whose WORK/NAME.json
holds a result is not run again (delete it to re-run), so a long full-split run can be stopped
and started again.

The full split takes about five hours on two cores, longer than one working session, and WORK
does not outlive a machine. So each finished row also leaves a small record, RECORD/ROW.json
(its scores, LM perplexities, seconds, the machine's core count), in a folder that is committed
(`docs/results/ulmfit-tweets-full/` for the full split): a row with a record is not run again,
the general-domain LM is pretrained only while a row that needs it is missing, and the table is
printed from the records — so the rows can be run over several sessions (`--only` picks some).
"""
import argparse
import csv
import json
import os
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
    frozen features; returns the row's record."""
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
    out = work / "elmo"
    seconds = run(["train", *ELMO_CLASSIFIER, "--pretrained", str(bilm / "model"), "--output-dir", str(out),
                   "--json"], "elmo", work)
    return record_of(work / "elmo.json", bilm, pretrain_seconds + seconds)


def lm_results(folder):
    """(validation perplexity at the end, unigram perplexity) of an LM run's results.json."""
    r = json.loads((folder / "results.json").read_text())
    return r["curve"][-1][1], r["unigram_perplexity"]


def record_of(result_path, lm_folder, seconds):
    """A row's record: the classifier's scores, its LM's perplexities (None without an LM), the
    wall time and the machine it ran on."""
    result = json.loads(result_path.read_text())
    ppl, unigram = lm_results(lm_folder) if lm_folder is not None else (None, None)
    return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"], "lm_perplexity": ppl,
            "unigram_perplexity": unigram, "seconds": seconds, "cores": os.cpu_count(),
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def recorded(record_dir, key):
    """The record of row KEY in RECORD_DIR, or None while the row has not been run."""
    try:
        return json.loads((record_dir / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None


def keep(record_dir, key, record):
    """Writes row KEY's record (atomically: a half-written record would read as not run)."""
    record_dir.mkdir(parents=True, exist_ok=True)
    tmp = record_dir / f"{key}.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(record_dir / f"{key}.json")
    return record


# Every row of the table: key, title. ELMo runs first (its row is ready in ~20 minutes), the
# ULMFiT rows take about an hour each on the full split.
TITLES = [("elmo", "ELMo (biLM on the training tweets, frozen) + scalar mix + dense"),
          *[(key, title) for key, title, _ in ROWS],
          ("lstm-glove", "LSTM over GloVe (quickstart)")]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("work", nargs="?", default="/tmp/prosa-ulmfit")
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--skip-pretraining", action="store_true")
    parser.add_argument("--record", type=pathlib.Path, default=None,
                        help="folder of the rows' records (default: docs/results/ulmfit-tweets-full for the "
                             "full split, WORK/records with --max-rows)")
    parser.add_argument("--only", default=None, help="comma-separated rows to run: " +
                        ", ".join(key for key, _ in TITLES))
    a = parser.parse_args()
    work = pathlib.Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    record_dir = a.record or (ROOT / "docs/results/ulmfit-tweets-full" if a.max_rows is None else work / "records")
    keys = [key for key, _ in TITLES]
    wanted = keys if a.only is None else a.only.split(",")
    unknown = [key for key in wanted if key not in keys]
    if unknown:
        parser.error(f"--only: unknown rows {unknown}; the rows are {keys}")
    if a.max_rows is not None and "elmo" in wanted:
        wanted.remove("elmo")  # the subset's split differs from the one `prosa data split` makes
    todo = [key for key in wanted if recorded(record_dir, key) is None]
    print(f"records in {record_dir}; to run: {', '.join(todo) or 'nothing'}")

    lm = work / "general-lm"
    needs_lm = any("PRETRAINED" in flags for key, _, flags in ROWS if key in todo)
    if needs_lm and not a.skip_pretraining:
        corpus = work / "english-2.9M.txt"
        words = write_corpus(english_mix(), corpus)
        print(f"general-domain corpus: {words} words")
        seconds = run(["pretrain", "--arch", "awd-lstm", "--corpus", str(corpus), "--output-dir", str(lm),
                       *PRETRAIN, "--json"], "general-lm", work)
        print(f"general-domain LM: {seconds / 60:.1f} min")
    if needs_lm:
        ppl, unigram = lm_results(lm)
        print(f"general-domain LM: validation perplexity {ppl:.1f} (unigram model {unigram:.1f})")
    rows_flag = ["--max-rows", str(a.max_rows)] if a.max_rows else []
    for key in todo:
        if key == "elmo":
            record = elmo_row(work)
        elif key == "lstm-glove":
            seconds = run(["train", "--arch", "lstm", "--vectors", str(ROOT / "data/vectors/glove.6B.50d.top20k.bin"),
                           "--hidden", "64", "--epochs", "3", "--lr", "3e-3", "--seed", "42", *rows_flag,
                           "--output-dir", str(work / key), "--json"], key, work)
            record = record_of(work / f"{key}.json", None, seconds)
        else:
            flags = next(flags for k, _, flags in ROWS if k == key)
            flags = [f for flag in flags for f in (["--pretrained", str(lm / "model")] if flag == "PRETRAINED" else [flag])]
            seconds = run(["train", *CLASSIFIER, *rows_flag, *flags, "--output-dir", str(work / key), "--json"],
                          key, work)
            record = record_of(work / f"{key}.json", work / key / "lm", seconds)
        keep(record_dir, key, record)
        print(f"{key}: accuracy {record['accuracy']:.3f}, macro-F1 {record['macro_f1']:.3f} "
              f"({record['seconds'] / 60:.1f} min) -> {record_dir / (key + '.json')}")

    print("\n| model | accuracy | macro-F1 | tweets LM perplexity (unigram) | time |")
    print("| --- | --- | --- | --- | --- |")
    for key, title in TITLES:
        r = recorded(record_dir, key)
        if r is None:
            print(f"| {title} | not run yet | | | |")
            continue
        ppl = "—" if r["lm_perplexity"] is None else f"{r['lm_perplexity']:.1f} ({r['unigram_perplexity']:.1f})"
        print(f"| {title} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {ppl} | {r['seconds'] / 60:.1f} min |")


if __name__ == "__main__":
    main()
