#!/usr/bin/env bash
# The README's test command: fetch the real assets (idempotent, checksummed), then run every
# test of the workspace. Needs only what a fresh machine has: cargo, python3 with pip, npm,
# apt-get (for the Debian package).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-assets.sh
PROSA_REQUIRE_ASSETS=1 cargo test --workspace --locked
