//! The fake GitHub's App side: it issues installation access tokens only for a JWT signed by
//! the App's key (checked with the public key: RS256, `iss`, `exp`, `iat` not in the future,
//! `Authorization: Bearer`), tells which installation covers a repository, names the App and
//! its bot user, and holds each installation token to its installation's repositories and its
//! expiry — as GitHub's REST description documents these calls.
#![allow(dead_code)]

use std::process::Command;

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

use super::fake_forge::{FakeForge, Forge, reply};

/// An App registered on the fake.
pub struct FakeApp {
    pub id: u64,
    pub slug: String,
    /// The public half of the key tokens are issued for (PEM).
    pub public_pem: String,
    /// Installations: id, the repositories (`owner/name`) it covers, suspended.
    pub installations: Vec<(u64, Vec<String>, bool)>,
    /// Tokens issued: token, installation, expiry (Unix seconds).
    pub issued: Vec<(String, u64, i64)>,
    /// How long an issued token lasts, in seconds (GitHub: an hour).
    pub ttl: i64,
    /// The permissions the installations were granted.
    pub permissions: serde_json::Value,
}

/// A fresh RSA key pair from the system's `openssl`: `(private PEM, public PEM)`.
pub fn key_pair() -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    let out = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(public.status.success());
    (
        std::fs::read_to_string(&key).unwrap(),
        String::from_utf8(public.stdout).unwrap(),
    )
}

