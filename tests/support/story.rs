//! A story harness for the engine: a bare repository with a task table, a fake forge serving
//! it, the engine behind the real router and ledger, and helpers to drive and observe them.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fake_forge::{Ci, FakeForge, Happening};
use super::git::{Sandbox, write};
use trunkwarden::engine::{Engine, EngineConfig};
use trunkwarden::forge::github_app::App;
use trunkwarden::forge::woodpecker::Woodpecker;
use trunkwarden::forge::{self, Forge, Retry, Token};
use trunkwarden::queue::worker::Handler as _;
use trunkwarden::queue::worker::{RetryPolicy, WorkerConfig};
use trunkwarden::server::{self, Running, Settings};

pub const TOKEN: &str = "engine-test-token";
pub const SECRET: &str = "engine-hook-secret";

pub const TABLE: &str = "# Tasks

| id  | status      | description       | issue | depends_on | blocks | branch | agent | started_at | completed_at | notes |
|-----|-------------|-------------------|-------|------------|--------|--------|-------|------------|--------------|-------|
| T-1 | not-started | OIDC issuer check | #3    |            | T-2    |        |       |            |              |       |
| T-2 | not-started | Token refresh     | #4    | T-1        | T-3    |        |       |            |              |       |
| T-3 | not-started | Audit log         |       | T-2        |        |        |       |            |              |       |
";

/// Where a story's trunk lives: its branch, the bare repository's default branch (`HEAD`),
/// and the policy file committed on both.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub trunk: &'static str,
    pub head: &'static str,
    pub policy: Option<&'static str>,
    /// The dispatcher's resync interval (none by default: stories drive it by hand).
    pub tick: Option<Duration>,
}

impl Default for Layout {
    fn default() -> Layout {
        Layout {
            trunk: "main",
            head: "main",
            policy: None,
            tick: None,
        }
    }
}

pub struct Story {
    pub sb: Sandbox,
    pub origin: PathBuf,
    pub fake: FakeForge,
    pub engine: Arc<Engine>,
    pub server: Option<Running>,
    pub url: String,
    pub client: reqwest::Client,
    pub trunk: &'static str,
    pub clock: Arc<super::ManualClock>,
    pub db: Option<String>,
    kind: &'static str,
    extras: Extras,
}

/// What a story may add to the forge: a Woodpecker server, a GitHub App to act as.
#[derive(Clone, Default)]
pub struct Extras {
    pub woodpecker: Option<Arc<Woodpecker>>,
    pub app: Option<Arc<App>>,
}

impl Story {
    pub async fn new(kind: &'static str) -> Story {
        Story::with_db(kind, None).await
    }

    /// A story whose ledger and engine live in PostgreSQL at `db` (SQLite files for `None`).
    pub async fn with_db(kind: &'static str, db: Option<String>) -> Story {
        Story::build(kind, db, Layout::default()).await
    }

    /// A story on another trunk layout.
    pub async fn build(kind: &'static str, db: Option<String>, layout: Layout) -> Story {
        Story::build_with(kind, db, layout, Extras::default()).await
    }

    /// A story whose CI is a Woodpecker server, besides the forge's own.
    pub async fn with_woodpecker(kind: &'static str, woodpecker: Arc<Woodpecker>) -> Story {
        let extras = Extras {
            woodpecker: Some(woodpecker),
            app: None,
        };
        Story::build_with(kind, None, Layout::default(), extras).await
    }

    /// A GitHub story whose bot is a GitHub App, made by `make` once the fake runs (it
    /// registers the App there).
    pub async fn with_app_from(make: impl FnOnce(&FakeForge) -> Arc<App>) -> Story {
        Story::build_full(
            "github",
            None,
            Layout::default(),
            Extras::default(),
            |fake| Some(make(fake)),
        )
        .await
    }

    async fn build_with(
        kind: &'static str,
        db: Option<String>,
        layout: Layout,
        extras: Extras,
    ) -> Story {
        Story::build_full(kind, db, layout, extras, |_| None).await
    }

