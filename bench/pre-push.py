#!/usr/bin/env python3
"""Time `pre-push` over a long range against `git log -p` of the same range.

Usage: pre-push.py BINARY [RUNS]

A repository of 400 files of 300 lines (built with `git fast-import`), `origin/main` at its
first commit, and a branch of N commits on top, each changing one line in each of three files
(as an agent's small commits do). Alternating, `trunkwarden hook pre-push` reads the branch's
ref line and `git log -p origin/main..branch` writes the same range's patches to /dev/null.
Prints the median of RUNS for N = 100 and 1,000, and the ratio (target ≤ 1.5×).
"""
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(sys.argv[1])
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
FILES, LINES = 400, 300

scratch = tempfile.mkdtemp(prefix="trunkwarden-pre-push-bench-")
home = os.path.join(scratch, "home")
os.makedirs(home)
ENV = {"PATH": os.environ["PATH"], "HOME": home, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


def git(args, cwd, stdin=None):
    return subprocess.run(["git"] + args, cwd=cwd, env=ENV, check=True, input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout


def fixture(n):
    rng = random.Random(n)
    path = os.path.join(scratch, f"n{n}")
    git(["init", "-q", "-b", "main", path], scratch)
    files = [[f"let value_{f}_{i} = compute({i}, \"{f:04x}{i:04x}\");" for i in range(LINES)]
             for f in range(FILES)]
    out = []

    def blob(f):
        data = ("\n".join(files[f]) + "\n").encode()
        return f"M 100644 inline src/m{f % 20}/f{f}.rs\ndata {len(data)}\n".encode() + data + b"\n"

    def commit(ref, mark, parent, msg, changed, t):
        out.append(f"commit {ref}\nmark :{mark}\ncommitter B <b@example.test> {t} +0000\n".encode())
        m = msg.encode()
        out.append(f"data {len(m)}\n".encode() + m + b"\n")
        if parent:
            out.append(f"from :{parent}\n".encode())
        for f in changed:
            out.append(blob(f))

    commit("refs/heads/main", 1, None, "feat: the tree", range(FILES), 1700000000)
    for c in range(n):
        changed = rng.sample(range(FILES), 3)
        for f in changed:
            line = rng.randrange(LINES)
            files[f][line] = f"let value_{f}_{line} = compute({line}, \"{c:06x}\"); // step {c}"
        commit("refs/heads/feature", c + 2, c + 1, f"feat: step {c}", changed, 1700000001 + c)
    git(["fast-import", "--quiet"], path, stdin=b"".join(out))
    git(["update-ref", "refs/remotes/origin/main", "main"], path)
    tip = git(["rev-parse", "feature"], path).decode().strip()
    return path, f"refs/heads/feature {tip} refs/heads/feature {'0' * 40}\n"


def timed(args, cwd, stdin):
    start = time.perf_counter()
    out = subprocess.run(args, cwd=cwd, env=ENV, input=stdin.encode(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - start) * 1000
    if out.returncode != 0:
        sys.exit(f"{args[0]} failed in {cwd}: {out.stderr.decode()}")
    return elapsed


print(f"pre-push vs `git log -p` over the pushed range, median of {RUNS} (ms)")
print(f"{'commits':>8} {'trunkwarden':>11} {'git log -p':>10} {'ratio':>6} {'target':>7}")
for n in (100, 1000):
    path, line = fixture(n)
    tw, log = [], []
    for _ in range(RUNS):
        tw.append(timed([BIN, "hook", "pre-push", "origin", "file:///dev/null"], path, line))
        log.append(timed(["git", "log", "-p", "origin/main..feature"], path, ""))
    a, b = statistics.median(tw), statistics.median(log)
    print(f"{n:>8,} {a:>11.1f} {b:>10.1f} {a / b:>5.2f}× {'ok' if a <= 1.5 * b else 'MISSED':>7}")
