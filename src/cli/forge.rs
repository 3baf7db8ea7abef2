//! `trunkwarden webhook install` and `trunkwarden protect`: the forge's own guards as one
//! command each, idempotent, saying what they changed.

use anyhow::{Context, anyhow, bail};
use trunkwarden::forge::{
    self, ForgeKind, HookHealth, HookOutcome, HookTarget, Protection, RepoRef, RepoSettings, Token,
};

use crate::Outcome;

#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    #[command(subcommand)]
    action: WebhookAction,
}

#[derive(Debug, clap::Subcommand)]
enum WebhookAction {
    /// Create the repository (or organisation) webhook for URL, or bring the existing one up to
    /// date.
    Install(InstallArgs),
}

#[derive(Debug, clap::Args)]
struct InstallArgs {
    #[arg(long, value_enum)]
    forge: ForgeKind,
    /// OWNER/NAME (GitLab: GROUP/SUBGROUP/NAME).
    #[arg(long, required_unless_present = "org", conflicts_with = "org")]
    repo: Option<String>,
    /// An organisation (GitLab: a group, a Premium feature) whose every repository sends to URL.
    #[arg(long)]
    org: Option<String>,
    /// Where the forge sends deliveries, e.g. https://bot.example/webhook.
    #[arg(long)]
    url: String,
}

