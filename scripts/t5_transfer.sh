#!/usr/bin/env bash
# What span-corruption pretraining brings a small T5 on the Unit II translation split: the same
# T5 (3 + 3 layers × 256, 4 heads, gated-GELU feed-forward 1024, a 4,000-piece T5 tokenizer)
# pretrained with span corruption and then fine-tuned, vs trained on the pairs only.
#
#   scripts/setup-assets.sh && cargo build --release
#   scripts/t5_transfer.sh [OUT]            # OUT defaults to runs/t5-transfer
#
# Pretraining corpus (monolingual, no pair is seen aligned): the English sides and the
# Portuguese sides of the training catalogues as separate documents, and the Brazilian fortunes
# (fortunes-br). Pretraining: 6 epochs of 128-token chunks, AdamW 2e-2 with steps scaled by each
# weight's RMS. Translation, both runs: 3 epochs, AdamW 3e-2 (RMS-scaled), inverse-sqrt
# schedule, batches of 32 grouped by length, pairs of at most 32 tokens a side; BLEU and chrF of
# the held-out catalogues, greedy and beam 4.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/t5-transfer}
PROSA=target/release/prosa
mkdir -p "$OUT/corpus"
"$PROSA" data gettext --split --out "$OUT/split" --json > "$OUT/split.json"
# The two sides of the training pairs, one message per paragraph; the fortunes without '%'.
tail -n +2 "$OUT/split/train.tsv" | cut -f1 | sed 's/$/\n/' > "$OUT/corpus/en.txt"
tail -n +2 "$OUT/split/train.tsv" | cut -f2 | sed 's/$/\n/' > "$OUT/corpus/pt_BR.txt"
sed 's/^%$//' assets/fortunes-br/usr/share/games/fortunes/brasil > "$OUT/corpus/fortunes-br.txt"
"$PROSA" pretrain --arch t5 --corpus "$OUT/corpus" --output-dir "$OUT/pretrain" --vocab-size 4000 \
    --layers 3 --hidden 256 --heads 4 --intermediate 1024 --max-length 128 --epochs 6 \
    --batch-size 32 --lr 2e-2 --eval-steps 300 --json > "$OUT/pretrain.json"
translate() {  # NAME [FLAGS…]
    "$PROSA" train --task translation --arch t5 --pretrained "$OUT/pretrain/model" --epochs 3 \
        --max-tokens 32 --group-by-length --lr 3e-2 --output-dir "$OUT/$1" --json "${@:2}" > "$OUT/$1.json"
}
translate pairs-only --reinitialize
translate pretrained
"$PROSA" compare --run "pairs only=$OUT/pairs-only" --run "span corruption + pairs=$OUT/pretrained" \
    --title "T5 on the gettext pairs: with and without pretraining" --out "$OUT/curves.png"
for run in pairs-only pretrained; do
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], 'BLEU greedy/beam', round(r['greedy']['bleu'],2), round(r['beam']['bleu'],2), 'chrF', round(r['greedy']['chrf'],2), round(r['beam']['chrf'],2))" "$OUT/$run.json" "$run"
done
