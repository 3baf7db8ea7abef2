"""Synthetic secrets in real published formats, for the scanner benchmarks. GitHub and npm tokens
carry valid CRC32 checksums; none is a real credential."""
import string, zlib


def make_kinds(rng):
    """kind -> function returning (lines to insert, index of the secret's first line in them)."""
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
    return KINDS