    async fn build_full(
        kind: &'static str,
        db: Option<String>,
        layout: Layout,
        mut extras: Extras,
        fake_setup: impl FnOnce(&FakeForge) -> Option<Arc<App>>,
    ) -> Story {
        let sb = Sandbox::new();
        let work = sb.repo("w");
        write(&work, "docs/TASKS.md", TABLE);
        if let Some(p) = layout.policy {
            write(&work, ".trunkwarden.toml", p);
        }
        sb.ok(&work, &["add", "-A"]);
        sb.ok(&work, &["commit", "-q", "-m", "chore: tasks"]);
        let origin = sb.bare("origin.git");
        let o = origin.to_str().unwrap();
        for branch in [layout.trunk, layout.head] {
            sb.ok(
                &work,
                &["push", "-q", o, &format!("HEAD:refs/heads/{branch}")],
            );
        }
        sb.ok(
            &origin,
            &[
                "symbolic-ref",
                "HEAD",
                &format!("refs/heads/{}", layout.head),
            ],
        );
        sb.ok(&work, &["checkout", "-q", "-b", "t-1-oidc"]);
        write(&work, "src/oidc.rs", "pub fn issuer() {}\n");
        sb.ok(&work, &["add", "-A"]);
        sb.ok(
            &work,
            &["commit", "-q", "-m", "feat(T-1): check the issuer"],
        );
        sb.ok(&work, &["push", "-q", o, "t-1-oidc"]);
        let fake = FakeForge::start(kind, TOKEN, origin.clone()).await;
        {
            let mut f = fake.state.lock().unwrap();
            f.issues.insert(3, true);
            f.issues.insert(4, true);
        }
        if let Some(app) = fake_setup(&fake) {
            extras.app = Some(app);
        }
        let clock = Arc::new(super::ManualClock::now());
        let engine = Arc::new(
            open_engine_with(
                kind,
                &fake,
                &sb,
                &origin,
                db.clone(),
                clock.clone(),
                TOKEN,
                extras.clone(),
            )
            .await,
        );
        let settings = Settings {
            workers: Some(WorkerConfig {
                concurrency: 4,
                retry: RetryPolicy {
                    max_attempts: 5,
                    base: Duration::from_millis(20),
                    max: Duration::from_millis(200),
                },
                tick: layout.tick,
            }),
            ..super::settings(&sb.path("ledger"), db.clone(), SECRET)
        };
        // The status page reads the same engine the deliveries go to.
        let source: Arc<dyn trunkwarden::ui::Source> =
            Arc::new(trunkwarden::engine::Engines::of([engine.clone()]));
        let running = server::start_with(settings, engine.clone(), Some(source))
            .await
            .unwrap();
        let url = format!("http://{}/webhook", running.addr);
        Story {
            sb,
            origin,
            fake,
            engine,
            server: Some(running),
            url,
            client: super::client(),
            trunk: layout.trunk,
            clock,
            db,
            kind,
            extras,
        }
    }

    /// Another engine on this story's ledger and mirrors: the bot after a restart, or a
    /// replica beside it (with `token`, so the fake tells their requests apart).
    pub async fn engine_again(&self, token: &str) -> Engine {
        if token != TOKEN {
            self.fake.accept_token(token);
        }
        open_engine_with(
            self.kind,
            &self.fake,
            &self.sb,
            &self.origin,
            self.db.clone(),
            self.clock.clone(),
            token,
            self.extras.clone(),
        )
        .await
    }

    /// Adds pull request `n` into the trunk.
    pub fn open_pull(&self, n: u64, author: &str, head: &str, title: &str, body: &str) {
        self.fake.add_pull(n, author, head, title, body);
        self.fake
            .state
            .lock()
            .unwrap()
            .pulls
            .get_mut(&n)
            .unwrap()
            .base_ref = self.trunk.to_owned();
    }

    /// Hands `what` to `engine` as the queue would: the real delivery, normalized.
    pub async fn handle(
        &self,
        engine: &Engine,
        what: &Happening,
    ) -> Result<(), trunkwarden::queue::worker::HandlerError> {
        let fx = self.fake.delivery(what, SECRET);
        let (d, event) = super::delivery_of(&fx);
        engine.handle(&d, &event).await
    }

    pub async fn send(&self, what: &Happening) {
        let fx = self.fake.delivery(what, SECRET);
        let (status, body) = super::post(&self.client, &self.url, &fx).await;
        assert!(status == 202 || status == 200, "{status} {body}");
    }

