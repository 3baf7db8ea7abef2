#!/bin/sh
# Added cost of trunkwarden's hooks per `git commit`, in a small and a large repository.
# Usage: bench/hooks-commit.sh [RUNS]   (default 40 commits per case)
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 bench/hooks-commit.py target/release/trunkwarden "${1:-40}"
