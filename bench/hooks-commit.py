#!/usr/bin/env python3
"""Time `git commit` of a one-line change with and without trunkwarden's hooks installed.

Usage: hooks-commit.py BINARY [RUNS]

Two identical repositories per size: one with `trunkwarden hooks install` (pre-commit,
commit-msg and pre-push shims), one without. Commits alternate between them so that drift
(page cache, CPU frequency) hits both alike. Prints the median wall and CPU time (user + sys
of git and every process it starts) per commit, and the difference: the hooks' added cost.
"""
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(sys.argv[1])
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 40
SIZES = [("small", 20), ("large", 5000)]

scratch = tempfile.mkdtemp(prefix="trunkwarden-hooks-bench-")
home = os.path.join(scratch, "home")
os.makedirs(home)
with open(os.path.join(home, ".gitconfig"), "w") as f:
    f.write("[user]\n\tname = Bench\n\temail = bench@example.test\n[init]\n\tdefaultBranch = main\n")
ENV = {"PATH": os.environ["PATH"], "HOME": home, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


def run(args, cwd):
    subprocess.run(args, cwd=cwd, env=ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_repo(path, files):
    os.makedirs(path)
    run(["git", "init", "-q"], path)
    for i in range(files):
        d = os.path.join(path, "src", f"m{i % 100:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i}.rs"), "w") as f:
            for j in range(30):
                f.write(f"pub fn f{i}_{j}(x: u64) -> u64 {{ x.wrapping_mul({j + 1}) + {i} }}\n")
    with open(os.path.join(path, "CHANGES.md"), "w") as f:
        f.write("# Changes\n")
    run(["git", "add", "-A"], path)
    run(["git", "commit", "-q", "-m", "chore: start"], path)
    # Work happens on a branch: trunkwarden refuses commits on the trunk itself.
    run(["git", "switch", "-q", "-c", "work"], path)


def commit(path, i):
    with open(os.path.join(path, "CHANGES.md"), "a") as f:
        f.write(f"- change {i}\n")
    run(["git", "add", "CHANGES.md"], path)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    run(["git", "commit", "-q", "-m", f"docs: change {i}"], path)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1000, cpu * 1000


print(f"git commit of a one-line change, {RUNS} commits per case, medians in ms")
print(f"{'repository':<22}{'wall without':>14}{'wall with':>12}{'added':>9}"
      f"{'cpu without':>14}{'cpu with':>11}{'added':>9}")
for name, files in SIZES:
    plain = os.path.join(scratch, f"{name}-plain")
    hooked = os.path.join(scratch, f"{name}-hooked")
    make_repo(plain, files)
    make_repo(hooked, files)
    run([BIN, "hooks", "install"], hooked)
    # Warm both: page cache, the binary, git's index stat data.
    for i in range(3):
        commit(plain, -i - 1)
        commit(hooked, -i - 1)
    results = {plain: [], hooked: []}
    for i in range(RUNS):
        order = (plain, hooked) if i % 2 == 0 else (hooked, plain)
        for repo in order:
            results[repo].append(commit(repo, i))
    w0 = statistics.median(r[0] for r in results[plain])
    w1 = statistics.median(r[0] for r in results[hooked])
    c0 = statistics.median(r[1] for r in results[plain])
    c1 = statistics.median(r[1] for r in results[hooked])
    label = f"{name} ({files + 1} files)"
    print(f"{label:<22}{w0:>14.2f}{w1:>12.2f}{w1 - w0:>9.2f}{c0:>14.2f}{c1:>11.2f}{c1 - c0:>9.2f}")
print(f"scratch: {scratch}")
