//! Webhook deliveries: which forge sent them, whether they are genuine, and what they mean.
//!
//! ForgeKind specifics stop here: past `normalize`, everything speaks [`Event`].

pub mod event;
pub mod fixture;
mod gitea;
mod github;
mod gitlab;
pub mod payload;
pub mod verify;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use axum::http::HeaderMap;

use sha2::{Digest, Sha256};

pub use event::{Event, PayloadError};
use verify::{Rejection, Secrets, SignedHeaders};

pub use crate::event::ForgeKind;

/// Identifies the sender from its headers. Gitea and Forgejo also send `X-GitHub-Event`, so
/// they are recognised first.
pub fn detect(headers: &HeaderMap) -> Option<ForgeKind> {
    if headers.contains_key("x-gitlab-event") {
        Some(ForgeKind::Gitlab)
    } else if headers.contains_key("x-forgejo-event") {
        Some(ForgeKind::Forgejo)
    } else if headers.contains_key("x-gitea-event") || headers.contains_key("x-gogs-event") {
        Some(ForgeKind::Gitea)
    } else if headers.contains_key("x-github-event") {
        Some(ForgeKind::Github)
    } else {
        None
    }
}

/// Headers kept with each delivery in the ledger: enough to re-normalize and to audit, nothing
/// secret (no signature, token or authorization header).
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-github-hook-installation-target-type",
    "x-github-hook-installation-target-id",
    "x-gitea-event",
    "x-gitea-event-type",
    "x-gitea-delivery",
    "x-forgejo-event",
    "x-forgejo-event-type",
    "x-forgejo-delivery",
    "x-gogs-event",
    "x-gitlab-event",
    "x-gitlab-instance",
    "x-gitlab-webhook-uuid",
    "x-gitlab-event-uuid",
    "idempotency-key",
    "webhook-id",
    "webhook-timestamp",
];

/// What identifies and describes a delivery before its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryMeta {
    pub forge: ForgeKind,
    /// The forge's delivery id; a body hash when the forge sent none.
    pub delivery_id: String,
    /// Always empty: the hook id is unsigned, so it is no part of what names a delivery (the
    /// forge's delivery id is unique across its hooks); it stays in `headers` for operators.
    pub hook_id: String,
    /// The forge's event name (`pull_request`, `Merge Request Hook`, …).
    pub event: String,
    pub headers: BTreeMap<String, String>,
}

/// A delivery whose headers cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("header `{0}` is not printable ASCII or is longer than 256 bytes")]
    BadHeader(&'static str),
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    h.get(name).map(|v| v.as_bytes())
}

fn header_str<'a>(h: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, MetaError> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => {
            let s = v.to_str().map_err(|_| MetaError::BadHeader(name))?;
            if s.len() > 256 {
                return Err(MetaError::BadHeader(name));
            }
            Ok(Some(s).filter(|s| !s.is_empty()))
        }
    }
}

fn first_of<'a>(h: &'a HeaderMap, names: &[&'static str]) -> Result<Option<&'a str>, MetaError> {
    for n in names {
        if let Some(v) = header_str(h, n)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Extracts the dedupe key, event name and kept headers of a verified delivery.
pub fn meta(forge: ForgeKind, h: &HeaderMap, body: &[u8]) -> Result<DeliveryMeta, MetaError> {
    let (ids, events): (&[&'static str], &[&'static str]) = match forge {
        ForgeKind::Github => (&["x-github-delivery"], &["x-github-event"]),
        ForgeKind::Gitea | ForgeKind::Forgejo => (
            &[
                "x-forgejo-delivery",
                "x-gitea-delivery",
                "x-gogs-delivery",
                "x-github-delivery",
            ],
            &[
                "x-forgejo-event",
                "x-gitea-event",
                "x-gogs-event",
                "x-github-event",
            ],
        ),
        // `Idempotency-Key` is stable across GitLab's retries and resends; the per-request UUID
        // is not.
        ForgeKind::Gitlab => (&["idempotency-key", "webhook-id"], &["x-gitlab-event"]),
    };
    let delivery_id = match first_of(h, ids)? {
        Some(id) => id.to_owned(),
        None => format!("sha256:{}", hex::encode(Sha256::digest(body))),
    };
    let mut headers = BTreeMap::new();
    for name in KEPT_HEADERS {
        if let Some(v) = header_str(h, name)? {
            headers.insert((*name).to_owned(), v.to_owned());
        }
    }
    Ok(DeliveryMeta {
        forge,
        delivery_id,
        hook_id: String::new(),
        event: first_of(h, events)?.unwrap_or("unknown").to_owned(),
        headers,
    })
}

/// The JSON document of a delivery: the body itself, or the `payload` field of a form-encoded one.
pub fn payload_json<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
) -> Result<Cow<'a, [u8]>, PayloadError> {
    let is_form = content_type.is_some_and(|ct| {
        ct.trim_start()
            .starts_with("application/x-www-form-urlencoded")
    });
    if !is_form {
        return Ok(Cow::Borrowed(body));
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| Cow::Owned(v.into_owned().into_bytes()))
        .ok_or(PayloadError::NoFormPayload)
}

/// Turns a stored delivery into an [`Event`]; `Ok(None)` for events the bot does not act on.
pub fn normalize(
    forge: ForgeKind,
    event: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Option<Event>, PayloadError> {
    let json = payload_json(content_type, body)?;
    let fields: &'static payload::Fields = match forge {
        ForgeKind::Github | ForgeKind::Gitea | ForgeKind::Forgejo => &payload::GITHUB,
        ForgeKind::Gitlab => &payload::GITLAB,
    };
    let v = fields
        .parse(&json)
        .map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let _reading = payload::Reading::start(fields);
    match forge {
        ForgeKind::Github => github::normalize(event, &v),
        ForgeKind::Gitea | ForgeKind::Forgejo => gitea::normalize(event, &v),
        ForgeKind::Gitlab => gitlab::normalize(event, &v),
    }
}

/// The secrets each forge's deliveries are checked against, and which forges may send unsigned.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    pub github: Secrets,
    /// Gitea and Forgejo share one secret list.
    pub gitea: Secrets,
    pub gitlab_tokens: Secrets,
    /// Decoded `whsec_` signing keys.
    pub gitlab_signing: Secrets,
    pub allow_unsigned: HashSet<ForgeKind>,
    /// How far a signed GitLab timestamp may be from now.
    pub gitlab_tolerance_secs: i64,
}

