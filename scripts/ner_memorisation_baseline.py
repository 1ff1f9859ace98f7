"""The baseline the NER test must beat (crates/prosa-cli/tests/cli.rs, `ner_fine_tunes_on_conll…`):
tag each test word with the tag it had most often in training (unseen words: O), then score
entities as seqeval does (exact IOB2 spans). Run from the repository root:

    python3 scripts/ner_memorisation_baseline.py
    # memorisation baseline: precision 0.753 recall 0.708 F1 0.730 (2000 train, 400 test sentences)
"""

from collections import Counter, defaultdict


def read(path):
    sentences, current = [], []
    for line in open(path, encoding="utf-8"):
        columns = line.split()
        if not columns:
            if current:
                sentences.append(current)
                current = []
            continue
        if columns[0] != "-DOCSTART-":
            current.append((columns[0], columns[-1]))
    if current:
        sentences.append(current)
    return sentences


def spans(tags):
    found, start, kind = set(), None, None
    for i, tag in enumerate(tags + ["O"]):
        continues = tag.startswith("I-") and tag[2:] == kind
        if not continues:
            if start is not None:
                found.add((start, i, kind))
            start, kind = (i, tag[2:]) if tag != "O" else (None, None)
    return found


train = read("data/ner/train.conll")
test = read("data/ner/test.conll")
seen = defaultdict(Counter)
for sentence in train:
    for word, tag in sentence:
        seen[word][tag] += 1
tp = fp = fn = 0
for sentence in test:
    gold = spans([t for _, t in sentence])
    guess = spans([seen[w].most_common(1)[0][0] if w in seen else "O" for w, _ in sentence])
    tp, fp, fn = tp + len(gold & guess), fp + len(guess - gold), fn + len(gold - guess)
p, r = tp / (tp + fp), tp / (tp + fn)
print(f"memorisation baseline: precision {p:.3f} recall {r:.3f} F1 {2 * p * r / (p + r):.3f} "
      f"({len(train)} train, {len(test)} test sentences)")
