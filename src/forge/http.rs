//! What every adapter needs from HTTP: credentials that never leak, errors that say which forge,
//! which call, which status and what to do, and retries that honour rate limits instead of
//! hammering.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;

use super::{ForgeKind, JobLog};

/// A credential. It is never printed: `Debug`, `Display` and `Serialize` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Token {
        Token(value.into())
    }

    /// The credential itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads `NAME`, or the file `NAME_FILE` names (trailing newline dropped); `None` when
    /// neither is set. Never from argv.
    pub fn from_env(name: &str) -> Result<Option<Token>, String> {
        Token::lookup(name, &|k| std::env::var(k).ok())
    }

    /// [`Token::from_env`] over any variable lookup (tests pass a map).
    pub fn lookup(
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Token>, String> {
        if let Some(v) = env(name).filter(|v| !v.is_empty()) {
            return Ok(Some(Token(v)));
        }
        let file_var = format!("{name}_FILE");
        match env(&file_var).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(path) => std::fs::read_to_string(&path)
                .map(|s| Some(Token(s.trim_end_matches(['\n', '\r']).to_owned())))
                .map_err(|e| format!("{file_var}: cannot read {path}: {e}")),
        }
    }

    /// Removes the credential from text that might echo it (an error body, a URL).
    pub fn redact(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_owned();
        }
        text.replace(&self.0, "***")
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl serde::Serialize for Token {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Why a forge call failed; every variant names the forge and the call.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("{forge} {call}: HTTP {status}: {message} ({hint})")]
    Status {
        forge: ForgeKind,
        call: &'static str,
        status: u16,
        message: String,
        hint: &'static str,
    },
    #[error(
        "{forge} {call}: rate limited for {retry_after_secs} s more than we wait; try again later or use a token with a higher limit"
    )]
    RateLimited {
        forge: ForgeKind,
        call: &'static str,
        retry_after_secs: u64,
    },
    #[error("{forge} {call}: {message} (is the base URL right and the forge reachable?)")]
    Transport {
        forge: ForgeKind,
        call: &'static str,
        message: String,
    },
    #[error("{forge} {call}: unexpected response: {message}")]
    Decode {
        forge: ForgeKind,
        call: &'static str,
        message: String,
    },
    #[error(
        "{forge} {call}: the pull request's head is no longer {expected}; a new push arrived, nothing was merged"
    )]
    HeadMoved {
        forge: ForgeKind,
        call: &'static str,
        expected: String,
    },
    #[error("{forge} {call}: {message}")]
    Unsupported {
        forge: ForgeKind,
        call: &'static str,
        message: String,
    },
}

impl ForgeError {
    /// The HTTP status, for errors that have one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ForgeError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether asking again soon cannot help: the forge refused the call itself (no
    /// permission, no such thing, a state it will not change in), as opposed to a timeout, a
    /// rate limit, a conflict or a failing forge.
    pub fn is_permanent(&self) -> bool {
        match self {
            ForgeError::Status { status, .. } => {
                (400..500).contains(status) && !matches!(status, 408 | 409 | 425 | 429)
            }
            ForgeError::Unsupported { .. } | ForgeError::HeadMoved { .. } => true,
            ForgeError::RateLimited { .. }
            | ForgeError::Transport { .. }
            | ForgeError::Decode { .. } => false,
        }
    }
}

fn hint(status: u16) -> &'static str {
    match status {
        401 => "the token is missing, expired or wrong; check the forge token setting",
        403 => {
            "the token, its account or the GitHub App's installation lacks the permission this call needs; `trunkwarden doctor --repo OWNER/NAME` names it"
        }
        404 => "the repository, number or path does not exist, or the token cannot see it",
        405 | 409 | 422 => "the forge refused the change in the current state; see its message",
        500..=599 => "the forge failed and kept failing after retries; try again later",
        _ => "see the forge's message",
    }
}

