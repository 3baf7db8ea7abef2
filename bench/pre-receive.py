#!/usr/bin/env python3
"""Time the server-side `pre-receive` against git's own walk of the same push.

Usage: pre-receive.py BINARY [RUNS]

For K existing refs (tags over a 2,000-commit trunk) and N pushed refs (each a new branch with
one new commit on the trunk's tip), both built with `git fast-import`, the pushed commits are
left unreferenced in the bare repository as git's quarantine would hold them. Then, alternating,
`trunkwarden hook pre-receive --host bare` reads the N `<old> <new> <ref>` lines, and
`git rev-list --stdin --not --all` walks the same tips: the least any pre-receive must do.
Prints the median of RUNS for each, the ratio, and the target (≤ 2× git's walk + 10 ms).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(sys.argv[1])
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 7
TRUNK = 2000

scratch = tempfile.mkdtemp(prefix="trunkwarden-pre-receive-bench-")
home = os.path.join(scratch, "home")
os.makedirs(home)
ENV = {"PATH": os.environ["PATH"], "HOME": home, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


def git(args, cwd, stdin=None):
    return subprocess.run(["git"] + args, cwd=cwd, env=ENV, check=True, input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout


def fixture(k, n):
    path = os.path.join(scratch, f"k{k}-n{n}.git")
    git(["init", "-q", "--bare", "-b", "main", path], scratch)
    stream = []
    mark = 0
    for i in range(TRUNK):
        mark += 1
        body = f"n = {i}\n".encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(f"mark :{mark}\ncommitter B <b@example.test> {1700000000 + i} +0000\n".encode())
        msg = f"feat: step {i}\n".encode()
        stream.append(f"data {len(msg)}\n".encode() + msg)
        if i > 0:
            stream.append(f"from :{mark - 1}\n".encode())
        stream.append(f"M 100644 inline src/f{i % 50}.txt\ndata {len(body)}\n".encode() + body)
    tip = mark
    for j in range(k):
        stream.append(f"reset refs/tags/t{j}\nfrom :{1 + (j * 7) % TRUNK}\n\n".encode())
    for j in range(n):
        mark += 1
        body = f"branch {j}\n".encode()
        stream.append(f"commit refs/incoming/p{j}\nmark :{mark}\n".encode())
        stream.append(f"committer B <b@example.test> {1800000000 + j} +0000\n".encode())
        msg = f"feat: branch {j}\n".encode()
        stream.append(f"data {len(msg)}\n".encode() + msg)
        stream.append(f"from :{tip}\nM 100644 inline branch/{j}.txt\ndata {len(body)}\n".encode() + body)
    git(["fast-import", "--quiet"], path, stdin=b"".join(stream))
    pushed = git(["for-each-ref", "--format=%(objectname)", "refs/incoming/"], path).decode().split()
    # Unreferenced, as in git's quarantine before the refs move.
    drop = "".join(f"delete refs/incoming/p{j}\n" for j in range(n)).encode()
    git(["update-ref", "--stdin"], path, stdin=drop)
    git(["pack-refs", "--all"], path)
    lines = "".join(f"{'0' * 40} {sha} refs/heads/p{j}\n" for j, sha in enumerate(pushed))
    return path, lines, "".join(f"{sha}\n" for sha in pushed)


def timed(args, cwd, stdin):
    start = time.perf_counter()
    out = subprocess.run(args, cwd=cwd, env=dict(ENV, GIT_DIR=cwd), input=stdin.encode(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - start) * 1000
    if out.returncode != 0:
        sys.exit(f"{args[0]} failed in {cwd}: {out.stderr.decode()}")
    return elapsed


print(f"pre-receive vs `git rev-list --not --all`, median of {RUNS} (ms)")
print(f"{'existing refs':>13} {'pushed refs':>11} {'trunkwarden':>11} {'git walk':>9} {'ratio':>6} {'target':>7}")
for k in (1, 1000, 10000):
    for n in (1, 100, 1000):
        path, lines, tips = fixture(k, n)
        tw, walk = [], []
        for _ in range(RUNS):
            tw.append(timed([BIN, "hook", "pre-receive", "--host", "bare"], path, lines))
            walk.append(timed(["git", "rev-list", "--stdin", "--not", "--all"], path, tips))
        a, b = statistics.median(tw), statistics.median(walk)
        ok = "ok" if a <= 2 * b + 10 else "MISSED"
        print(f"{k:>13,} {n:>11,} {a:>11.1f} {b:>9.1f} {a / b:>5.1f}× {ok:>7}")
