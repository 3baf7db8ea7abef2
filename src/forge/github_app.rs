//! GitHub App authentication. The App's private key signs a short JWT (RS256: issued a minute
//! in the past for clock skew, valid nine minutes), which buys an installation access token
//! for the installation that covers a repository. Tokens last an hour; each is cached and
//! bought again five minutes before it expires. A repository's installation is asked once
//! (`GET /repos/{owner}/{repo}/installation`) or learned from a delivery.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::http::{Reply, Retry, with_retry};
use super::{ForgeError, ForgeKind, RepoRef, Token, User};

const KIND: ForgeKind = ForgeKind::Github;

/// How long before its expiry a token is bought again.
const REFRESH_SECS: i64 = 300;

/// The current Unix time, in seconds.
pub type Now = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A GitHub App: its id and key, and the installation tokens it holds.
pub struct App {
    id: u64,
    key: jsonwebtoken::EncodingKey,
    base: String,
    client: reqwest::Client,
    retry: Retry,
    now: Now,
    /// Installation → (token, expiry in Unix seconds).
    tokens: tokio::sync::Mutex<HashMap<u64, (Token, i64)>>,
    /// `owner/name` (or `owner` for an organisation) → installation.
    installs: std::sync::Mutex<HashMap<String, u64>>,
    identity: tokio::sync::OnceCell<User>,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
    #[serde(default)]
    permissions: HashMap<String, String>,
}

#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: String,
}

#[derive(Deserialize)]
struct AppInfo {
    slug: String,
}

#[derive(Deserialize)]
struct BotUser {
    id: u64,
    login: String,
}

#[derive(serde::Serialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: String,
}

