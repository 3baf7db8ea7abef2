//! `trunkwarden github-app`: create the bot's GitHub App from a manifest, in two clicks.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::Outcome;
use trunkwarden::forge::github_app;

/// Arguments of `github-app`.
#[derive(Debug, Args)]
pub struct GithubAppArgs {
    #[command(subcommand)]
    command: AppCommand,
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Print the App manifest for a bot served at URL (least permissions, the events it
    /// reads); with --out, a page that sends it to GitHub.
    Manifest {
        /// Where the bot runs, e.g. https://bot.example (webhooks go to URL/webhook).
        #[arg(long)]
        url: String,
        /// The App's name on GitHub.
        #[arg(long, default_value = "trunkwarden")]
        name: String,
        /// Create the App in this organisation instead of your account.
        #[arg(long)]
        org: Option<String>,
        /// Write an HTML page whose one button sends the manifest to GitHub.
        #[arg(long)]
        out: Option<PathBuf>,
        /// GitHub's web address (GitHub Enterprise Server: https://ghe.example).
        #[arg(long, default_value = "https://github.com")]
        web: String,
    },
    /// Trade the code GitHub gives after the App is created for its id, key and webhook
    /// secret; the key and the secret are written to files (mode 600), never printed.
    Convert {
        code: String,
        /// Where the App's private key goes.
        #[arg(long)]
        key_out: PathBuf,
        /// Where the webhook secret goes.
        #[arg(long)]
        secret_out: PathBuf,
        /// GitHub's API root.
        #[arg(long, default_value = "https://api.github.com")]
        api: String,
    },
}

/// Runs a `github-app` subcommand.
pub fn run(args: GithubAppArgs) -> anyhow::Result<Outcome> {
    match args.command {
        AppCommand::Manifest {
            url,
            name,
            org,
            out,
            web,
        } => {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                anyhow::bail!("--url: `{url}` is not an http(s) URL");
            }
            let m = github_app::manifest(&name, &url);
            let json = serde_json::to_string_pretty(&m)?;
            let web = web.trim_end_matches('/');
            let action = match &org {
                Some(o) => format!("{web}/organizations/{o}/settings/apps/new"),
                None => format!("{web}/settings/apps/new"),
            };
            if let Some(path) = &out {
                let page = format!(
                    "<!doctype html>\n<meta charset=\"utf-8\">\n<title>Create the {name} GitHub App</title>\n<form action=\"{action}\" method=\"post\">\n<input type=\"hidden\" name=\"manifest\" value=\"{}\">\n<button>Create the GitHub App {name}</button>\n</form>\n",
                    html_attr(&serde_json::to_string(&m)?)
                );
                super::write_atomically(path, &page)?;
            }
            super::emit(&format!("{json}\n"))?;
            let mut why = String::from("Permissions, each for:\n");
            for (p, level, what) in github_app::PERMISSIONS {
                why.push_str(&format!("  {p}: {level} — {what}\n"));
            }
            let open = match &out {
                Some(p) => format!("open {} in a browser and press its button", p.display()),
                None => format!(
                    "run again with --out app.html, open it in a browser and press its button (it posts the manifest to {action})"
                ),
            };
            eprintln!(
                "{why}\nTwo clicks: {open}; then \"Create GitHub App\" on GitHub. GitHub returns to {}/?code=…: run\n  trunkwarden github-app convert CODE --key-out /etc/trunkwarden/app.pem --secret-out /etc/trunkwarden/webhook-secret\nthen install the App on the repositories it should watch.",
                url.trim_end_matches('/')
            );
            Ok(Outcome::Clean)
        }
        AppCommand::Convert {
            code,
            key_out,
            secret_out,
            api,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let c = rt
                .block_on(github_app::convert(&api, &code))
                .context("GitHub did not trade the code (it is single-use and lasts an hour)")?;
            write_secret(&key_out, &c.pem)?;
            write_secret(&secret_out, c.webhook_secret.as_deref().unwrap_or(""))?;
            super::emit(&format!(
                "created the GitHub App {} (id {})\nset in the bot's environment:\n  TRUNKWARDEN_GITHUB_APP_ID={}\n  TRUNKWARDEN_GITHUB_APP_KEY_FILE={}\n  TRUNKWARDEN_GITHUB_WEBHOOK_SECRET_FILE={}\n",
                c.slug,
                c.id,
                c.id,
                key_out.display(),
                secret_out.display()
            ))?;
            Ok(Outcome::Clean)
        }
    }
}

/// Text as an HTML attribute value.
fn html_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A file only its owner reads.
fn write_secret(path: &std::path::Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(content.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
