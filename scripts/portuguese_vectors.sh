#!/usr/bin/env bash
# Portuguese word2vec vectors from the Portuguese text at hand (the course uses NILC's vectors,
# which are not reachable here): the pt_BR side of the gettext catalogues (assets/gettext-pt_BR)
# and the Brazilian fortunes (assets/fortunes-br), ~220k words after gensim-style preprocessing.
# Trains skip-gram, prints neighbours of a few words and draws a PCA map.
#
#   scripts/setup-assets.sh && cargo build --release -p prosa-cli
#   scripts/portuguese_vectors.sh [WORK_DIR]     # ~10 s
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prosa="${PROSA:-$root/target/release/prosa}"
work="${1:-/tmp/prosa-pt-vectors}"
mkdir -p "$work"

"$prosa" data gettext --out "$work/pairs.tsv"
tail -n +2 "$work/pairs.tsv" | cut -f2 > "$work/gettext-pt.txt"
cp "$root/assets/fortunes-br/usr/share/games/fortunes/brasil" "$work/fortunes.txt"

"$prosa" vectors train --corpus "$work/gettext-pt.txt" "$work/fortunes.txt" --simple-preprocess \
  --arch skipgram --dim 100 --window 5 --min-count 3 --epochs 20 --seed 1 --out "$work/pt.bin"

for word in usuário senha arquivos memória amor; do
  echo "== $word"
  "$prosa" vectors neighbors --vectors "$work/pt.bin" "$word" -k 5
done

"$prosa" vectors plot --vectors "$work/pt.bin" \
  --words "arquivo,diretório,pasta,disco,memória,senha,usuário,login,conta,amor,ódio,dinheiro,sorte,vida" \
  --title "word2vec pt_BR (gettext + fortunes): PCA" --out "$work/pt-word-map.png"
