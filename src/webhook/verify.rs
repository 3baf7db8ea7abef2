//! Signature checks over the raw request bytes, in constant time, before anything is parsed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery was refused; the label goes into metrics and logs, never a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("no secret is configured for this forge, and unsigned deliveries are not allowed")]
    NoSecretConfigured,
    #[error("the delivery carries no signature")]
    MissingSignature,
    #[error("the signature header is malformed")]
    MalformedSignature,
    #[error("the signature does not match any configured secret")]
    BadSignature,
    #[error("the signed timestamp is outside the allowed tolerance")]
    StaleTimestamp,
}

impl Rejection {
    /// Short stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::NoSecretConfigured => "no_secret",
            Rejection::MissingSignature => "missing_signature",
            Rejection::MalformedSignature => "malformed_signature",
            Rejection::BadSignature => "bad_signature",
            Rejection::StaleTimestamp => "stale_timestamp",
        }
    }
}

/// Secrets valid at the same time (rotation). Debug output never shows them.
#[derive(Clone, Default)]
pub struct Secrets(Vec<Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

impl Secrets {
    /// Parses a comma-separated list, as the `TRUNKWARDEN_*_SECRET` variables hold it.
    pub fn from_list(list: &str) -> Secrets {
        Secrets(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        )
    }

    /// Wraps raw key bytes.
    pub fn from_keys(keys: Vec<Vec<u8>>) -> Secrets {
        Secrets(keys.into_iter().filter(|k| !k.is_empty()).collect())
    }

    /// Whether no secret is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many secrets are configured.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The first secret, for signing outgoing test deliveries.
    pub fn first(&self) -> Option<&[u8]> {
        self.0.first().map(Vec::as_slice)
    }

    /// Whether an HMAC-SHA256 of `msg` under any secret equals `mac` (constant-time per secret).
    fn hmac_matches(&self, msg: &[&[u8]], mac: &[u8]) -> bool {
        let mut ok = false;
        for key in &self.0 {
            let Ok(mut m) = HmacSha256::new_from_slice(key) else {
                continue;
            };
            for part in msg {
                m.update(part);
            }
            // Every secret is tried, so timing does not reveal which one matched.
            ok |= m.verify_slice(mac).is_ok();
        }
        ok
    }
}

/// Lowercase hex HMAC-SHA256 of `body`, as GitHub and Gitea send it.
pub fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// GitHub `X-Hub-Signature-256: sha256=<hex>` over the raw body.
pub fn github(secrets: &Secrets, body: &[u8], header: Option<&[u8]>) -> Result<(), Rejection> {
    let header = header.ok_or(Rejection::MissingSignature)?;
    let hex_part = header
        .strip_prefix(b"sha256=")
        .ok_or(Rejection::MalformedSignature)?;
    bare_hex(secrets, body, hex_part)
}

/// Gitea/Forgejo/Gogs `X-Gitea-Signature: <hex>` (no prefix) over the JSON payload.
pub fn gitea(secrets: &Secrets, json: &[u8], header: Option<&[u8]>) -> Result<(), Rejection> {
    match header {
        // Gitea sends the header empty when the hook has no secret.
        None | Some(b"") => Err(Rejection::MissingSignature),
        Some(h) => bare_hex(secrets, json, h),
    }
}

fn bare_hex(secrets: &Secrets, body: &[u8], hex_part: &[u8]) -> Result<(), Rejection> {
    if hex_part.len() != 64 {
        return Err(Rejection::MalformedSignature);
    }
    let mac = hex::decode(hex_part).map_err(|_| Rejection::MalformedSignature)?;
    if secrets.hmac_matches(&[body], &mac) {
        Ok(())
    } else {
        Err(Rejection::BadSignature)
    }
}

/// GitLab `X-Gitlab-Token`: a shared token. Both sides are hashed first, so the comparison takes
/// the same time whatever the lengths.
pub fn gitlab_token(tokens: &Secrets, header: Option<&[u8]>) -> Result<(), Rejection> {
    let header = header.ok_or(Rejection::MissingSignature)?;
    let got = Sha256::digest(header);
    let mut ok = false;
    for t in &tokens.0 {
        ok |= bool::from(Sha256::digest(t).ct_eq(&got));
    }
    if ok {
        Ok(())
    } else {
        Err(Rejection::BadSignature)
    }
}

/// Decodes a Standard Webhooks signing token (`whsec_<base64>`) to its HMAC key.
pub fn decode_signing_token(token: &str) -> Option<Vec<u8>> {
    let b64 = token.trim().strip_prefix("whsec_")?;
    B64.decode(b64).ok().filter(|k| !k.is_empty())
}

/// The signed headers of a GitLab (Standard Webhooks) delivery.
pub struct SignedHeaders<'a> {
    pub id: &'a [u8],
    pub timestamp: &'a [u8],
    pub signature: &'a [u8],
}

