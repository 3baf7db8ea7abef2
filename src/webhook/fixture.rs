//! Recorded deliveries on disk: `<name>.json` (the body, byte for byte) beside `<name>.headers`
//! (`Name: value` lines), as kept in `webhook-fixtures/`.

use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::{ForgeKind, PayloadError, payload_json, verify};

/// A fixture that cannot be read; says which file and which line.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: expected `Name: value`")]
    BadLine { path: PathBuf, line: usize },
    /// Names neither the secret nor the header value.
    #[error("the secret or delivery id cannot be sent as an HTTP header value")]
    BadHeaderValue,
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// One recorded delivery.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub body_path: PathBuf,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Fixture {
    /// Signs the delivery the way `forge` does, for delivery id `id`: GitHub `X-Hub-Signature-256`
    /// over the body; Gitea/Forgejo bare hex over the JSON (also inside a form); GitLab a
    /// Standard Webhooks signature for a `whsec_` signing token, else the plain `X-Gitlab-Token`.
    pub fn sign(&mut self, forge: ForgeKind, secret: &str, id: &str) -> Result<(), FixtureError> {
        let value = |s: &str| HeaderValue::from_str(s).map_err(|_| FixtureError::BadHeaderValue);
        let h = &mut self.headers;
        match forge {
            ForgeKind::Github => {
                let sig = format!("sha256={}", verify::hmac_hex(secret.as_bytes(), &self.body));
                h.insert("x-hub-signature-256", value(&sig)?);
            }
            ForgeKind::Gitea | ForgeKind::Forgejo => {
                let ct = h
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let hex =
                    verify::hmac_hex(secret.as_bytes(), &payload_json(ct.as_deref(), &self.body)?);
                for name in ["x-gitea-signature", "x-gogs-signature"] {
                    h.insert(name, value(&hex)?);
                }
                if forge == ForgeKind::Forgejo {
                    h.insert("x-forgejo-signature", value(&hex)?);
                }
                h.insert("x-hub-signature-256", value(&format!("sha256={hex}"))?);
            }
            ForgeKind::Gitlab => match verify::decode_signing_token(secret) {
                Some(key) => {
                    let ts = chrono::Utc::now().timestamp();
                    h.insert("webhook-id", value(id)?);
                    h.insert("webhook-timestamp", value(&ts.to_string())?);
                    h.insert(
                        "webhook-signature",
                        value(&verify::gitlab_sign(&key, id, ts, &self.body))?,
                    );
                }
                None => {
                    h.insert("x-gitlab-token", value(secret)?);
                }
            },
        }
        Ok(())
    }
}

/// The headers file that goes with a body file.
pub fn headers_path(body: &Path) -> PathBuf {
    body.with_extension("headers")
}

/// Reads a body file and its headers file.
pub fn read(body_path: &Path) -> Result<Fixture, FixtureError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| FixtureError::Io { path, source }
    };
    let body = std::fs::read(body_path).map_err(io(body_path))?;
    let hpath = headers_path(body_path);
    let text = std::fs::read_to_string(&hpath).map_err(io(&hpath))?;
    Ok(Fixture {
        body_path: body_path.to_owned(),
        headers: parse_headers(&text)
            .map_err(|line| FixtureError::BadLine { path: hpath, line })?,
        body,
    })
}

/// Parses `Name: value` lines; blank lines and `#` comments are skipped. Errors give the line.
pub fn parse_headers(text: &str) -> Result<HeaderMap, usize> {
    let mut map = HeaderMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(i + 1)?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| i + 1)?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| i + 1)?;
        map.append(name, value);
    }
    Ok(map)
}

/// Every fixture body file under a directory, sorted, recursively.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, FixtureError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| FixtureError::Io {
            path: d.clone(),
            source,
        })?;
        for e in entries {
            let p = e
                .map_err(|source| FixtureError::Io {
                    path: d.clone(),
                    source,
                })?
                .path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".event.json")
                && headers_path(&p).exists()
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}
