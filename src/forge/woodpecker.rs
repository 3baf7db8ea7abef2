//! Woodpecker CI, which teams on Gitea and Forgejo run: its statuses link to
//! `{server}/repos/{repo_id}/pipeline/{number}`, and the logs of a pipeline's failed steps are
//! read through its API (`TRUNKWARDEN_WOODPECKER_URL`, `TRUNKWARDEN_WOODPECKER_TOKEN`).
//!
//! A step's log is a JSON array of entries whose `data` is one line, base64-encoded. It is
//! read as it streams, entry by entry, keeping the tail, like every other log.

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use super::http::{LOG_TAIL, Tail, read_log};
use super::{CiResult, ForgeError, ForgeKind, JobLog, Token, number_after};

/// A Woodpecker server the bot reads failed steps' logs from.
pub struct Woodpecker {
    /// The server's URL, without `/api`.
    base: String,
    token: Token,
    client: reqwest::Client,
    /// The forge whose statuses Woodpecker reports, for errors.
    forge: ForgeKind,
}

/// `GET /api/repos/{repo_id}/pipelines/{number}`: the workflows and their steps.
#[derive(Deserialize)]
struct Pipeline {
    #[serde(default)]
    workflows: Vec<Workflow>,
}

#[derive(Deserialize)]
struct Workflow {
    #[serde(default)]
    name: String,
    #[serde(default)]
    children: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    id: u64,
    #[serde(default)]
    state: String,
}

/// One entry of a step's log.
#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    data: Option<String>,
}

impl Woodpecker {
    /// The server `TRUNKWARDEN_WOODPECKER_URL` names, read with `TRUNKWARDEN_WOODPECKER_TOKEN`
    /// (or `…_TOKEN_FILE`); `None` when no URL is set.
    pub fn from_env(
        forge: ForgeKind,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Woodpecker>, String> {
        let Some(url) = env("TRUNKWARDEN_WOODPECKER_URL").filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let token = Token::lookup("TRUNKWARDEN_WOODPECKER_TOKEN", env)?.ok_or_else(|| {
            "TRUNKWARDEN_WOODPECKER_URL is set but TRUNKWARDEN_WOODPECKER_TOKEN is not: the bot needs a token to read Woodpecker's logs".to_owned()
        })?;
        Woodpecker::new(forge, &url, token)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// A reader of the server at `url`.
    pub fn new(forge: ForgeKind, url: &str, token: Token) -> Result<Woodpecker, ForgeError> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ForgeError::Transport {
                forge,
                call: "woodpecker",
                message: format!("TRUNKWARDEN_WOODPECKER_URL: `{url}` is not an http(s) URL"),
            });
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("trunkwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ForgeError::Transport {
                forge,
                call: "woodpecker",
                message: e.to_string(),
            })?;
        Ok(Woodpecker {
            base: url.trim_end_matches('/').to_owned(),
            token,
            client,
            forge,
        })
    }

    /// Whether a CI result links to this server.
    pub fn links(&self, ci: &CiResult) -> bool {
        ci.target_url
            .as_deref()
            .and_then(|u| u.strip_prefix(&self.base))
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// The failed steps' logs of the pipeline a status links to, one after the other; `None`
    /// when the status is not this server's.
    pub async fn job_log(&self, ci: &CiResult) -> Result<Option<JobLog>, ForgeError> {
        let Some(url) = ci.target_url.as_deref() else {
            return Ok(None);
        };
        let Some(rest) = url.strip_prefix(&self.base) else {
            return Ok(None);
        };
        let (Some(repo), Some(number)) = (
            number_after(rest, "/repos/"),
            number_after(rest, "/pipeline/"),
        ) else {
            return Ok(None);
        };
        let pipeline = format!("{}/api/repos/{repo}/pipelines/{number}", self.base);
        let Some(p) = read_log(
            self.forge,
            "woodpecker pipeline",
            &self.token,
            self.get(&pipeline),
        )
        .await?
        else {
            return Ok(None);
        };
        let p: Pipeline = serde_json::from_slice(&p.tail).map_err(|e| ForgeError::Decode {
            forge: self.forge,
            call: "woodpecker pipeline",
            message: e.to_string(),
        })?;
        // `ci/woodpecker/pr/test` names the workflow `test`; any failed step when none matches.
        let workflow = ci.context.rsplit('/').next().unwrap_or("");
        let named = p.workflows.iter().any(|w| w.name == workflow);
        let steps: Vec<u64> = p
            .workflows
            .iter()
            .filter(|w| !named || w.name == workflow)
            .flat_map(|w| &w.children)
            .filter(|s| matches!(s.state.as_str(), "failure" | "error" | "killed"))
            .map(|s| s.id)
            .take(4)
            .collect();
        if steps.is_empty() {
            return Ok(None);
        }
        let mut tail = Tail::new(LOG_TAIL);
        for step in steps {
            let url = format!("{}/api/repos/{repo}/logs/{number}/{step}", self.base);
            self.entries(&url, &mut tail).await?;
        }
        Ok(Some(tail.finish(0)))
    }

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.get(url).bearer_auth(self.token.expose())
    }

    /// Streams a step's log entries into `tail`, one decoded line each.
    async fn entries(&self, url: &str, tail: &mut Tail) -> Result<(), ForgeError> {
        let err = |e: reqwest::Error| ForgeError::Transport {
            forge: self.forge,
            call: "woodpecker step log",
            message: self.token.redact(&e.without_url().to_string()),
        };
        let mut resp = self.get(url).send().await.map_err(err)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return match status {
                404 | 410 => Ok(()),
                _ => Err(ForgeError::Status {
                    forge: self.forge,
                    call: "woodpecker step log",
                    status,
                    message: format!("Woodpecker answered {status}"),
                    hint: "",
                }),
            };
        }
        let mut split = Objects::default();
        while let Some(chunk) = resp.chunk().await.map_err(err)? {
            split.feed(&chunk, |object| {
                let Ok(entry) = serde_json::from_slice::<Entry>(object) else {
                    return;
                };
                let Some(line) = entry
                    .data
                    .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                else {
                    return;
                };
                tail.push(&line);
                if !line.ends_with(b"\n") {
                    tail.push(b"\n");
                }
            });
        }
        Ok(())
    }
}

