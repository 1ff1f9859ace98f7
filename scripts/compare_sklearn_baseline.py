"""prosa's bag-of-words baseline against scikit-learn's, on the same split, in one run.

Both read the same train.csv / test.csv (the stratified 80/20 split of the vendored tweets,
seed 42, written by `prosa data split`), build TF-IDF over word 1-2 grams, fit a logistic
regression (scikit-learn with and without balanced class weights; prosa's default is
balanced), and score the test file. Prints macro-F1, accuracy and wall time of each, and the
time ratio.

    pip install scikit-learn
    cargo build --release
    python3 scripts/compare_sklearn_baseline.py

Wall time counts everything from reading the CSV to the test report (prosa: the whole
`prosa train` process, which also writes the model folder and plots).
"""
import csv
import json
import pathlib
import subprocess
import sys
import tempfile
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROSA = ROOT / "target" / "release" / "prosa"


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def main():
    if not PROSA.exists():
        sys.exit(f"{PROSA} not found: run `cargo build --release` first")
    work = pathlib.Path(tempfile.mkdtemp(prefix="prosa-vs-sklearn-"))
    subprocess.run([PROSA, "data", "split", "--test-size", "0.2", "--seed", "42", "--out", work, "--json"],
                   check=True, capture_output=True)

    def sklearn(class_weight):
        start = time.perf_counter()
        x_train, y_train = read(work / "train.csv")
        x_test, y_test = read(work / "test.csv")
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=50000, sublinear_tf=True)
        clf = LogisticRegression(max_iter=1000, class_weight=class_weight)
        clf.fit(vec.fit_transform(x_train), y_train)
        pred = clf.predict(vec.transform(x_test))
        seconds = time.perf_counter() - start
        return f1_score(y_test, pred, average="macro"), accuracy_score(y_test, pred), seconds

    rows = [("scikit-learn", *sklearn(None)), ("scikit-learn balanced", *sklearn("balanced"))]

    start = time.perf_counter()
    out = subprocess.run([PROSA, "train", "--data", work / "train.csv", "--test-data", work / "test.csv",
                          "--output-dir", work / "prosa", "--json"], check=True, capture_output=True, text=True)
    prosa_time = time.perf_counter() - start
    result = json.loads(out.stdout)

    rows.append(("prosa (balanced)", result["macro_f1"], result["accuracy"], prosa_time))
    print(f"{'':<24}{'macro-F1':>10}{'accuracy':>10}{'seconds':>10}")
    for name, f1, acc, seconds in rows:
        print(f"{name:<24}{f1:>10.4f}{acc:>10.4f}{seconds:>10.2f}")
    print(f"speed ratio prosa / scikit-learn balanced: {rows[1][3] / prosa_time:.2f}x")


if __name__ == "__main__":
    main()