impl FakeForge {
    /// Registers an App whose key's public half is `public_pem`, installed on the primary
    /// repository (installation 1); returns nothing, the state holds it.
    pub fn register_app(&self, id: u64, slug: &str, public_pem: &str) {
        let mut f = self.state.lock().unwrap();
        f.users.push((41_000_000 + id, format!("{slug}[bot]")));
        f.bot = (41_000_000 + id, format!("{slug}[bot]"));
        f.app = Some(FakeApp {
            id,
            slug: slug.to_owned(),
            public_pem: public_pem.to_owned(),
            installations: vec![(
                1,
                vec![format!(
                    "{}/{}",
                    super::fake_forge::OWNER,
                    super::fake_forge::NAME
                )],
                false,
            )],
            issued: Vec::new(),
            ttl: 3600,
            permissions: json!({ "contents": "write", "pull_requests": "write", "issues": "write", "statuses": "read", "checks": "write", "actions": "read", "administration": "read", "metadata": "read" }),
        });
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Checks a JWT as GitHub does; the error is GitHub's message.
fn check_jwt(app: &FakeApp, headers: &HeaderMap) -> Result<(), &'static str> {
    let Some(jwt) = bearer(headers) else {
        return Err("A JSON web token could not be decoded");
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(app.public_pem.as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_issuer(&[app.id.to_string()]);
    v.set_required_spec_claims(&["exp", "iat", "iss"]);
    v.leeway = 0;
    let data = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &v)
        .map_err(|_| "A JSON web token could not be decoded")?;
    let now = chrono::Utc::now().timestamp();
    let iat = data.claims["iat"].as_i64().unwrap_or(i64::MAX);
    let exp = data.claims["exp"].as_i64().unwrap_or(0);
    if iat > now + 60 {
        return Err(
            "'Issued at' claim ('iat') must be an Integer representing a time in the past.",
        );
    }
    if exp - iat > 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future");
    }
    Ok(())
}

/// The App's own calls, answered before the token check: `Some` when the path is one.
pub fn route(f: &mut Forge, method: &str, path: &str, headers: &HeaderMap) -> Option<Response> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // The manifest flow's last step needs no authentication: the code is the credential.
    if let ("POST", ["app-manifests", code, "conversions"]) = (method, segs.as_slice()) {
        return Some(if *code == "good-code" {
            reply(
                201,
                json!({ "id": 4242, "slug": "tw-app", "name": "tw-app", "client_id": "Iv1.x", "client_secret": "s", "webhook_secret": "whsec-from-github", "pem": "-----BEGIN RSA PRIVATE KEY-----\nfake\n-----END RSA PRIVATE KEY-----\n" }),
            )
        } else {
            reply(404, json!({ "message": "Not Found" }))
        });
    }
    let app = f.app.as_mut()?;
    let jwt = || check_jwt(app, headers);
    Some(match (method, segs.as_slice()) {
        ("POST", ["app", "installations", id, "access_tokens"]) => {
            if let Err(m) = jwt() {
                return Some(reply(401, json!({ "message": m })));
            }
            let Some((iid, _, suspended)) = app
                .installations
                .iter()
                .find(|(i, ..)| id.parse() == Ok(*i))
                .cloned()
            else {
                return Some(reply(404, json!({ "message": "Not Found" })));
            };
            if suspended {
                return Some(reply(
                    403,
                    json!({ "message": "This installation has been suspended" }),
                ));
            }
            let token = format!("ghs_fake{:032}", app.issued.len() + 1);
            let exp = chrono::Utc::now().timestamp() + app.ttl;
            app.issued.push((token.clone(), iid, exp));
            let at = chrono::DateTime::from_timestamp(exp, 0)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            reply(
                201,
                json!({ "token": token, "expires_at": at, "permissions": { "issues": "write", "pull_requests": "write", "contents": "write", "statuses": "write", "checks": "write" }, "repository_selection": "selected" }),
            )
        }
        ("GET", ["repos", owner, name, "installation"]) => {
            if let Err(m) = jwt() {
                return Some(reply(401, json!({ "message": m })));
            }
            let full = format!("{owner}/{name}");
            match app.installations.iter().find(|(_, r, _)| r.contains(&full)) {
                Some((id, ..)) => reply(
                    200,
                    json!({ "id": id, "app_id": app.id, "target_type": "Organization", "account": { "login": owner }, "permissions": app.permissions }),
                ),
                None => reply(404, json!({ "message": "Not Found" })),
            }
        }
        ("GET", ["app", "installations"]) => {
            if let Err(m) = jwt() {
                return Some(reply(401, json!({ "message": m })));
            }
            let list: Vec<serde_json::Value> = app
                .installations
                .iter()
                .map(|(id, _, suspended)| json!({ "id": id, "app_id": app.id, "account": { "login": "acme" }, "suspended_at": if *suspended { json!("2026-12-01T00:00:00Z") } else { serde_json::Value::Null } }))
                .collect();
            reply(200, serde_json::Value::Array(list))
        }
        ("GET", ["installation", "repositories"]) => {
            let Some((_, installation, _)) =
                bearer(headers).and_then(|t| app.issued.iter().find(|(x, ..)| x == t))
            else {
                return Some(reply(401, json!({ "message": "Bad credentials" })));
            };
            let repos: Vec<serde_json::Value> = app
                .installations
                .iter()
                .filter(|(i, ..)| i == installation)
                .flat_map(|(_, r, _)| r)
                .map(|full| json!({ "full_name": full, "name": full.rsplit('/').next() }))
                .collect();
            reply(
                200,
                json!({ "total_count": repos.len(), "repositories": repos }),
            )
        }
        ("GET", ["app"]) => {
            if let Err(m) = jwt() {
                return Some(reply(401, json!({ "message": m })));
            }
            reply(
                200,
                json!({ "id": app.id, "slug": app.slug, "name": app.slug }),
            )
        }
        ("GET", ["users", login])
            if login.replace("%5B", "[").replace("%5D", "]") == format!("{}[bot]", app.slug) =>
        {
            let login = format!("{}[bot]", app.slug);
            reply(
                200,
                json!({ "id": 41_000_000 + app.id, "login": login, "type": "Bot" }),
            )
        }
        _ => return None,
    })
}

/// Whether an installation token may make this call: it exists, has not expired, and the
/// repository is one of its installation's (GitHub answers 404 for one it cannot see).
pub fn installation_allows(f: &Forge, path: &str, headers: &HeaderMap) -> Option<Response> {
    let app = f.app.as_ref()?;
    let token = bearer(headers)?;
    let (_, installation, exp) = app.issued.iter().find(|(t, ..)| t == token)?;
    if *exp <= chrono::Utc::now().timestamp() {
        return Some(reply(401, json!({ "message": "Bad credentials" })));
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let ["repos", owner, name, ..] = segs.as_slice() {
        let full = format!("{owner}/{name}");
        let covered = app
            .installations
            .iter()
            .any(|(i, repos, suspended)| i == installation && !suspended && repos.contains(&full));
        if !covered {
            return Some(reply(404, json!({ "message": "Not Found" })));
        }
    }
    None
}
