#!/usr/bin/env python3
"""Builds webhook-fixtures/ from the forge corpus: bodies copied byte for byte, headers as each
forge documents them (see the corpus README), one fixed delivery id per fixture.

Usage: python3 webhook-fixtures/import.py ../shared/forge-corpus
Expected events (<name>.event.json) are written by `UPDATE_SNAPSHOTS=1 cargo test --test webhook_fixtures`
and reviewed by hand.
"""
import os
import shutil
import sys
import uuid

CORPUS = sys.argv[1] if len(sys.argv) > 1 else "../shared/forge-corpus"
OUT = os.path.dirname(os.path.abspath(__file__))

# GitHub: event name is the file-name prefix.
GITHUB = [f for f in sorted(os.listdir(os.path.join(CORPUS, "github"))) if f.endswith(".json") and "schema" not in f]
GITHUB_EXTRA = sorted(os.listdir(os.path.join(CORPUS, "github", "extra")))

# Gitea: (coarse X-Gitea-Event, fine X-Gitea-Event-Type) by file-name prefix.
GITEA_TYPES = {
    "push": ("push", "push"),
    "pull_request.synchronized": ("pull_request", "pull_request_sync"),
    "pull_request": ("pull_request", "pull_request"),
    "issue_comment.created-on-pr": ("issue_comment", "pull_request_comment"),
    "issue_comment": ("issue_comment", "issue_comment"),
    "pull_request_approved": ("pull_request_approved", "pull_request_review_approved"),
    "status": ("status", "status"),
}
GITLAB_EVENTS = {
    "push": "Push Hook",
    "merge_request": "Merge Request Hook",
    "note": "Note Hook",
    "pipeline": "Pipeline Hook",
    "job": "Job Hook",
}


def delivery_id(name):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "trunkwarden-fixture:" + name))


def write(forge, name, src, headers):
    d = os.path.join(OUT, forge)
    os.makedirs(d, exist_ok=True)
    shutil.copyfile(src, os.path.join(d, name + ".json"))
    with open(os.path.join(d, name + ".headers"), "w") as f:
        for k, v in headers:
            f.write(f"{k}: {v}\n")


def gitea_types(name):
    for prefix in sorted(GITEA_TYPES, key=len, reverse=True):
        if name.startswith(prefix):
            return GITEA_TYPES[prefix]
    raise SystemExit(f"no Gitea event type for {name}")


for f in GITHUB:
    name = f[: -len(".json")]
    write("github", name, os.path.join(CORPUS, "github", f), [
        ("Content-Type", "application/json"),
        ("User-Agent", "GitHub-Hookshot/044aadd"),
        ("X-GitHub-Event", name.split(".")[0]),
        ("X-GitHub-Delivery", delivery_id("github/" + name)),
        ("X-GitHub-Hook-ID", "109948940"),
        ("X-GitHub-Hook-Installation-Target-Type", "repository"),
        ("X-GitHub-Hook-Installation-Target-ID", "118"),
    ])
for f in GITHUB_EXTRA:
    name = f[: -len(".json")]
    write("github", name, os.path.join(CORPUS, "github", "extra", f), [
        ("Content-Type", "application/json"),
        ("User-Agent", "GitHub-Hookshot/044aadd"),
        ("X-GitHub-Event", name.split(".")[0]),
        ("X-GitHub-Delivery", delivery_id("github/" + name)),
        ("X-GitHub-Hook-ID", "109948940"),
    ])

for f in sorted(os.listdir(os.path.join(CORPUS, "gitea"))):
    if not f.endswith(".json") or f.startswith("swagger"):
        continue
    name = f[: -len(".json")]
    coarse, fine = gitea_types(name)
    did = delivery_id("gitea/" + name)
    write("gitea", name, os.path.join(CORPUS, "gitea", f), [
        ("Content-Type", "application/json"),
        ("User-Agent", "Go-http-client/1.1"),
        ("X-Gitea-Delivery", did), ("X-Gitea-Event", coarse), ("X-Gitea-Event-Type", fine),
        ("X-Gogs-Delivery", did), ("X-Gogs-Event", coarse), ("X-Gogs-Event-Type", fine),
        ("X-GitHub-Delivery", did), ("X-GitHub-Event", coarse), ("X-GitHub-Event-Type", fine),
    ])

# No real Forgejo captures exist; Forgejo sends Gitea's payloads with X-Forgejo-* headers added.
for name in ["push.branch.woodpecker", "issue_comment.created-on-pr.go-scm"]:
    coarse, fine = gitea_types(name)
    did = delivery_id("forgejo/" + name)
    write("forgejo", name, os.path.join(CORPUS, "gitea", name + ".json"), [
        ("Content-Type", "application/json"),
        ("User-Agent", "Go-http-client/1.1"),
        ("X-Forgejo-Delivery", did), ("X-Forgejo-Event", coarse), ("X-Forgejo-Event-Type", fine),
        ("X-Gitea-Delivery", did), ("X-Gitea-Event", coarse), ("X-Gitea-Event-Type", fine),
        ("X-GitHub-Delivery", did), ("X-GitHub-Event", coarse), ("X-GitHub-Event-Type", fine),
    ])

gitlab_files = [("", f) for f in sorted(os.listdir(os.path.join(CORPUS, "gitlab"))) if f.endswith(".json")]
gitlab_files += [("extra", f) for f in sorted(os.listdir(os.path.join(CORPUS, "gitlab", "extra")))]
for sub, f in gitlab_files:
    name = f[: -len(".json")]
    write("gitlab", name, os.path.join(CORPUS, "gitlab", sub, f), [
        ("Content-Type", "application/json"),
        ("User-Agent", "GitLab/17.11.0"),
        ("X-Gitlab-Event", GITLAB_EVENTS[name.split(".")[0]]),
        ("X-Gitlab-Instance", "https://gitlab.example.com"),
        ("X-Gitlab-Webhook-UUID", delivery_id("gitlab-request/" + name)),
        ("Idempotency-Key", delivery_id("gitlab/" + name)),
    ])