#[derive(Debug, clap::Args)]
pub struct ProtectArgs {
    #[arg(long, value_enum)]
    forge: ForgeKind,
    /// OWNER/NAME (GitLab: GROUP/SUBGROUP/NAME).
    #[arg(long)]
    repo: String,
    /// The trunk branch [default: `[trunk] branch` of .trunkwarden.toml in the current
    /// repository, else the forge's default branch].
    #[arg(long)]
    branch: Option<String>,
    /// A CI context to require besides trunkwarden/policy and trunkwarden/secrets (repeatable;
    /// `[ci] required` of .trunkwarden.toml in the current repository is added too).
    #[arg(long = "context", value_name = "CONTEXT")]
    contexts: Vec<String>,
    /// Print the difference and change nothing.
    #[arg(long)]
    dry_run: bool,
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

fn repo_ref(s: &str) -> anyhow::Result<RepoRef> {
    RepoRef::parse(s).ok_or_else(|| anyhow!("--repo `{s}` is not OWNER/NAME"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The webhook secret `serve` checks, from the same variable (its first value, for rotation).
fn hook_secret(kind: ForgeKind) -> anyhow::Result<Token> {
    // Forgejo shares Gitea's secret, as serve reads it.
    let key = if kind == ForgeKind::Forgejo {
        "gitea"
    } else {
        kind.name()
    };
    let var = trunkwarden::webhook::SECRET_VARS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| anyhow!("no webhook secret variable for {kind}"))?;
    let value = Token::lookup(var, &env)
        .map_err(|e| anyhow!(e))?
        .ok_or_else(|| {
            anyhow!("{var} (or {var}_FILE) is not set; the hook needs the secret serve checks")
        })?;
    let first = value
        .expose()
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    if first.is_empty() {
        bail!("{var} is empty");
    }
    Ok(Token::new(first))
}

/// `webhook install`.
pub fn run_webhook(a: WebhookArgs) -> anyhow::Result<Outcome> {
    let WebhookAction::Install(a) = a.action;
    let target = match (&a.repo, &a.org) {
        (Some(r), _) => HookTarget::Repo(repo_ref(r)?),
        (None, Some(o)) if !o.is_empty() && !o.contains(char::is_whitespace) => {
            HookTarget::Org(o.clone())
        }
        (None, Some(o)) => bail!("--org `{o}` is not an organisation name"),
        (None, None) => bail!("pass --repo OWNER/NAME or --org ORG"),
    };
    if !(a.url.starts_with("https://") || a.url.starts_with("http://")) {
        bail!("--url `{}` is not an http(s) URL", a.url);
    }
    let secret = hook_secret(a.forge)?;
    let spec = forge::HookSpec {
        url: a.url.clone(),
        secret,
    };
    // octocrab's client must be built inside the runtime.
    let outcome = runtime()?.block_on(async {
        let forge = forge::from_env(a.forge, &env).map_err(|e| anyhow!(e))?;
        anyhow::Ok(forge.upsert_webhook(&target, &spec).await?)
    })?;
    let said = match outcome {
        HookOutcome::Created => format!("created the webhook for {} on {target}", a.url),
        HookOutcome::Updated => format!("updated the webhook for {} on {target}", a.url),
        HookOutcome::Unchanged => format!(
            "the webhook for {} on {target} is already as it should be; nothing changed",
            a.url
        ),
    };
    super::emit(&format!("{said}\n"))?;
    Ok(Outcome::Clean)
}

fn diff(now: &RepoSettings, want: &RepoSettings) -> Vec<String> {
    let mut out = Vec::new();
    let mut flag = |name: &str, a: bool, b: bool| {
        if a != b {
            out.push(format!("{name}: {a} → {b}"));
        }
    };
    flag("squash merges", now.allow_squash, want.allow_squash);
    flag(
        "merge commits",
        now.allow_merge_commit,
        want.allow_merge_commit,
    );
    flag("rebase merges", now.allow_rebase, want.allow_rebase);
    let empty = Protection::default();
    let (p, q) = (
        now.protection.as_ref(),
        want.protection.as_ref().unwrap_or(&empty),
    );
    match p {
        None => out.push("branch protection: none → on".into()),
        Some(p) => {
            if p.require_pull_request != q.require_pull_request {
                out.push(format!(
                    "pull requests required: {} → {}",
                    p.require_pull_request, q.require_pull_request
                ));
            }
            let mut a = p.required_contexts.clone();
            let mut b = q.required_contexts.clone();
            a.sort();
            b.sort();
            if a != b {
                out.push(format!(
                    "required contexts: [{}] → [{}]",
                    a.join(", "),
                    b.join(", ")
                ));
            }
            if p.push_allowlist != q.push_allowlist {
                out.push(format!(
                    "who may push: [{}] → [{}]",
                    p.push_allowlist.join(", "),
                    q.push_allowlist.join(", ")
                ));
            }
        }
    }
    out
}

/// `protect`.
pub fn run_protect(a: ProtectArgs) -> anyhow::Result<Outcome> {
    let repo = repo_ref(&a.repo)?;
    let mut contexts = a.contexts.clone();
    let mut configured = None;
    if let Some(root) = std::env::current_dir()
        .ok()
        .and_then(|d| trunkwarden::config::find_repo_root(&d))
    {
        let policy = trunkwarden::config::RepoPolicy::load(&root)?;
        contexts.extend(policy.ci.required);
        configured = policy.trunk.branch;
    }
    contexts.extend([
        "trunkwarden/policy".to_owned(),
        "trunkwarden/secrets".to_owned(),
    ]);
    contexts.sort();
    contexts.dedup();
    runtime()?.block_on(async {
        let forge = forge::from_env(a.forge, &env).map_err(|e| anyhow!(e))?;
        let bot = forge.me().await?;
        let branch = match a.branch.clone().or(configured) {
            Some(b) => b,
            None => forge.default_branch(&repo).await?,
        };
        let now = forge.settings(&repo, &branch).await?;
        let (want, notes) = forge.trunk_guards(contexts, &bot);
        let changes = diff(&now, &want);
        let mut out = String::new();
        for n in &notes {
            out.push_str(&format!("note: {n}\n"));
        }
        if changes.is_empty() {
            out.push_str(&format!(
                "{repo} `{branch}` already squash-only and protected; no changes\n"
            ));
            super::emit(&out)?;
            return Ok(Outcome::Clean);
        }
        for c in &changes {
            out.push_str(&format!(
                "{} {c}\n",
                if a.dry_run { "would change" } else { "change" }
            ));
        }
        if !a.dry_run {
            forge.apply_settings(&repo, &branch, &want).await?;
            out.push_str(&format!(
                "applied {} change{} to {repo}\n",
                changes.len(),
                if changes.len() == 1 { "" } else { "s" }
            ));
        }
        super::emit(&out)?;
        Ok(Outcome::Clean)
    })
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// A repository to check the bot's access to, as OWNER/NAME on each configured forge.
    #[arg(long)]
    repo: Option<String>,
    /// The data directory serve uses [default: ./trunkwarden-data].
    #[arg(long, env = "TRUNKWARDEN_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// The URL the forge delivers to (as given to `webhook install`): checks that the hook exists
    /// on --repo (or --org) and that its last deliveries succeeded, where the forge tells.
    #[arg(long)]
    url: Option<String>,
    /// An organisation whose webhook to check instead of the repository's.
    #[arg(long)]
    org: Option<String>,
}

/// The GitHub App: its key parses, GitHub takes its JWT, and the installation on `repo` has
/// every permission the bot asks for.
fn doctor_app(rt: &tokio::runtime::Runtime, repo: Option<&str>, lines: &mut Vec<(bool, String)>) {
    use trunkwarden::forge::github_app;
    let url = env("TRUNKWARDEN_GITHUB_URL").unwrap_or_else(|| "https://api.github.com".into());
    let app = match github_app::App::from_env(&env, &url) {
        Ok(Some(app)) => app,
        Ok(None) => return,
        Err(e) => {
            lines.push((false, format!("github app: {e} — fix: set TRUNKWARDEN_GITHUB_APP_KEY_FILE to the .pem GitHub gave (github-app convert writes it)")));
            return;
        }
    };
    match rt.block_on(app.identity()) {
        Ok(me) => lines.push((
            true,
            format!(
                "github app {}: the key parses and GitHub accepts its JWT; it acts as @{}",
                app.id(),
                me.login
            ),
        )),
        Err(e) => {
            lines.push((false, format!("github app {}: {e} — fix: the key must be the App's current private key (a revoked one is refused)", app.id())));
            return;
        }
    }
    let Some((owner, name)) = repo.and_then(|r| r.split_once('/')) else {
        return;
    };
    match rt.block_on(app.granted(owner, name)) {
        Ok((id, granted)) => {
            let missing = github_app::missing(&granted);
            lines.push(if missing.is_empty() {
                (true, format!("github app: installation {id} on {owner}/{name} has every permission the bot needs"))
            } else {
                (false, format!("github app: installation {id} on {owner}/{name} lacks {} — fix: accept the App's permissions in the installation's settings (github-app manifest lists them)", missing.join(", ")))
            });
        }
        Err(e) => lines.push((false, format!("github app: not installed on {owner}/{name}: {e} — fix: install the App on the repository"))),
    }
}

/// `doctor`: one line per check, a fix for each failure; exit 1 when something fails.
pub fn run_doctor(a: DoctorArgs) -> anyhow::Result<Outcome> {
    let mut lines: Vec<(bool, String)> = Vec::new();
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut local_policy = None;
    // Repository policy.
    if let Some(root) = trunkwarden::config::find_repo_root(&cwd) {
        let file = root.join(".trunkwarden.toml");
        match trunkwarden::config::RepoPolicy::load(&root) {
            Ok(p) => {
                local_policy = Some(p);
                lines.push((
                    true,
                    if file.exists() {
                        format!("{} parses", file.display())
                    } else {
                        format!("no {}: the defaults apply", file.display())
                    },
                ));
            }
            Err(e) => lines.push((
                false,
                format!("{e} — fix: correct the file; unknown keys are errors"),
            )),
        }
        match trunkwarden::hook::install::status_local(&cwd) {
            Ok(Some(steps)) => {
                for s in steps {
                    let ok = s.what.starts_with("installed");
                    let fix = if ok || s.what.contains(" — fix: ") {
                        String::new()
                    } else {
                        " — fix: trunkwarden hooks install".into()
                    };
                    lines.push((ok, format!("hook {}: {}{fix}", s.hook, s.what)));
                }
            }
            Ok(None) => {}
            Err(e) => lines.push((false, format!("local hooks: {e}"))),
        }
    }
    // Server settings file.
    if let Some(path) = env("TRUNKWARDEN_CONFIG") {
        match trunkwarden::server::ServerFile::load(std::path::Path::new(&path)) {
            Ok(_) => lines.push((true, format!("{path} parses"))),
            Err(e) => lines.push((
                false,
                format!("{e} — fix: correct the settings file (README lists the keys)"),
            )),
        }
    }
    // Data directory.
    let dir = a
        .data_dir
        .clone()
        .unwrap_or_else(|| "trunkwarden-data".into());
    // Probed where it is, or where serve would create it: doctor itself creates nothing.
    let existing = dir
        .ancestors()
        .find(|d| d.as_os_str().is_empty() || d.is_dir())
        .map(|d| {
            if d.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                d
            }
        })
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let probe = existing.join(format!(".trunkwarden-doctor-{}", std::process::id()));
    let writable = std::fs::write(&probe, b"ok").is_ok();
    let _ = std::fs::remove_file(&probe);
    let exists = dir.is_dir();
    lines.push((
        writable,
        match (exists, writable) {
            (true, true) => format!("data directory {} is writable", dir.display()),
            (false, true) => format!(
                "data directory {} does not exist yet; serve creates it ({} is writable)",
                dir.display(),
                existing.display()
            ),
            _ => format!("data directory {} is not writable — fix: create it for the user serve runs as, or set TRUNKWARDEN_DATA_DIR", dir.display()),
        },
    ));
    // Webhook secrets and forge tokens.
    let rt = runtime()?;
    let app_mode = env("TRUNKWARDEN_GITHUB_APP_ID").is_some_and(|v| !v.is_empty())
        && env("TRUNKWARDEN_GITHUB_TOKEN").is_none()
        && env("TRUNKWARDEN_GITHUB_TOKEN_FILE").is_none();
    if app_mode {
        doctor_app(&rt, a.repo.as_deref(), &mut lines);
    }
    let mut any_forge = false;
    for (kind, _) in trunkwarden::forge::forges_with_token(&env).unwrap_or_default() {
        any_forge = true;
        if hook_secret(kind).is_err() && kind != ForgeKind::Forgejo {
            lines.push((false, format!("{kind}: no webhook secret — fix: set the secret serve checks (README: Webhook secrets)")));
        }
        let probe = rt.block_on(async {
            let forge = forge::from_env(kind, &env).map_err(|e| anyhow!(e))?;
            let me = forge.me().await?;
            // An App's access is its installation's permissions (checked above).
            let access = match &a.repo {
                Some(r) if !(app_mode && kind == ForgeKind::Github) => {
                    Some((r.clone(), forge.permission(&repo_ref(r)?, &me).await?))
                }
                _ => None,
            };
            // The trunk and what green waits for on it, as the engine will see them.
            let green = match &a.repo {
                Some(r) => {
                    let repo = repo_ref(r)?;
                    let configured = local_policy.as_ref().and_then(|p| p.trunk.branch.clone());
                    let (trunk, from) = match configured {
                        Some(b) => (b, "`[trunk] branch` of .trunkwarden.toml"),
                        None => (
                            forge.default_branch(&repo).await?,
                            "the forge's default branch",
                        ),
                    };
                    let required = local_policy
                        .as_ref()
                        .map(|p| p.ci.required.clone())
                        .filter(|r| !r.is_empty());
                    let waits = match required {
                        Some(r) => {
                            format!("{} (`[ci] required` of .trunkwarden.toml)", r.join(", "))
                        }
                        None => {
                            let list: Vec<String> = forge
                                .required_contexts(&repo, &trunk)
                                .await?
                                .into_iter()
                                .filter(|q| !q.context.starts_with("trunkwarden/"))
                                .map(|q| format!("{} ({})", q.context, q.source))
                                .collect();
                            if list.is_empty() {
                                "every context reported (the forge requires none)".to_owned()
                            } else {
                                list.join(", ")
                            }
                        }
                    };
                    Some(format!(
                        "{r}: the trunk is `{trunk}` ({from}); green on it means {waits}"
                    ))
                }
                None => None,
            };
            let target = match (&a.org, &a.repo) {
                (Some(o), _) => Some(HookTarget::Org(o.clone())),
                (None, Some(r)) => Some(HookTarget::Repo(repo_ref(r)?)),
                _ => None,
            };
            let hook = match (target, &a.url) {
                (Some(t), Some(url)) => Some((t.clone(), forge.webhook_health(&t, url).await)),
                _ => None,
            };
            anyhow::Ok((me, access, hook, green, forge.budget()))
        });
        match probe {
            Ok((me, access, hook, green, budget)) => {
                if let Some(g) = green {
                    lines.push((true, format!("{kind}: {g}")));
                }
                if let Some((target, health)) = hook {
                    let url = a.url.as_deref().unwrap_or_default();
                    lines.push(match health {
                        Ok(HookHealth::Missing) => (false, format!("{kind}: no webhook on {target} sends to {url} — fix: trunkwarden webhook install --forge {kind} {} --url {url}", match &target { HookTarget::Org(o) => format!("--org {o}"), HookTarget::Repo(r) => format!("--repo {r}") })),
                        Ok(HookHealth::Healthy(why)) => (true, format!("{kind}: the webhook on {target} works: {why}")),
                        Ok(HookHealth::Failing(why)) => (false, format!("{kind}: the webhook on {target} fails: {why} — fix: check that {url} is reachable from the forge and the secrets match (trunkwarden deliveries list; the log of serve)")),
                        Ok(HookHealth::Unknown(why)) => (true, format!("{kind}: the webhook on {target} exists; {why}")),
                        Err(e) => (false, format!("{kind}: cannot read the webhooks of {target}: {e} — fix: the token needs admin access to read hooks")),
                    });
                }
                lines.push((true, format!("{kind}: the token works as @{}", me.login)));
                if let Some(b) = budget {
                    let of = b.limit.map(|l| format!(" of {l}")).unwrap_or_default();
                    let reset = chrono::DateTime::from_timestamp(b.reset_at, 0)
                        .map(|t| t.format("%H:%M:%S UTC").to_string())
                        .unwrap_or_default();
                    let fix = if b.remaining == 0 {
                        " — fix: the bot waits for the refill; spread the token over fewer bots"
                    } else {
                        ""
                    };
                    lines.push((
                        b.remaining > 0,
                        format!(
                            "{kind}: API budget {}{of} requests left, refilled at {reset}{fix}",
                            b.remaining
                        ),
                    ));
                }
                if let Some((r, p)) = access {
                    let ok = p >= forge::Permission::Write;
                    let fix = if ok {
                        String::new()
                    } else {
                        format!(
                            " — fix: give @{} write access to {r} (admin for protect)",
                            me.login
                        )
                    };
                    lines.push((
                        ok,
                        format!("{kind}: @{} has {p:?} access to {r}{fix}", me.login)
                            .to_lowercase(),
                    ));
                }
            }
            Err(e) => lines.push((false, format!("{kind}: {e:#}"))),
        }
    }
    if !any_forge {
        lines.push((true, "no forge token set: forge checks skipped (serve then only records deliveries; set TRUNKWARDEN_GITHUB_TOKEN, or GITEA, FORGEJO, GITLAB, and its _URL to run the task engine)".into()));
    }
    let mut out = String::new();
    for (ok, l) in &lines {
        out.push_str(&format!("{} {l}\n", if *ok { "ok  " } else { "FAIL" }));
    }
    super::emit(&out)?;
    Ok(if lines.iter().all(|(ok, _)| *ok) {
        Outcome::Clean
    } else {
        Outcome::Violation
    })
}
