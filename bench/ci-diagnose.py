#!/usr/bin/env python3
"""Diagnose a 100 MB CI log: time and peak memory, beside tools that also read it whole.

Usage: ci-diagnose.py BINARY [MB] [RUNS]

Writes a GitHub Actions-style log of MB megabytes (default 100): timestamped compile and test
noise, a token printed on the way, and a real-looking `cargo test` failure at the end. Then,
alternating, runs `trunkwarden ci diagnose LOG --format json`, `grep -c error LOG` and
`wc -l LOG`, and prints the median wall time and the peak RSS of each (VmHWM), with the
ratios. Exits 1 when the diagnosis misses the failing tests or its peak RSS passes 64 MiB:
a log's size must not decide the bot's memory.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(sys.argv[1])
MB = int(sys.argv[2]) if len(sys.argv) > 2 else 100
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
BOUND_MIB = 64

scratch = tempfile.mkdtemp(prefix="trunkwarden-diagnose-bench-")
log = os.path.join(scratch, "job.log")
stamp = "2026-12-07T10:00:00.1234567Z "
noise = [
    stamp + "   Compiling serde v1.0.228\n",
    stamp + "test tests::parses_the_header ... ok\n",
    stamp + "\x1b[1m\x1b[32m   Compiling\x1b[0m tokio v1.54.1\n",
    stamp + "warning: unused variable: `x` --> src/lib.rs:10:9\n",
]
tail = f"""{stamp}failures:
{stamp}
{stamp}---- tests::adds stdout ----
{stamp}thread 'tests::adds' panicked at src/lib.rs:6:17:
{stamp}assertion `left == right` failed
{stamp}---- tests::talks stdout ----
{stamp}using 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
{stamp}
{stamp}failures:
{stamp}    tests::adds
{stamp}    tests::talks
{stamp}
{stamp}test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out
{stamp}##[error]Process completed with exit code 101.
"""
with open(log, "w") as f:
    block = "".join(noise * 2000)
    written = 0
    while written < MB * 1_000_000:
        f.write(block)
        written += len(block)
    f.write(tail)
size = os.path.getsize(log)


def run(cmd):
    """Wall time, peak RSS (VmHWM of the process after exec, read while it runs: a child's
    rusage would count the Python it was forked from), output, exit code."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    hwm = 0
    chunks = []
    os.set_blocking(p.stdout.fileno(), False)
    while True:
        try:
            with open(f"/proc/{p.pid}/status") as st:
                for line in st:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
        except OSError:
            pass
        try:
            c = p.stdout.read()
            if c:
                chunks.append(c)
        except BlockingIOError:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.002)
    rest = p.stdout.read()
    if rest:
        chunks.append(rest)
    secs = time.perf_counter() - t
    p.stdout.close()
    return secs, hwm / 1024, b"".join(chunks), p.returncode


tools = {
    "trunkwarden ci diagnose": [BIN, "ci", "diagnose", log, "--format", "json"],
    "grep -c error": ["grep", "-c", "error", log],
    "wc -l": ["wc", "-l", log],
}
times = {k: [] for k in tools}
peak = {k: 0.0 for k in tools}
out = b""
for _ in range(RUNS):
    for name, cmd in tools.items():
        secs, rss, o, _code = run(cmd)
        times[name].append(secs)
        peak[name] = max(peak[name], rss)
        if name.startswith("trunkwarden"):
            out = o

d = json.loads(out)
print(f"log: {size / 1e6:.0f} MB, {RUNS} runs, median wall time and peak RSS")
base = statistics.median(times["trunkwarden ci diagnose"])
for name in tools:
    m = statistics.median(times[name])
    print(f"  {name:26} {m * 1000:8.0f} ms  {peak[name]:6.1f} MiB   diagnose/this = {base / m:5.2f}×")
print(f"  throughput: {size / 1e6 / base:.0f} MB/s; diagnosis: {d['class']}, failing {d['failing']}")
ok = d["class"] == "test" and d["failing_total"] == 2 and "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" not in out.decode()
if not ok:
    print("the diagnosis is wrong", file=sys.stderr)
if peak["trunkwarden ci diagnose"] > BOUND_MIB:
    print(f"peak RSS above {BOUND_MIB} MiB", file=sys.stderr)
    ok = False
os.remove(log)
sys.exit(0 if ok else 1)
