#!/usr/bin/env bash
# The README's test command: fetch the real assets the tests read (idempotent, checksummed),
# then run every test of the workspace. Needs only what a fresh machine has: cargo, python3 with pip, npm,
# apt-get (for the Debian package). Ends with one summary line: "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-assets.sh --for-tests
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
PROSA_REQUIRE_ASSETS=1 cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