/// Retry and rate-limit policy.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// First backoff after a 5xx or a connection error; doubles each time.
    pub backoff: Duration,
    /// The longest a rate limit may make us wait before giving up with `RateLimited`.
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            backoff: Duration::from_millis(250),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// One HTTP response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// Decodes the JSON body.
    pub fn json<T: DeserializeOwned>(
        &self,
        forge: ForgeKind,
        call: &'static str,
    ) -> Result<T, ForgeError> {
        serde_json::from_slice(&self.body).map_err(|e| ForgeError::Decode {
            forge,
            call,
            message: e.to_string(),
        })
    }
}

/// How long a rate-limited reply asks us to wait, if it is one: 429, or 403 with `Retry-After`
/// or an exhausted `X-RateLimit-Remaining` (GitHub's primary and secondary limits).
fn rate_limit_wait(reply: &Reply) -> Option<Duration> {
    if reply.status != 429 && reply.status != 403 {
        return None;
    }
    let header = |name: &str| {
        reply
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    let exhausted = header("x-ratelimit-remaining").is_some_and(|v| v == "0")
        || header("ratelimit-remaining").is_some_and(|v| v == "0");
    if exhausted {
        let reset = header("x-ratelimit-reset")
            .or_else(|| header("ratelimit-reset"))
            .and_then(|v| v.parse::<i64>().ok());
        let now = chrono::Utc::now().timestamp();
        // GitHub and GitLab send an epoch; a small number is a delay in seconds.
        let wait = match reset {
            Some(r) if r > 1_000_000_000 => (r - now).max(0) as u64,
            Some(r) => r.max(0) as u64,
            None => 60,
        };
        return Some(Duration::from_secs(wait));
    }
    // GitHub's secondary limit without headers: wait a minute, as its docs advise.
    (reply.status == 429).then(|| Duration::from_secs(60))
}

/// The message in an error body (`message`, or GitLab's `error`), shortened, token removed.
fn error_message(reply: &Reply, token: &Token) -> String {
    let text = serde_json::from_slice::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| {
            let m = v.get("message").or_else(|| v.get("error"))?;
            Some(match m {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into_owned());
    let text: String = text.chars().take(300).collect();
    let text = token.redact(text.trim());
    if text.is_empty() {
        "(no message)".into()
    } else {
        text
    }
}

/// The rate-limit budget a forge last announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: Option<u64>,
    pub remaining: u64,
    /// Unix seconds when the budget refills.
    pub reset_at: i64,
}

/// GET answers kept by their `ETag`, at most this many: a conditional read answered `304 Not
/// Modified` costs nothing against GitHub's rate limit.
const CONDITIONAL_MAX: usize = 2048;

/// What one adapter remembers between calls: answers to conditional reads and the budget the
/// forge announced.
#[derive(Debug, Default)]
pub struct CallState {
    conditional: std::sync::Mutex<std::collections::HashMap<String, (String, Reply)>>,
    budget: std::sync::Mutex<Option<Budget>>,
}

impl CallState {
    /// The budget the forge announced last, if it announces one.
    pub fn budget(&self) -> Option<Budget> {
        self.budget.lock().ok().and_then(|b| *b)
    }

    fn cached(&self, key: &str) -> Option<(String, Reply)> {
        self.conditional.lock().ok()?.get(key).cloned()
    }

    fn keep(&self, key: &str, reply: &Reply) {
        let Some(etag) = reply
            .headers
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        if let Ok(mut c) = self.conditional.lock() {
            if c.len() >= CONDITIONAL_MAX {
                c.clear();
            }
            c.insert(key.to_owned(), (etag.to_owned(), reply.clone()));
        }
    }

    /// Notes the budget a reply announces (GitHub `X-RateLimit-*`, GitLab `RateLimit-*`).
    fn note_budget(&self, forge: ForgeKind, reply: &Reply) {
        let header = |name: &str| {
            reply
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let Some(remaining) =
            header("x-ratelimit-remaining").or_else(|| header("ratelimit-remaining"))
        else {
            return;
        };
        let reset = header("x-ratelimit-reset").or_else(|| header("ratelimit-reset"));
        let now = chrono::Utc::now().timestamp();
        let reset_at = match reset {
            Some(r) if r > 1_000_000_000 => r,
            Some(r) => now + r,
            None => now + 60,
        };
        let limit = header("x-ratelimit-limit")
            .or_else(|| header("ratelimit-limit"))
            .map(|l| l.max(0) as u64);
        metrics::gauge!("trunkwarden_forge_rate_limit_remaining", "forge" => forge.as_str())
            .set(remaining as f64);
        if let Ok(mut b) = self.budget.lock() {
            *b = Some(Budget {
                limit,
                remaining: remaining.max(0) as u64,
                reset_at,
            });
        }
    }

    /// How long to hold a call so as not to spend a budget the forge said is gone.
    fn hold(&self) -> Option<Duration> {
        let b = self.budget()?;
        let now = chrono::Utc::now().timestamp();
        (b.remaining == 0 && b.reset_at > now)
            .then(|| Duration::from_secs((b.reset_at - now) as u64))
    }
}

/// Runs one call with retries: 5xx and connection errors back off exponentially; rate limits
/// wait as long as the forge asks (up to `max_wait`), and a call is held while the budget the
/// forge announced is spent; anything else is final. Every attempt is counted by forge, call
/// and status.
pub async fn with_retry<F, Fut>(
    forge: ForgeKind,
    call: &'static str,
    retry: &Retry,
    token: &Token,
    attempt: F,
) -> Result<Reply, ForgeError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Reply, String>>,
{
    with_state(forge, call, retry, token, None, None, attempt).await
}

/// [`with_retry`] with what the adapter remembers: `conditional` names a GET whose earlier
/// answer is reused when the forge says it has not changed (`If-None-Match` → 304).
pub async fn with_state<F, Fut>(
    forge: ForgeKind,
    call: &'static str,
    retry: &Retry,
    token: &Token,
    state: Option<&CallState>,
    conditional: Option<&str>,
    mut attempt: F,
) -> Result<Reply, ForgeError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Reply, String>>,
{
    let cached = match (state, conditional) {
        (Some(s), Some(k)) => s.cached(k),
        _ => None,
    };
    let mut backoff = retry.backoff;
    for n in 1..=retry.attempts.max(1) {
        let last = n >= retry.attempts.max(1);
        if let Some(wait) = state.and_then(CallState::hold) {
            if wait > retry.max_wait {
                return Err(ForgeError::RateLimited {
                    forge,
                    call,
                    retry_after_secs: wait.as_secs(),
                });
            }
            tracing::warn!(%forge, call, wait_ms = wait.as_millis() as u64, "the forge's rate-limit budget is spent; waiting for it to refill");
            tokio::time::sleep(wait).await;
        }
        let result = attempt(cached.as_ref().map(|(etag, _)| etag.clone())).await;
        let status = match &result {
            Ok(r) => r.status.to_string(),
            Err(_) => "error".to_owned(),
        };
        metrics::counter!("trunkwarden_forge_requests_total", "forge" => forge.as_str(), "endpoint" => call, "status" => status).increment(1);
        if let (Some(s), Ok(r)) = (state, &result) {
            s.note_budget(forge, r);
        }
        let result = match result {
            Ok(r) if r.status == 304 => match &cached {
                Some((_, kept)) => Ok(kept.clone()),
                None => Ok(r),
            },
            Ok(r) => {
                if let (Some(s), Some(k), true) =
                    (state, conditional, (200..300).contains(&r.status))
                {
                    s.keep(k, &r);
                }
                Ok(r)
            }
            Err(e) => Err(e),
        };
        match result {
            Err(message) if last => {
                return Err(ForgeError::Transport {
                    forge,
                    call,
                    message: token.redact(&message),
                });
            }
            Err(message) => {
                tracing::warn!(%forge, call, attempt = n, error = %token.redact(&message), "forge call failed; retrying");
            }
            Ok(reply) if (200..400).contains(&reply.status) => return Ok(reply),
            Ok(reply) => {
                if let Some(wait) = rate_limit_wait(&reply) {
                    if wait > retry.max_wait || last {
                        return Err(ForgeError::RateLimited {
                            forge,
                            call,
                            retry_after_secs: wait.as_secs(),
                        });
                    }
                    tracing::warn!(%forge, call, wait_ms = wait.as_millis() as u64, "rate limited; waiting");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                if reply.status < 500 || last {
                    return Err(ForgeError::Status {
                        forge,
                        call,
                        status: reply.status,
                        message: error_message(&reply, token),
                        hint: hint(reply.status),
                    });
                }
                tracing::warn!(%forge, call, status = reply.status, attempt = n, "forge failed; retrying");
            }
        }
        let jitter = rand::random::<f64>() * 0.2 + 0.9;
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
        backoff = backoff.saturating_mul(2);
    }
    unreachable!("the last attempt always returns")
}

/// How a forge wants its token.
#[derive(Debug, Clone, Copy)]
pub enum Auth {
    /// `Authorization: token …` (Gitea, Forgejo).
    TokenScheme,
    /// `PRIVATE-TOKEN: …` (GitLab personal, project and group tokens).
    PrivateToken,
}

/// A REST client for the forges spoken with plain reqwest.
pub struct Rest {
    kind: ForgeKind,
    base: String,
    client: reqwest::Client,
    token: Token,
    auth: Auth,
    retry: Retry,
    /// What this client remembers between calls.
    pub state: CallState,
}

impl Rest {
    /// A client for `base` (the API root, e.g. `https://gitea.example/api/v1`).
    pub fn new(
        kind: ForgeKind,
        base: &str,
        token: Token,
        auth: Auth,
        retry: Retry,
    ) -> Result<Rest, ForgeError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("trunkwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ForgeError::Transport {
                forge: kind,
                call: "client",
                message: e.to_string(),
            })?;
        Ok(Rest {
            kind,
            base: base.trim_end_matches('/').to_owned(),
            client,
            token,
            auth,
            retry,
            state: CallState::default(),
        })
    }

    /// The token, to redact error text with.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// Sends one call (`path` is relative to the API root and already escaped).
    pub async fn send(
        &self,
        call: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, ForgeError> {
        let url = format!("{}{path}", self.base);
        let (name, value) = match self.auth {
            Auth::TokenScheme => (
                reqwest::header::AUTHORIZATION,
                format!("token {}", self.token.expose()),
            ),
            Auth::PrivateToken => (
                HeaderName::from_static("private-token"),
                self.token.expose().to_owned(),
            ),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| ForgeError::Transport {
            forge: self.kind,
            call,
            message: "the token contains characters a header cannot carry".into(),
        })?;
        value.set_sensitive(true);
        let conditional = (method == reqwest::Method::GET).then_some(path);
        with_state(
            self.kind,
            call,
            &self.retry,
            &self.token,
            Some(&self.state),
            conditional,
            |etag| {
                let mut req = self
                    .client
                    .request(method.clone(), &url)
                    .header(name.clone(), value.clone())
                    .header(reqwest::header::ACCEPT, "application/json");
                if let Some(e) = &etag {
                    req = req.header(reqwest::header::IF_NONE_MATCH, e.as_str());
                }
                if let Some(b) = body {
                    req = req
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(b.to_string());
                }
                send(req)
            },
        )
        .await
    }

    /// Sends one call and decodes the JSON reply.
    pub async fn json<T: DeserializeOwned>(
        &self,
        call: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ForgeError> {
        self.send(call, method, path, body)
            .await?
            .json(self.kind, call)
    }
}

impl Rest {
    /// Reads the tail of a log at `path` (relative to the API root) — see [`read_log`].
    pub async fn log(&self, call: &'static str, path: &str) -> Result<Option<JobLog>, ForgeError> {
        let url = format!("{}{path}", self.base);
        let req = self.client.get(&url);
        let req = match self.auth {
            Auth::TokenScheme => req.header(
                reqwest::header::AUTHORIZATION,
                format!("token {}", self.token.expose()),
            ),
            Auth::PrivateToken => req.header("private-token", self.token.expose()),
        };
        read_log(self.kind, call, &self.token, req).await
    }
}

/// The most of a log the bot reads: its last 8 MiB. Failures are reported at the end (test
/// summaries, the step that exited non-zero); a 500 MB log is never held whole.
pub const LOG_TAIL: usize = 8 << 20;

/// A log's last bytes, kept as it streams in.
pub(crate) struct Tail {
    cap: usize,
    buf: Vec<u8>,
    total: u64,
}

impl Tail {
    /// Keeps at most `cap` bytes (twice that while reading).
    pub(crate) fn new(cap: usize) -> Tail {
        Tail {
            cap,
            buf: Vec::new(),
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        self.buf.extend_from_slice(chunk);
        if self.buf.len() > 2 * self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
        }
    }

    /// At most `cap` bytes, from the first whole line when the head was dropped.
    pub(crate) fn finish(mut self, start: u64) -> JobLog {
        if self.buf.len() > self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
        }
        let kept = self.buf.len() as u64;
        if start + self.total > kept
            && let Some(nl) = self.buf.iter().position(|&b| b == b'\n')
        {
            self.buf.drain(..=nl);
        }
        JobLog {
            tail: self.buf,
            total: start + self.total,
        }
    }
}

/// Downloads a log as it streams, asking for its tail only (`Range: bytes=-LOG_TAIL`) and,
/// from a server that sends it all anyway, keeping the last [`LOG_TAIL`] bytes. Redirects
/// to the log's storage are followed (without the token: reqwest drops it on a redirect to
/// another host). `None` when there is no such log (404, 410).
pub async fn read_log(
    forge: ForgeKind,
    call: &'static str,
    token: &Token,
    req: reqwest::RequestBuilder,
) -> Result<Option<JobLog>, ForgeError> {
    let transport = |e: reqwest::Error| ForgeError::Transport {
        forge,
        call,
        message: token.redact(&e.without_url().to_string()),
    };
    let mut resp = req
        .header(reqwest::header::RANGE, format!("bytes=-{LOG_TAIL}"))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .map_err(transport)?;
    let status = resp.status().as_u16();
    metrics::counter!("trunkwarden_forge_requests_total", "forge" => forge.as_str(), "endpoint" => call, "status" => status.to_string()).increment(1);
    if status == 404 || status == 410 {
        return Ok(None);
    }
    if !(200..300).contains(&status) {
        let body = resp.bytes().await.unwrap_or_default();
        let reply = Reply {
            status,
            headers: HeaderMap::new(),
            body: body.iter().take(4096).copied().collect(),
        };
        return Err(ForgeError::Status {
            forge,
            call,
            status,
            message: error_message(&reply, token),
            hint: hint(status),
        });
    }
    // `Content-Range: bytes 100-199/200`: the tail starts at 100 of 200.
    let start = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, _)| a.trim().parse::<u64>().ok())
        .filter(|_| status == 206)
        .unwrap_or(0);
    let mut tail = Tail::new(LOG_TAIL);
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        tail.push(&chunk);
    }
    Ok(Some(tail.finish(start)))
}