/// Environment variables holding webhook secrets; each may list several, comma-separated, and
/// each has a `_FILE` twin naming a file that holds the list.
pub const SECRET_VARS: [(&str, &str); 4] = [
    ("github", "TRUNKWARDEN_GITHUB_WEBHOOK_SECRET"),
    ("gitea", "TRUNKWARDEN_GITEA_WEBHOOK_SECRET"),
    ("gitlab", "TRUNKWARDEN_GITLAB_WEBHOOK_TOKEN"),
    ("gitlab-signing", "TRUNKWARDEN_GITLAB_WEBHOOK_SIGNING_TOKEN"),
];

/// A secret variable or file that could not be used; names the variable, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{var}: cannot read {path}: {source}")]
    File {
        var: String,
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: a GitLab signing token must look like whsec_<base64>")]
    BadSigningToken(&'static str),
}

impl Verifier {
    /// Reads every secret from the environment (or `_FILE` companions) through `env`.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Verifier, SecretError> {
        let read = |var: &'static str| -> Result<String, SecretError> {
            if let Some(v) = env(var) {
                return Ok(v);
            }
            let file_var = format!("{var}_FILE");
            match env(&file_var) {
                None => Ok(String::new()),
                Some(path) => std::fs::read_to_string(&path)
                    .map(|s| s.trim().to_owned())
                    .map_err(|source| SecretError::File {
                        var: file_var,
                        path,
                        source,
                    }),
            }
        };
        let [gh, gt, gl, gls] = SECRET_VARS.map(|(_, v)| v);
        let mut keys = Vec::new();
        for token in read(gls)?
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            keys.push(
                verify::decode_signing_token(token).ok_or(SecretError::BadSigningToken(gls))?,
            );
        }
        Ok(Verifier {
            github: Secrets::from_list(&read(gh)?),
            gitea: Secrets::from_list(&read(gt)?),
            gitlab_tokens: Secrets::from_list(&read(gl)?),
            gitlab_signing: Secrets::from_keys(keys),
            allow_unsigned: HashSet::new(),
            gitlab_tolerance_secs: 300,
        })
    }

    /// Whether any secret is configured for a forge.
    pub fn has_secret(&self, forge: ForgeKind) -> bool {
        match forge {
            ForgeKind::Github => !self.github.is_empty(),
            ForgeKind::Gitea | ForgeKind::Forgejo => !self.gitea.is_empty(),
            ForgeKind::Gitlab => !self.gitlab_tokens.is_empty() || !self.gitlab_signing.is_empty(),
        }
    }

    /// Checks a delivery over its raw bytes. Unsigned deliveries pass only where explicitly
    /// allowed; a wrong signature never passes.
    pub fn verify(
        &self,
        forge: ForgeKind,
        h: &HeaderMap,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), Rejection> {
        let unsigned_ok = self.allow_unsigned.contains(&forge);
        if !self.has_secret(forge) {
            return if unsigned_ok {
                Ok(())
            } else {
                Err(Rejection::NoSecretConfigured)
            };
        }
        let result = match forge {
            ForgeKind::Github => {
                verify::github(&self.github, body, header(h, "x-hub-signature-256"))
            }
            ForgeKind::Gitea | ForgeKind::Forgejo => {
                // Gitea signs the JSON, also when it sends it form-encoded.
                let ct = h.get("content-type").and_then(|v| v.to_str().ok());
                let json = payload_json(ct, body).map_err(|_| Rejection::MalformedSignature)?;
                let sig = [
                    "x-forgejo-signature",
                    "x-gitea-signature",
                    "x-gogs-signature",
                ]
                .iter()
                .find_map(|n| header(h, n).filter(|v| !v.is_empty()))
                .or_else(|| {
                    header(h, "x-hub-signature-256").and_then(|v| v.strip_prefix(b"sha256="))
                });
                verify::gitea(&self.gitea, &json, sig)
            }
            ForgeKind::Gitlab => self.verify_gitlab(h, body, now_unix),
        };
        match result {
            Err(Rejection::MissingSignature) if unsigned_ok => Ok(()),
            other => other,
        }
    }

    fn verify_gitlab(&self, h: &HeaderMap, body: &[u8], now_unix: i64) -> Result<(), Rejection> {
        if !self.gitlab_signing.is_empty()
            && let (Some(id), Some(ts), Some(sig)) = (
                header(h, "webhook-id"),
                header(h, "webhook-timestamp"),
                header(h, "webhook-signature"),
            )
        {
            let signed = SignedHeaders {
                id,
                timestamp: ts,
                signature: sig,
            };
            return verify::gitlab_signed(
                &self.gitlab_signing,
                &signed,
                body,
                now_unix,
                self.gitlab_tolerance_secs,
            );
        }
        if !self.gitlab_tokens.is_empty() {
            return verify::gitlab_token(&self.gitlab_tokens, header(h, "x-gitlab-token"));
        }
        Err(Rejection::MissingSignature)
    }
}
