//! Every recorded delivery in webhook-fixtures/ normalizes to its reviewed snapshot
//! (`<name>.event.json`), and every published and computed signature vector verifies.
//!
//! `UPDATE_SNAPSHOTS=1 cargo test --test webhook_fixtures` rewrites the snapshots; review the diff.

use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use trunkwarden::webhook::event::{CiState, CommentAction, PrAction};
use trunkwarden::webhook::{Event, ForgeKind, Verifier, fixture, meta, normalize, verify};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("webhook-fixtures")
}

fn forge_of(path: &Path) -> ForgeKind {
    let dir = path
        .parent()
        .and_then(Path::file_name)
        .unwrap()
        .to_string_lossy();
    dir.parse().unwrap()
}

fn outcome(path: &Path) -> Value {
    let f = fixture::read(path).unwrap();
    let forge = forge_of(path);
    assert_eq!(
        trunkwarden::webhook::detect(&f.headers),
        Some(forge),
        "{}",
        path.display()
    );
    let m = meta(forge, &f.headers, &f.body).unwrap();
    let ct = m.headers.get("content-type").map(String::as_str);
    let result = match normalize(forge, &m.event, ct, &f.body) {
        Ok(Some(e)) => json!({ "event": e }),
        Ok(None) => json!({ "ignored": true }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    json!({
        "forge": forge,
        "event": m.event,
        "delivery_id": m.delivery_id,
        "outcome": result,
    })
}

#[test]
fn every_fixture_matches_its_snapshot() {
    let files = fixture::list(&root()).unwrap();
    assert!(files.len() >= 90, "only {} fixtures", files.len());
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut mismatches = Vec::new();
    for path in &files {
        let got = outcome(path);
        let snap = path.with_extension("event.json");
        let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
        if update {
            std::fs::write(&snap, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&snap).unwrap_or_else(|_| {
            panic!(
                "no snapshot {}; run with UPDATE_SNAPSHOTS=1",
                snap.display()
            )
        });
        if want != text {
            mismatches.push(snap.display().to_string());
        }
    }
    assert!(mismatches.is_empty(), "snapshots differ: {mismatches:#?}");
}

/// Normalizes one fixture by forge folder and name.
fn event(forge: &str, name: &str) -> Event {
    let path = root().join(forge).join(format!("{name}.json"));
    let f = fixture::read(&path).unwrap();
    let forge: ForgeKind = forge.parse().unwrap();
    let m = meta(forge, &f.headers, &f.body).unwrap();
    normalize(forge, &m.event, Some("application/json"), &f.body)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} was ignored"))
}

#[test]
fn merged_pull_requests_are_merges_on_every_forge() {
    for (forge, name, sha) in [
        ("github", "pull_request.closed-merged.woodpecker", None),
        (
            "gitea",
            "pull_request.closed-merged.woodpecker",
            Some("f2440f050054df0f8ecabcace648f1683509064c"),
        ),
        (
            "gitlab",
            "merge_request.merge.woodpecker",
            Some("43411b53d670203e887c4985c4e58e8e6b7c109e"),
        ),
    ] {
        let Event::PullRequest(pr) = event(forge, name) else {
            panic!("{forge}")
        };
        assert_eq!(pr.action, PrAction::Merged, "{forge}");
        assert!(pr.merged);
        if let Some(sha) = sha {
            assert_eq!(pr.merge_commit_sha.as_deref(), Some(sha), "{forge}");
        } else {
            assert!(pr.merge_commit_sha.is_some());
        }
    }
    // Closed without merge stays closed, and carries no merge commit.
    for (forge, name) in [
        ("github", "pull_request.closed.3"),
        ("gitea", "pull_request.closed-unmerged.woodpecker"),
        ("gitlab", "merge_request.close.woodpecker"),
    ] {
        let Event::PullRequest(pr) = event(forge, name) else {
            panic!()
        };
        assert_eq!(pr.action, PrAction::Closed, "{forge}");
        assert_eq!(pr.merge_commit_sha, None);
    }
}

#[test]
fn new_commits_on_a_pull_request_are_updates() {
    for (forge, name) in [
        ("github", "pull_request.synchronize.22"),
        ("gitea", "pull_request.synchronized.woodpecker"),
        ("gitlab", "merge_request.update-push.go-gitlab"),
    ] {
        let Event::PullRequest(pr) = event(forge, name) else {
            panic!()
        };
        assert_eq!(pr.action, PrAction::Updated, "{forge}");
        assert_eq!(pr.head_sha.len(), 40);
    }
}

#[test]
fn comments_know_whether_they_are_on_a_pull_request() {
    let Event::Comment(c) = event("github", "issue_comment.created-on-pr.go-scm") else {
        panic!()
    };
    assert!(c.on_pull_request);
    let Event::Comment(c) = event("github", "issue_comment.created.0") else {
        panic!()
    };
    assert!(!c.on_pull_request);
    let Event::Comment(c) = event("gitea", "issue_comment.created-on-pr.go-scm") else {
        panic!()
    };
    assert!(c.on_pull_request);
    assert_eq!((c.number, c.comment_id, c.author.id), (2, 45, 1));
    let Event::Comment(c) = event("gitea", "issue_comment.edited.go-scm") else {
        panic!()
    };
    assert_eq!(c.action, CommentAction::Edited);
    assert_eq!(c.previous_body.as_deref(), Some("Got it"));
    assert_eq!(c.body, "Got it, chief");
    let Event::Comment(c) = event("gitlab", "note") else {
        panic!()
    };
    assert!(c.on_pull_request);
    assert_eq!((c.number, c.body.as_str()), (1, "This MR needs work."));
    let Event::Comment(c) = event("github", "issue_comment.deleted.5") else {
        panic!()
    };
    assert_eq!(c.action, CommentAction::Deleted);
}

#[test]
fn ci_results_map_to_terminal_states() {
    let cases = [
        ("github", "status.none.0", CiState::Success),
        ("github", "status.failure.patronus", CiState::Failure),
        ("github", "check_run.completed.1", CiState::Failure),
        ("github", "check_run.completed.2", CiState::Success),
        ("github", "check_suite.completed.0", CiState::Success),
        ("github", "workflow_run.completed.1", CiState::Success),
        // The package's quirky example: completed action but a queued run with no conclusion.
        ("github", "workflow_run.completed.0", CiState::Pending),
        ("gitea", "status.success.RECONSTRUCTED", CiState::Success),
        ("gitea", "status.failure.RECONSTRUCTED", CiState::Failure),
        ("gitlab", "pipeline", CiState::Success),
        ("gitlab", "job", CiState::Pending),
    ];
    for (forge, name, state) in cases {
        let Event::CiStatus(s) = event(forge, name) else {
            panic!("{name}")
        };
        assert_eq!(s.state, state, "{forge}/{name}");
        assert_eq!(s.sha.len(), 40, "{name}");
    }
}

#[test]
fn branch_creation_and_unknown_events() {
    let Event::Push(p) = event("gitea", "push.branch-create.woodpecker") else {
        panic!()
    };
    assert!(p.created && !p.deleted);
    let Event::Push(p) = event("github", "push.none.4") else {
        panic!()
    };
    assert!(p.created);
    // Review approvals and labels are recorded but not acted on.
    for (forge, name) in [
        ("gitea", "pull_request_approved.reviewed.woodpecker"),
        ("github", "pull_request.labeled.8"),
    ] {
        let path = root().join(forge).join(format!("{name}.json"));
        assert_eq!(
            outcome(&path)["outcome"],
            json!({ "ignored": true }),
            "{name}"
        );
    }
}

#[test]
fn an_apps_installation_events_say_which_repositories_it_covers() {
    use trunkwarden::webhook::event::InstallationAction as A;
    for (name, action, added, removed) in [
        ("installation.created.1", A::Active, 1, 0),
        // A suspension names no repositories: the App forgets those it knew of.
        ("installation.unsuspend.6", A::Active, 0, 0),
        ("installation.deleted.0", A::Stopped, 0, 1),
        ("installation.suspend.5", A::Stopped, 0, 0),
        ("installation.new_permissions_accepted.4", A::Active, 1, 0),
    ] {
        let Event::Installation(i) = event("github", name) else {
            panic!("{name}")
        };
        assert_eq!(
            (i.action, i.added.len(), i.removed.len()),
            (action, added, removed),
            "{name}"
        );
        assert!(i.id > 0);
    }
}

#[test]
fn a_rerun_of_the_bots_own_check_run_is_a_recheck() {
    let path = root().join("github").join("check_run.rerequested.7.json");
    let f = fixture::read(&path).unwrap();
    let forge = ForgeKind::Github;
    let m = meta(forge, &f.headers, &f.body).unwrap();
    // Another App's check run re-run is not the bot's business.
    assert!(
        normalize(forge, &m.event, Some("application/json"), &f.body)
            .unwrap()
            .is_none()
    );
    let mut v: Value = serde_json::from_slice(&f.body).unwrap();
    v["check_run"]["name"] = json!("trunkwarden/secrets");
    v["check_run"]["pull_requests"] = json!([{ "number": 7 }]);
    let body = serde_json::to_vec(&v).unwrap();
    let Some(Event::Recheck(r)) =
        normalize(forge, &m.event, Some("application/json"), &body).unwrap()
    else {
        panic!("not a recheck")
    };
    assert_eq!(
        (r.repo.full_name.as_str(), r.sha.as_str(), r.pulls),
        (
            "github/hello-world",
            "d6fde92930d4715a2b49857d24b940956b26d2d3",
            vec![7]
        )
    );
}

fn vectors() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("signature-vectors.json")).unwrap())
        .unwrap()
}

