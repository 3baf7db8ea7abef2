//! `trunkwarden replay`: sign recorded deliveries and send them to a running server, the way to
//! try the bot by hand.

use std::path::PathBuf;

use anyhow::{Context, bail};
use axum::http::HeaderValue;
use clap::Args;

use crate::Outcome;
use trunkwarden::webhook::fixture;

/// Arguments of `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Fixture body files (`<name>.json` beside `<name>.headers`), e.g. webhook-fixtures/github/push.none.4.json.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Receiver URL, e.g. http://127.0.0.1:8080/webhook.
    #[arg(long)]
    url: String,
    /// Environment variable holding the secret to sign with (GitLab: a token, or a whsec_ signing
    /// token). Without it, deliveries go unsigned.
    #[arg(long, value_name = "NAME")]
    secret_env: Option<String>,
    /// Keep the recorded delivery ids instead of fresh ones (to see deduplication at work).
    #[arg(long)]
    keep_delivery_id: bool,
}

const DELIVERY_HEADERS: [&str; 6] = [
    "x-github-delivery",
    "x-gitea-delivery",
    "x-gogs-delivery",
    "x-forgejo-delivery",
    "idempotency-key",
    "x-gitlab-webhook-uuid",
];

/// Signs and sends every file; exit 1 if the server refused any.
pub fn run(args: ReplayArgs) -> anyhow::Result<Outcome> {
    let secret = match &args.secret_env {
        Some(var) => Some(
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?,
        ),
        None => None,
    };
    // reqwest is built without a default crypto provider; ring is the one compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut refused = 0;
    for path in &args.files {
        let mut f = fixture::read(path)?;
        let Some(forge) = trunkwarden::webhook::detect(&f.headers) else {
            bail!("{}: its headers name no forge event header", path.display());
        };
        let id = if args.keep_delivery_id {
            DELIVERY_HEADERS
                .iter()
                .find_map(|h| {
                    f.headers
                        .get(*h)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        let value = HeaderValue::from_str(&id)?;
        for h in DELIVERY_HEADERS {
            if f.headers.contains_key(h) {
                f.headers.insert(h, value.clone());
            }
        }
        if let Some(secret) = &secret {
            f.sign(forge, secret, &id)?;
        }
        let (status, text) = rt.block_on(async {
            let mut req = client.post(&args.url).body(f.body.clone());
            for (k, v) in &f.headers {
                req = req.header(k.as_str(), v.as_bytes());
            }
            let resp = req
                .send()
                .await
                .with_context(|| format!("cannot reach {}", args.url))?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            anyhow::Ok((status, text))
        })?;
        println!(
            "{} → {} {}",
            path.display(),
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        if !status.is_success() {
            refused += 1;
            eprintln!("  {}", text.trim());
        }
    }
    Ok(if refused == 0 {
        Outcome::Clean
    } else {
        Outcome::Violation
    })
}