    pub fn table(&self) -> String {
        self.sb.ok(
            &self.origin,
            &["show", &format!("{}:docs/TASKS.md", self.trunk)],
        )
    }

    pub fn row(&self, id: &str) -> String {
        self.table()
            .lines()
            .find(|l| l.starts_with(&format!("| {id} ")))
            .unwrap_or_default()
            .to_owned()
    }

    /// The bot's sticky comment on pull request `n`, where it says what a task waits for.
    pub fn sticky(&self, n: u64) -> String {
        let marker = trunkwarden::forge::marker_line("task");
        let f = self.fake.state.lock().unwrap();
        f.comments
            .iter()
            .find(|c| c.thread.1 == n && c.body.contains(&marker))
            .map(|c| c.body.clone())
            .unwrap_or_default()
    }

    pub async fn until(&self, what: &str, check: impl Fn(&Story) -> bool) {
        let start = Instant::now();
        while !check(self) {
            if start.elapsed() > Duration::from_secs(20) {
                let store = &self.server.as_ref().unwrap().store;
                let ledger: Vec<String> = store
                    .list(None, 100)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|d| format!("{} {} {:?}", d.event, d.state, d.last_error))
                    .collect();
                panic!(
                    "timed out waiting for {what}:\n{}\nledger:\n{}",
                    self.table(),
                    ledger.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn idle(&self) {
        let store = &self.server.as_ref().unwrap().store;
        let start = Instant::now();
        loop {
            let counts = store.counts().await.unwrap();
            if counts.get("queued").copied().unwrap_or(0) == 0 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "queue never drained: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn ci(&self, sha: &str, context: &str, state: &str) {
        self.fake.state.lock().unwrap().ci.push(Ci {
            sha: sha.into(),
            context: context.into(),
            state: state.into(),
            conclusion: None,
            reporter: "ci-bot".into(),
            target_url: Some("https://ci.example/run".into()),
            check_run: false,
        });
    }

    pub fn issue_open(&self, n: u64) -> bool {
        self.fake.state.lock().unwrap().issues[&n]
    }
}

impl Story {
    /// Merges PR 7 in the fake (a real squash commit) and returns the merge commit.
    pub async fn merge(&self) -> String {
        self.fake.merge_pull(7, "feat(T-1): check the issuer (#7)")
    }

    pub fn bot_commits(&self) -> usize {
        let log = self
            .sb
            .ok(&self.origin, &["log", "--format=%ae", self.trunk]);
        log.lines()
            .filter(|l| *l == "trunkwarden@users.noreply.invalid")
            .count()
    }
}

/// An engine talking to the story's fake forge with `token`; a token other than the story's
/// is another replica, with a data directory of its own.
#[allow(clippy::too_many_arguments)]
pub async fn open_engine_with(
    kind: &'static str,
    fake: &FakeForge,
    sb: &Sandbox,
    origin: &std::path::Path,
    db: Option<String>,
    clock: Arc<super::ManualClock>,
    token: &str,
    extras: Extras,
) -> Engine {
    let adapter: Arc<dyn Forge> = match (kind, extras.app) {
        ("github", Some(app)) => {
            Arc::new(forge::github::Github::with_app(&fake.url, app, Retry::default()).unwrap())
        }
        ("github", None) => Arc::new(
            forge::github::Github::new(&fake.url, Token::new(token), Retry::default()).unwrap(),
        ),
        ("gitlab", _) => Arc::new(
            forge::gitlab::Gitlab::new(&fake.url, Token::new(token), Retry::default()).unwrap(),
        ),
        _ => Arc::new(
            forge::gitea::Gitea::new(
                forge::ForgeKind::Gitea,
                &fake.url,
                Token::new(token),
                Retry::default(),
            )
            .unwrap(),
        ),
    };
    let origin_url = origin.to_str().unwrap().to_owned();
    Engine::open(
        adapter,
        EngineConfig {
            db,
            data_dir: if token == TOKEN {
                sb.path("engine")
            } else {
                sb.path(&format!("engine-{token}"))
            },
            clone_url: Box::new(move |_| origin_url.clone()),
            git_token: None,
            push_attempts: 16,
            clock,
            woodpecker: extras.woodpecker,
        },
    )
    .await
    .unwrap()
}
