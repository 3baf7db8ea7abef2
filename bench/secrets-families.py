#!/usr/bin/env python3
"""Recall per provider family: fresh synthetic tokens in each provider's published format (a seed
the rules' own examples do not use), written into .env, shell, YAML, Python and Markdown files,
scanned by each binary given; a token counts as found when a finding lands on its line.

Usage: bench/secrets-families.py BINARY [BINARY…]   e.g. an older build beside the current one
"""
import json, os, random, string, subprocess, sys, tempfile

rng = random.Random(20261208)
A = string.ascii_letters + string.digits
LOW = string.ascii_lowercase + string.digits
UP = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"


def r(n, alpha=A):
    return "".join(rng.choice(alpha) for _ in range(n))


FAMILIES = [
    ("gitlab-other-token", lambda: f"GITLAB_OAUTH_SECRET=gloas-{r(64,HEX)}"),
    ("gitlab-runner-registration-token", lambda: f"registration-token: GR1348941{r(20)}"),
    ("planetscale-token", lambda: f"PLANETSCALE_SERVICE_TOKEN=pscale_tkn_{r(43)}"),
    ("sidekiq-credentials", lambda: f"BUNDLE_ENTERPRISE__CONTRIBSYS__COM={r(8,HEX)}:{r(8,HEX)}"),
    ("cloudflare-origin-ca-key", lambda: f"CF_ORIGIN_CA_KEY=v1.0-{r(24,HEX)}-{r(146,HEX)}"),
    ("cloudflare-api-key", lambda: f"CLOUDFLARE_API_KEY={r(37,HEX)}"),
    ("discord-bot-token", lambda: f"DISCORD_BOT_TOKEN=M{r(23)}.{r(6)}.{r(27)}"),
    ("newrelic-key", lambda: f"NEW_RELIC_INSERT_KEY=NRII-{r(32)}"),
    ("twitter-bearer-token", lambda: f"TWITTER_BEARER_TOKEN=AAAAAAAAAAAAAAAAAAAAA{'A'}{r(30)}%3D{r(60)}"),
    ("twitter-api-secret", lambda: f"TWITTER_API_SECRET={r(50)}"),
    ("jfrog-token", lambda: f"artifactory_api_key: AKCp{r(69)}"),
    ("messagebird-api-key", lambda: f"MESSAGEBIRD_API_KEY={r(25)}"),
    ("huggingface-org-token", lambda: f"HF_ORG_TOKEN=api_org_{r(34,string.ascii_letters)}"),
    ("npmrc-auth-token", lambda: f"//registry.example.org/:_authToken={r(8,HEX)}-{r(4,HEX)}-{r(4,HEX)}-{r(4,HEX)}-{r(12,HEX)}".replace("-", "")),
    ("slack-app-token", lambda: f"SLACK_APP_TOKEN=xapp-1-{r(11,UP)}-{rng.randrange(10**12,10**13)}-{r(64,HEX)}"),
    ("stripe-webhook-secret", lambda: f"STRIPE_WEBHOOK_SECRET=whsec_{r(32)}"),
    ("okta-api-token", lambda: f"OKTA_API_TOKEN=00{r(40)}"),
    ("auth0-client-secret", lambda: f"AUTH0_CLIENT_SECRET={r(64)}"),
    ("azure-ad-client-secret", lambda: f"AZURE_CLIENT_SECRET={r(3)}7Q~{r(34, A + '_~.-')}".replace("~~","~a")),
    ("azure-devops-pat", lambda: f"AZURE_DEVOPS_PAT={r(52, 'abcdefghijklmnopqrstuvwxyz234567')}"),
    ("azure-sas-token", lambda: f"https://acct.blob.core.windows.net/c?sv=2022-11-02&ss=b&srt=o&sp=r&se=2030-01-01&sig={r(43)}%3D"),
    ("connection-string-password", lambda: f"Server=db{rng.randrange(99)}.internal;Database=app;User Id=app;Password={r(6)}#{r(5)}!{r(3)};"),
    ("password-hash", lambda: f"admin:$2b$12${r(53, A + './')}"),
    ("twilio-api-key", lambda: f"TWILIO_API_KEY=SK{r(32,HEX)}"),
    ("mailchimp-api-key", lambda: f"MAILCHIMP_KEY={r(32,HEX)}-us21"),
    ("postman-api-key", lambda: f"POSTMAN_API_KEY=PMAK-{r(24,HEX)}-{r(34,HEX)}"),
    ("linear-api-key", lambda: f"LINEAR_API_KEY=lin_api_{r(40)}"),
    ("grafana-token", lambda: f"GRAFANA_TOKEN=glsa_{r(32)}_{r(8,HEX)}"),
    ("databricks-token", lambda: f"DATABRICKS_TOKEN=dapi{r(32,HEX)}"),
    ("dynatrace-token", lambda: f"DT_API_TOKEN=dt0c01.{r(24,UP)}.{r(64,UP)}"),
    ("flyio-token", lambda: f"FLY_API_TOKEN=fo1_{r(43)}"),
    ("sentry-token", lambda: f"SENTRY_AUTH_TOKEN=sntryu_{r(64,HEX)}"),
    ("heroku-api-key", lambda: f"HEROKU_API_KEY=HRKU-AA{r(58)}"),
    ("age-secret-key", lambda: f"# key: AGE-SECRET-KEY-1{r(58,'QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L')}"),
    ("alibaba-access-key-id", lambda: f"ALIBABA_CLOUD_ACCESS_KEY_ID=LTAI{r(20)}"),
    ("contentful-token", lambda: f"CONTENTFUL_MANAGEMENT_TOKEN=CFPAT-{r(43)}"),
    ("notion-token", lambda: f"NOTION_TOKEN=ntn_{rng.randrange(10**10,10**11)}{r(35)}"),
    ("airtable-pat", lambda: f"AIRTABLE_TOKEN=pat{r(14)}.{r(64,HEX)}"),
    ("onepassword-service-account-token", lambda: f"OP_SERVICE_ACCOUNT_TOKEN=ops_eyJ{r(300)}"),
    ("groq-api-key", lambda: f"GROQ_API_KEY=gsk_{r(52)}"),
    ("replicate-token", lambda: f"REPLICATE_API_TOKEN=r8_{r(37)}"),
    ("perplexity-api-key", lambda: f"PPLX_API_KEY=pplx-{r(48,HEX)}"),
    ("xai-api-key", lambda: f"XAI_API_KEY=xai-{r(80)}"),
    ("shippo-token", lambda: f"SHIPPO_TOKEN=shippo_live_{r(40,HEX)}"),
    ("prefect-api-key", lambda: f"PREFECT_API_KEY=pnu_{r(36)}"),
    ("clojars-token", lambda: f"password: CLOJARS_{r(60,LOW)}"),
    ("easypost-api-key", lambda: f"EASYPOST_API_KEY=EZAK{r(54)}"),
    ("duffel-token", lambda: f"DUFFEL_TOKEN=duffel_live_{r(43)}"),
    ("typeform-token", lambda: f"TYPEFORM_TOKEN=tfp_{r(59)}"),
    ("adobe-client-secret", lambda: f"ADOBE_CLIENT_SECRET=p8e-{r(32)}"),
    ("scalingo-token", lambda: f"SCALINGO_API_TOKEN=tk-us-{r(48)}"),
    ("readme-api-key", lambda: f"README_API_KEY=rdme_{r(70,LOW)}"),
    ("frameio-token", lambda: f"FRAMEIO_TOKEN=fio-u-{r(64)}"),
    ("infracost-api-key", lambda: f"INFRACOST_API_KEY=ico-{r(32)}"),
    ("flutterwave-secret-key", lambda: f"FLW_SECRET_KEY=FLWSECK-{r(32,'abcdefgh0123456789')}-X"),
    ("dropbox-token", lambda: f"DROPBOX_TOKEN=sl.{r(138)}"),
]