fn hmap(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// Verifies a vector, then checks that one flipped byte in the body or the signature fails.
fn check_vector(
    v: &Verifier,
    forge: ForgeKind,
    body: &[u8],
    headers: &[(&str, &str)],
    now: i64,
    sig_header: &str,
) {
    let h = hmap(headers);
    assert_eq!(
        v.verify(forge, &h, body, now),
        Ok(()),
        "{forge} {headers:?}"
    );
    let mut flipped = body.to_vec();
    flipped[body.len() / 2] ^= 0x01;
    assert!(
        v.verify(forge, &h, &flipped, now).is_err(),
        "{forge}: flipped body verified"
    );
    let bad: Vec<(&str, String)> = headers
        .iter()
        .map(|(k, val)| {
            let mut s = val.to_string();
            if k.eq_ignore_ascii_case(sig_header) {
                // Change one signature character to a different valid one.
                let last = s.pop().unwrap();
                s.push(if last == 'a' || last == 'A' { 'b' } else { 'a' });
            }
            (*k, s)
        })
        .collect();
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, s)| (*k, s.as_str())).collect();
    assert!(
        v.verify(forge, &hmap(&bad), body, now).is_err(),
        "{forge}: flipped signature verified"
    );
}

#[test]
fn every_signature_vector_verifies_and_a_flipped_byte_fails() {
    let vs = vectors();
    let mut checked = 0;
    for p in vs["published"].as_array().unwrap() {
        let scheme = p["scheme"].as_str().unwrap();
        let body = p["body"].as_str().unwrap().as_bytes();
        if scheme.starts_with("github") {
            let v = Verifier {
                github: verify::Secrets::from_list(p["secret"].as_str().unwrap()),
                ..Default::default()
            };
            check_vector(
                &v,
                ForgeKind::Github,
                body,
                &[(
                    "x-hub-signature-256",
                    p["X-Hub-Signature-256"].as_str().unwrap(),
                )],
                0,
                "x-hub-signature-256",
            );
        } else {
            let key = verify::decode_signing_token(p["secret"].as_str().unwrap()).unwrap();
            let v = Verifier {
                gitlab_signing: verify::Secrets::from_keys(vec![key]),
                gitlab_tolerance_secs: 300,
                ..Default::default()
            };
            let ts = p["webhook-timestamp"].as_str().unwrap();
            check_vector(
                &v,
                ForgeKind::Gitlab,
                body,
                &[
                    ("webhook-id", p["webhook-id"].as_str().unwrap()),
                    ("webhook-timestamp", ts),
                    (
                        "webhook-signature",
                        p["webhook-signature"].as_str().unwrap(),
                    ),
                ],
                ts.parse().unwrap(),
                "webhook-signature",
            );
        }
        checked += 1;
    }
    for c in vs["computed"].as_array().unwrap() {
        let file = c["file"].as_str().unwrap();
        let body = std::fs::read(root().join(file)).unwrap();
        if let Some(sig) = c["X-Hub-Signature-256"].as_str() {
            let secrets = verify::Secrets::from_list(c["secret"].as_str().unwrap());
            if file.starts_with("github/") {
                let v = Verifier {
                    github: secrets,
                    ..Default::default()
                };
                check_vector(
                    &v,
                    ForgeKind::Github,
                    &body,
                    &[("x-hub-signature-256", sig)],
                    0,
                    "x-hub-signature-256",
                );
            } else {
                let v = Verifier {
                    gitea: secrets,
                    ..Default::default()
                };
                for (name, forge) in [
                    ("x-gitea-signature", ForgeKind::Gitea),
                    ("x-forgejo-signature", ForgeKind::Forgejo),
                    ("x-gogs-signature", ForgeKind::Gitea),
                ] {
                    let hex = c[match name {
                        "x-gitea-signature" => "X-Gitea-Signature",
                        "x-forgejo-signature" => "X-Forgejo-Signature",
                        _ => "X-Gogs-Signature",
                    }]
                    .as_str()
                    .unwrap();
                    check_vector(&v, forge, &body, &[(name, hex)], 0, name);
                }
                check_vector(
                    &v,
                    ForgeKind::Gitea,
                    &body,
                    &[("x-hub-signature-256", sig)],
                    0,
                    "x-hub-signature-256",
                );
            }
        } else {
            let key = verify::decode_signing_token(c["signing_token"].as_str().unwrap()).unwrap();
            assert_eq!(key.len(), 32, "GitLab signing keys are 32 bytes");
            let v = Verifier {
                gitlab_signing: verify::Secrets::from_keys(vec![key]),
                gitlab_tolerance_secs: 300,
                ..Default::default()
            };
            let ts = c["webhook-timestamp"].as_str().unwrap();
            check_vector(
                &v,
                ForgeKind::Gitlab,
                &body,
                &[
                    ("webhook-id", c["webhook-id"].as_str().unwrap()),
                    ("webhook-timestamp", ts),
                    (
                        "webhook-signature",
                        c["webhook-signature"].as_str().unwrap(),
                    ),
                ],
                ts.parse().unwrap(),
                "webhook-signature",
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 9, "2 published + 7 computed vectors");
}

#[test]
fn unsigned_and_unconfigured_deliveries_are_refused_unless_allowed() {
    use trunkwarden::webhook::verify::Rejection;
    let body = b"{}";
    let none = Verifier::default();
    assert_eq!(
        none.verify(ForgeKind::Github, &HeaderMap::new(), body, 0),
        Err(Rejection::NoSecretConfigured)
    );
    let v = Verifier {
        github: verify::Secrets::from_list("s"),
        ..Default::default()
    };
    assert_eq!(
        v.verify(ForgeKind::Github, &HeaderMap::new(), body, 0),
        Err(Rejection::MissingSignature)
    );
    let mut allowed = v.clone();
    allowed.allow_unsigned.insert(ForgeKind::Github);
    assert_eq!(
        allowed.verify(ForgeKind::Github, &HeaderMap::new(), body, 0),
        Ok(())
    );
    // Allowing unsigned never lets a wrong signature through.
    let wrong = hmap(&[("x-hub-signature-256", &format!("sha256={}", "0".repeat(64)))]);
    assert_eq!(
        allowed.verify(ForgeKind::Github, &wrong, body, 0),
        Err(Rejection::BadSignature)
    );
    // Gitea sends an empty signature header when the hook has no secret.
    let g = Verifier {
        gitea: verify::Secrets::from_list("s"),
        ..Default::default()
    };
    assert_eq!(
        g.verify(
            ForgeKind::Gitea,
            &hmap(&[("x-gitea-signature", "")]),
            body,
            0
        ),
        Err(Rejection::MissingSignature)
    );
    // GitLab plain token.
    let t = Verifier {
        gitlab_tokens: verify::Secrets::from_list("tok"),
        ..Default::default()
    };
    assert_eq!(
        t.verify(
            ForgeKind::Gitlab,
            &hmap(&[("x-gitlab-token", "tok")]),
            body,
            0
        ),
        Ok(())
    );
    assert_eq!(
        t.verify(
            ForgeKind::Gitlab,
            &hmap(&[("x-gitlab-token", "tok2")]),
            body,
            0
        ),
        Err(Rejection::BadSignature)
    );
}

#[test]
fn form_encoded_deliveries_verify_as_each_forge_signs_them() {
    let json = br#"{"zen":"hi","hook_id":1}"#;
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(json).unwrap())
        .finish();
    // GitHub signs the body as sent.
    let v = Verifier {
        github: verify::Secrets::from_list("s"),
        gitea: verify::Secrets::from_list("s"),
        ..Default::default()
    };
    let gh = hmap(&[
        ("content-type", "application/x-www-form-urlencoded"),
        (
            "x-hub-signature-256",
            &format!("sha256={}", verify::hmac_hex(b"s", form.as_bytes())),
        ),
    ]);
    assert_eq!(v.verify(ForgeKind::Github, &gh, form.as_bytes(), 0), Ok(()));
    // Gitea signs the JSON inside.
    let gt = hmap(&[
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-gitea-signature", &verify::hmac_hex(b"s", json)),
    ]);
    assert_eq!(v.verify(ForgeKind::Gitea, &gt, form.as_bytes(), 0), Ok(()));
    let e = normalize(
        ForgeKind::Github,
        "ping",
        Some("application/x-www-form-urlencoded"),
        form.as_bytes(),
    )
    .unwrap();
    assert!(matches!(e, Some(Event::Ping(_))));
}