/// Splits a streamed JSON array into its top-level objects without holding the array: an
/// object larger than 1 MiB is skipped.
#[derive(Default)]
struct Objects {
    buf: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    skipping: bool,
}

impl Objects {
    const MAX: usize = 1 << 20;

    fn feed(&mut self, chunk: &[u8], mut each: impl FnMut(&[u8])) {
        for &b in chunk {
            if self.depth > 0 && !self.skipping {
                self.buf.push(b);
                if self.buf.len() > Self::MAX {
                    self.skipping = true;
                    self.buf.clear();
                }
            }
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' if self.depth > 0 => self.in_string = true,
                b'{' => {
                    if self.depth == 0 {
                        self.buf.clear();
                        self.buf.push(b);
                        self.skipping = false;
                    }
                    self.depth += 1;
                }
                b'}' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        if !self.skipping {
                            each(&self.buf);
                        }
                        self.buf.clear();
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_array_splits_into_its_objects_across_chunks() {
        let text = br#"[{"id":1,"data":"aGk=","s":"a}{\"b"},{"id":2,"n":{"x":1}}]"#;
        for cut in 1..text.len() {
            let mut split = Objects::default();
            let mut seen = Vec::new();
            let (a, b) = text.split_at(cut);
            for part in [a, b] {
                split.feed(part, |o| seen.push(String::from_utf8_lossy(o).into_owned()));
            }
            assert_eq!(
                seen,
                [
                    r#"{"id":1,"data":"aGk=","s":"a}{\"b"}"#,
                    r#"{"id":2,"n":{"x":1}}"#
                ],
                "cut at {cut}"
            );
        }
    }
}