CONTEXTS = [
    (".env", lambda l: l),
    (".sh", lambda l: "export " + l),
    (".yml", lambda l: "env:\n  - " + l),
    (".py", lambda l: 'CONFIG = """\n' + l + '\n"""'),
    (".md", lambda l: "Set it like this:\n\n```\n" + l + "\n```"),
]
PER_FAMILY = 20

with tempfile.TemporaryDirectory() as d:
    truth = {}
    for fam, make in FAMILIES:
        for i in range(PER_FAMILY):
            ext, wrap = CONTEXTS[i % len(CONTEXTS)]
            line = make()
            text = "# settings\n" + wrap(line) + "\n"
            name = f"{fam}-{i}{ext}"
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
            at = text.split("\n").index(line if ext in (".env", ".py", ".md") else wrap(line).split("\n")[-1]) + 1
            truth[name] = (fam, at)
    results = {}
    for b in sys.argv[1:]:
        out = subprocess.run([b, "scan", "--no-ignore", "--format", "json", d], capture_output=True)
        data = json.loads(out.stdout or b"[]")
        findings = data if isinstance(data, list) else data.get("findings", [])
        hit = {(os.path.basename(f["path"]), f["line"]) for f in findings}
        per = {}
        for name, (fam, line) in truth.items():
            per.setdefault(fam, [0, 0])
            per[fam][1] += 1
            if (name, line) in hit:
                per[fam][0] += 1
        results[b] = per
    names = [os.path.basename(os.path.dirname(os.path.dirname(b))) + "/" + os.path.basename(b) if b.count("/") > 1 else b for b in sys.argv[1:]]
    print(f"{'family':<36}" + "".join(f"{n[-18:]:>20}" for n in names))
    totals = {b: [0, 0] for b in sys.argv[1:]}
    for fam, _ in FAMILIES:
        row = f"{fam:<36}"
        for b in sys.argv[1:]:
            ok, n = results[b][fam]
            totals[b][0] += ok
            totals[b][1] += n
            row += f"{ok / n:>20.2f}"
        print(row)
    print(f"{'all families':<36}" + "".join(f"{totals[b][0] / totals[b][1]:>20.3f}" for b in sys.argv[1:]))