/// Sends a request and reads its answer whole, as [`with_retry`]'s attempts take it.
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<Reply, String> {
    let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| e.without_url().to_string())?;
    Ok(Reply {
        status,
        headers,
        body: body.to_vec(),
    })
}

/// Escapes one path segment (an owner, a name, a branch).
pub fn segment(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, headers: &[(&'static str, &str)], body: &str) -> Reply {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        Reply {
            status,
            headers: h,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn rate_limits_are_recognised() {
        assert_eq!(
            rate_limit_wait(&reply(429, &[("retry-after", "3")], "")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            rate_limit_wait(&reply(403, &[("retry-after", "7")], "")),
            Some(Duration::from_secs(7))
        );
        let reset = (chrono::Utc::now().timestamp() + 30).to_string();
        let w = rate_limit_wait(&reply(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
            "",
        ))
        .unwrap();
        assert!((29..=30).contains(&w.as_secs()), "{w:?}");
        assert_eq!(rate_limit_wait(&reply(403, &[], "{}")), None);
        assert_eq!(
            rate_limit_wait(&reply(500, &[("retry-after", "1")], "")),
            None
        );
    }

    #[test]
    fn tokens_never_show() {
        let t = Token::new("glpat-SECRETSECRET");
        assert_eq!(format!("{t:?}"), "Token(***)");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"***\"");
        let r = reply(401, &[], r#"{"message":"bad token glpat-SECRETSECRET"}"#);
        assert_eq!(error_message(&r, &t), "bad token ***");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