/// GitLab signing-token scheme: `webhook-signature: v1,<base64 HMAC(id.timestamp.body)>`, possibly
/// several space-separated entries; the timestamp must be within `tolerance_secs` of `now`.
pub fn gitlab_signed(
    keys: &Secrets,
    h: &SignedHeaders<'_>,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), Rejection> {
    let ts: i64 = std::str::from_utf8(h.timestamp)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or(Rejection::MalformedSignature)?;
    if (now_unix - ts).abs() > tolerance_secs {
        return Err(Rejection::StaleTimestamp);
    }
    let sigs = std::str::from_utf8(h.signature).map_err(|_| Rejection::MalformedSignature)?;
    let mut saw_v1 = false;
    for entry in sigs.split(' ').filter(|e| !e.is_empty()) {
        let Some(b64) = entry.strip_prefix("v1,") else {
            continue;
        };
        saw_v1 = true;
        let Ok(mac) = B64.decode(b64) else {
            continue;
        };
        if keys.hmac_matches(&[h.id, b".", h.timestamp, b".", body], &mac) {
            return Ok(());
        }
    }
    Err(if saw_v1 {
        Rejection::BadSignature
    } else {
        Rejection::MalformedSignature
    })
}

/// Signs like GitLab does, for replaying fixtures and for tests.
pub fn gitlab_sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(format!("{id}.{timestamp}.").as_bytes());
    m.update(body);
    format!("v1,{}", B64.encode(m.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_published_vector() {
        let s = Secrets::from_list("It's a Secret to Everybody");
        let sig = b"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(github(&s, b"Hello, World!", Some(sig)), Ok(()));
        assert_eq!(
            github(&s, b"Hello, World?", Some(sig)),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            github(&s, b"Hello, World!", None),
            Err(Rejection::MissingSignature)
        );
        assert_eq!(
            github(&s, b"x", Some(b"sha1=abc")),
            Err(Rejection::MalformedSignature)
        );
    }

    #[test]
    fn rotation_accepts_any_configured_secret() {
        let s = Secrets::from_list("old-secret, It's a Secret to Everybody");
        assert_eq!(s.len(), 2);
        let sig = format!("sha256={}", hmac_hex(b"old-secret", b"body"));
        assert_eq!(github(&s, b"body", Some(sig.as_bytes())), Ok(()));
        assert_eq!(format!("{s:?}"), "Secrets(2 redacted)");
    }

    #[test]
    fn gitlab_token_compares_whole_values() {
        let t = Secrets::from_list("tok-1,tok-2");
        assert_eq!(gitlab_token(&t, Some(b"tok-2")), Ok(()));
        assert_eq!(
            gitlab_token(&t, Some(b"tok-")),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            gitlab_token(&t, Some(b"tok-22")),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn standard_webhooks_reference_vector() {
        let key = decode_signing_token("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let keys = Secrets::from_keys(vec![key.clone()]);
        let h = SignedHeaders {
            id: b"msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp: b"1614265330",
            signature: b"v1,bogus v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        };
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(gitlab_signed(&keys, &h, body, 1614265330, 300), Ok(()));
        assert_eq!(
            gitlab_signed(&keys, &h, body, 1614265330 + 301, 300),
            Err(Rejection::StaleTimestamp)
        );
        assert_eq!(
            gitlab_sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