impl App {
    /// An App with id `id` and its private key (PEM, PKCS#1 or PKCS#8), at the API root `base`.
    pub fn new(id: u64, pem: &[u8], base: &str, retry: Retry, now: Now) -> Result<App, String> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem).map_err(|e| {
            format!("the GitHub App's private key is not an RSA key in PEM form: {e}")
        })?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("trunkwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(App {
            id,
            key,
            base: base.trim_end_matches('/').to_owned(),
            client,
            retry,
            now,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            installs: std::sync::Mutex::new(HashMap::new()),
            identity: tokio::sync::OnceCell::new(),
        })
    }

    /// The App `TRUNKWARDEN_GITHUB_APP_ID` and `TRUNKWARDEN_GITHUB_APP_KEY_FILE` (or
    /// `…_APP_KEY`, the PEM itself) name; `None` when no App id is set.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        base: &str,
    ) -> Result<Option<App>, String> {
        let Some(id) = env("TRUNKWARDEN_GITHUB_APP_ID").filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("TRUNKWARDEN_GITHUB_APP_ID: `{id}` is not a number"))?;
        let pem = Token::lookup("TRUNKWARDEN_GITHUB_APP_KEY", env)?.ok_or(
            "TRUNKWARDEN_GITHUB_APP_ID is set but not TRUNKWARDEN_GITHUB_APP_KEY_FILE (the App's private key)",
        )?;
        let now: Now = Arc::new(|| chrono::Utc::now().timestamp());
        App::new(id, pem.expose().as_bytes(), base, Retry::default(), now).map(Some)
    }

    /// The App id, which its check runs and comments carry.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A JWT that speaks for the App itself.
    pub fn jwt(&self) -> Result<Token, ForgeError> {
        let now = (self.now)();
        let claims = Claims {
            iat: now - 60,
            exp: now + 540,
            iss: self.id.to_string(),
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.key,
        )
        .map(Token::new)
        .map_err(|e| ForgeError::Transport {
            forge: KIND,
            call: "sign the App's JWT",
            message: e.to_string(),
        })
    }

    /// Records which installation covers a repository, as a delivery says.
    pub fn learn(&self, repo: &str, installation: u64) {
        if let Ok(mut m) = self.installs.lock() {
            m.insert(repo.to_owned(), installation);
        }
    }

    /// Forgets a repository (removed from its installation) or, with `None`, every repository
    /// of an installation and its token (deleted, suspended); returns what it forgot.
    pub async fn forget(&self, repo: Option<&str>, installation: u64) -> Vec<String> {
        let mut gone = Vec::new();
        if let Ok(mut m) = self.installs.lock() {
            m.retain(|r, i| {
                let keep = *i != installation || repo.is_some_and(|x| x != r);
                if !keep {
                    gone.push(r.clone());
                }
                keep
            });
        }
        if repo.is_none() {
            self.tokens.lock().await.remove(&installation);
        }
        gone
    }

    /// The installation covering `owner/name` (or an organisation, for its hooks).
    pub async fn installation(&self, owner: &str, name: Option<&str>) -> Result<u64, ForgeError> {
        let key = match name {
            Some(n) => format!("{owner}/{n}"),
            None => owner.to_owned(),
        };
        if let Some(i) = self.installs.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(i);
        }
        let path = match name {
            Some(n) => format!(
                "/repos/{}/{}/installation",
                super::http::segment(owner),
                super::http::segment(n)
            ),
            None => format!("/orgs/{}/installation", super::http::segment(owner)),
        };
        let jwt = self.jwt()?;
        let i: Installation = self
            .call(
                "get the App's installation",
                reqwest::Method::GET,
                &path,
                &jwt,
            )
            .await?
            .json(KIND, "get the App's installation")?;
        self.learn(&key, i.id);
        Ok(i.id)
    }

    /// The installation covering a repository and the permissions it was granted.
    pub async fn granted(
        &self,
        owner: &str,
        name: &str,
    ) -> Result<(u64, HashMap<String, String>), ForgeError> {
        let path = format!(
            "/repos/{}/{}/installation",
            super::http::segment(owner),
            super::http::segment(name)
        );
        let jwt = self.jwt()?;
        let i: Installation = self
            .call(
                "get the App's installation",
                reqwest::Method::GET,
                &path,
                &jwt,
            )
            .await?
            .json(KIND, "get the App's installation")?;
        Ok((i.id, i.permissions))
    }

    /// Every repository of every installation that is not suspended, each remembered with
    /// its installation: what the resync walks.
    pub async fn repositories(&self) -> Result<Vec<String>, ForgeError> {
        #[derive(Deserialize)]
        struct Listed {
            id: u64,
            #[serde(default)]
            suspended_at: Option<String>,
        }
        #[derive(Deserialize)]
        struct Repos {
            #[serde(default)]
            repositories: Vec<Named>,
        }
        #[derive(Deserialize)]
        struct Named {
            full_name: String,
        }
        let jwt = self.jwt()?;
        let mut out = Vec::new();
        for page in 1..=10 {
            let path = format!("/app/installations?per_page=100&page={page}");
            let call = "list the App's installations";
            let list: Vec<Listed> = self
                .call(call, reqwest::Method::GET, &path, &jwt)
                .await?
                .json(KIND, call)?;
            let n = list.len();
            for i in list.into_iter().filter(|i| i.suspended_at.is_none()) {
                let token = self.token(i.id).await?;
                for rpage in 1..=10 {
                    let path = format!("/installation/repositories?per_page=100&page={rpage}");
                    let call = "list the installation's repositories";
                    let r: Repos = self
                        .call(call, reqwest::Method::GET, &path, &token)
                        .await?
                        .json(KIND, call)?;
                    let m = r.repositories.len();
                    for repo in r.repositories {
                        self.learn(&repo.full_name, i.id);
                        out.push(repo.full_name);
                    }
                    if m < 100 {
                        break;
                    }
                }
            }
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// A token for `installation`, from the cache while it has five minutes left.
    pub async fn token(&self, installation: u64) -> Result<Token, ForgeError> {
        let mut tokens = self.tokens.lock().await;
        let now = (self.now)();
        if let Some((t, exp)) = tokens.get(&installation)
            && *exp - now > REFRESH_SECS
        {
            return Ok(t.clone());
        }
        let jwt = self.jwt()?;
        let path = format!("/app/installations/{installation}/access_tokens");
        let call = "create an installation access token";
        let t: AccessToken = self
            .call(call, reqwest::Method::POST, &path, &jwt)
            .await?
            .json(KIND, call)?;
        let exp = chrono::DateTime::parse_from_rfc3339(&t.expires_at)
            .map(|d| d.timestamp())
            .unwrap_or(now + 3600);
        let token = Token::new(t.token);
        tokens.insert(installation, (token.clone(), exp));
        Ok(token)
    }

    /// The token for a repository's installation.
    pub async fn token_for(&self, repo: &RepoRef) -> Result<Token, ForgeError> {
        let i = self.installation(&repo.owner, Some(&repo.name)).await?;
        self.token(i).await
    }

    /// The App's bot user (`<slug>[bot]`), which its comments and commits are by.
    pub async fn identity(&self) -> Result<User, ForgeError> {
        self.identity
            .get_or_try_init(|| async {
                let jwt = self.jwt()?;
                let app: AppInfo = self
                    .call("get the App", reqwest::Method::GET, "/app", &jwt)
                    .await?
                    .json(KIND, "get the App")?;
                let login = format!("{}[bot]", app.slug);
                let path = format!("/users/{}", super::http::segment(&login));
                // The bot user is public, and GitHub takes an App's JWT only on /app calls:
                // asked without credentials (once per process).
                let u: BotUser = self
                    .call(
                        "get the App's bot user",
                        reqwest::Method::GET,
                        &path,
                        &Token::new(""),
                    )
                    .await?
                    .json(KIND, "get the App's bot user")?;
                Ok(User {
                    id: u.id,
                    login: u.login,
                })
            })
            .await
            .cloned()
    }

    async fn call(
        &self,
        call: &'static str,
        method: reqwest::Method,
        path: &str,
        bearer: &Token,
    ) -> Result<Reply, ForgeError> {
        let url = format!("{}{path}", self.base);
        with_retry(KIND, call, &self.retry, bearer, |_| {
            let mut req = self
                .client
                .request(method.clone(), &url)
                .header(reqwest::header::ACCEPT, "application/vnd.github+json");
            if !bearer.expose().is_empty() {
                req = req.bearer_auth(bearer.expose());
            }
            super::http::send(req)
        })
        .await
    }
}

/// The permissions the bot asks for, at the least level each feature needs, and why.
pub const PERMISSIONS: [(&str, &str, &str); 8] = [
    (
        "contents",
        "write",
        "commit docs/TASKS.md to the trunk; read commits and the policy file",
    ),
    (
        "pull_requests",
        "write",
        "read pull requests, squash-merge on `merge`, the sticky comment",
    ),
    (
        "issues",
        "write",
        "close a task's issues after green, reopen them after red, answer commands",
    ),
    (
        "statuses",
        "read",
        "read CI's commit statuses: green waits for them",
    ),
    (
        "checks",
        "write",
        "the bot's results as check runs, findings annotated at their lines; read CI's",
    ),
    (
        "actions",
        "read",
        "read a failed job's log to say what broke",
    ),
    (
        "administration",
        "read",
        "read branch protection: the contexts green waits for",
    ),
    (
        "metadata",
        "read",
        "every App has it: the repository itself",
    ),
];

/// The events the bot subscribes to (installation events come to every App).
pub const EVENTS: [&str; 6] = [
    "pull_request",
    "issue_comment",
    "push",
    "status",
    "check_run",
    "check_suite",
];

/// A GitHub App manifest for a bot served at `url` (its webhook at `url/webhook`).
pub fn manifest(name: &str, url: &str) -> serde_json::Value {
    let url = url.trim_end_matches('/');
    let permissions: serde_json::Map<String, serde_json::Value> = PERMISSIONS
        .iter()
        .map(|(p, level, _)| ((*p).to_owned(), serde_json::Value::from(*level)))
        .collect();
    serde_json::json!({
        "name": name,
        "url": url,
        "hook_attributes": { "url": format!("{url}/webhook"), "active": true },
        "redirect_url": format!("{url}/"),
        "public": false,
        "default_permissions": permissions,
        "default_events": EVENTS,
    })
}

/// What GitHub returns for a manifest's code: the App, its key and its webhook secret.
#[derive(Deserialize)]
pub struct Conversion {
    pub id: u64,
    pub slug: String,
    pub pem: String,
    pub webhook_secret: Option<String>,
}

/// Trades the code GitHub gives after the App is created from a manifest for its key and
/// webhook secret (`POST /app-manifests/{code}/conversions`, no authentication).
pub async fn convert(base: &str, code: &str) -> Result<Conversion, ForgeError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let call = "convert the App manifest code";
    let url = format!(
        "{}/app-manifests/{}/conversions",
        base.trim_end_matches('/'),
        super::http::segment(code)
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("trunkwarden/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ForgeError::Transport {
            forge: KIND,
            call,
            message: e.to_string(),
        })?;
    let none = Token::new("");
    with_retry(KIND, call, &Retry::default(), &none, |_| {
        let req = client
            .post(&url)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json");
        super::http::send(req)
    })
    .await?
    .json(KIND, call)
}

/// The permissions of [`PERMISSIONS`] an installation lacks (not granted, or only `read` where
/// `write` is needed), as `name: needed (granted)`.
pub fn missing(granted: &HashMap<String, String>) -> Vec<String> {
    PERMISSIONS
        .iter()
        .filter(|(p, need, _)| {
            let has = granted.get(*p).map(String::as_str);
            !(has == Some("write") || (*need == "read" && has == Some("read")))
        })
        .map(|(p, need, _)| {
            let has = granted.get(*p).map_or("none", String::as_str);
            format!("{p}: {need} ({has})")
        })
        .collect()
}
