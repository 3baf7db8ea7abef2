//! The ledger on a real PostgreSQL (127.0.0.1:5432, database `test`; `TRUNKWARDEN_TEST_PG`
//! overrides), each test in a schema of its own: one replica, then two replicas sharing it.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Connection;
use support::fake_forge::Happening;
use support::story::{Story, TOKEN};
use support::{SECRET, client, github, post};
use trunkwarden::forge::{self, Forge as _, RepoRef, Retry, Token};
use trunkwarden::queue::worker::{Handler, HandlerError};
use trunkwarden::queue::{Delivery, State, Store, database_url};
use trunkwarden::server::{Running, start};
use trunkwarden::webhook::event::Event;

/// Records which replica handled which delivery, in order.
#[derive(Default)]
struct Log {
    seen: Mutex<Vec<(String, String)>>,
}

struct Replica {
    name: &'static str,
    log: Arc<Log>,
}

impl Handler for Replica {
    async fn handle(&self, d: &Delivery, _event: &Event) -> Result<(), HandlerError> {
        self.log
            .seen
            .lock()
            .unwrap()
            .push((self.name.to_owned(), d.delivery_id.clone()));
        Ok(())
    }
}

async fn replica(url: &str, name: &'static str, log: Arc<Log>) -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().unwrap();
    let settings = support::settings(dir.path(), Some(url.to_owned()), SECRET);
    let running = start(settings, Arc::new(Replica { name, log }))
        .await
        .unwrap();
    (dir, running)
}

async fn until_done(store: &Store, n: i64) {
    for _ in 0..500 {
        let c = store.counts().await.unwrap();
        if c.get("done").copied().unwrap_or(0) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out: {:?}", store.counts().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_stores_deduplicates_processes_and_replays() {
    let url = support::fresh_pg_schema("tw").await;
    let log = Arc::new(Log::default());
    let (_dir, running) = replica(&url, "a", log.clone()).await;
    let endpoint = format!("http://{}/webhook", running.addr);
    let http = client();
    let f = github("pull_request.opened.0", "pg-1");
    let (a, b) = tokio::join!(post(&http, &endpoint, &f), post(&http, &endpoint, &f));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 202]);
    until_done(&running.store, 1).await;

    let list = running.store.list(Some(State::Done), 10).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].delivery_id, "pg-1");
    assert!(list[0].result.is_some(), "the normalized event is recorded");
    let full = running.store.get(list[0].id).await.unwrap().unwrap();
    assert_eq!(full.body, f.body, "the raw body round-trips");

    // An operator's replay processes it again; a second replay of a queued one is refused.
    assert!(running.store.requeue(list[0].id).await.unwrap());
    until_done(&running.store, 1).await;
    for _ in 0..100 {
        if log.seen.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(log.seen.lock().unwrap().len(), 2);
    assert!(!running.store.requeue(9_999_999).await.unwrap());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_ledger_and_one_dispatches_in_arrival_order() {
    let url = support::fresh_pg_schema("tw").await;
    let log = Arc::new(Log::default());
    let (_da, a) = replica(&url, "a", log.clone()).await;
    // Let the first replica take the dispatcher lock before the second starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_db, b) = replica(&url, "b", log.clone()).await;
    let http = client();
    let endpoints = [
        format!("http://{}/webhook", a.addr),
        format!("http://{}/webhook", b.addr),
    ];
    let mut sent = Vec::new();
    for i in 0..30 {
        let id = format!("r-{i:02}");
        let status = post(
            &http,
            &endpoints[i % 2],
            &github("pull_request.opened.0", &id),
        )
        .await
        .0;
        assert_eq!(status, 202);
        sent.push(id);
    }
    // A delivery already stored through one replica is a duplicate through the other.
    let dup = post(
        &http,
        &endpoints[1],
        &github("pull_request.opened.0", "r-00"),
    )
    .await;
    assert_eq!(dup.0, 200);
    until_done(&b.store, 30).await;
    let seen = log.seen.lock().unwrap().clone();
    let order: Vec<String> = seen.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(
        order, sent,
        "each once, in arrival order (one repository, one lane)"
    );
    assert!(
        seen.iter().all(|(r, _)| r == "a"),
        "only the leader dispatches: {seen:?}"
    );

    // The leader goes away; the other replica takes over what arrives next.
    a.shutdown().await;
    for i in 30..35 {
        let id = format!("r-{i:02}");
        assert_eq!(
            post(&http, &endpoints[1], &github("pull_request.opened.0", &id))
                .await
                .0,
            202
        );
    }
    until_done(&b.store, 35).await;
    let seen = log.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 35, "{seen:?}");
    assert!(seen[30..].iter().all(|(r, _)| r == "b"), "{seen:?}");
    b.shutdown().await;
}

#[test]
fn a_password_on_the_command_line_is_refused() {
    let e = database_url(Some("postgres://bot:hunter2@db/tw".into()), None).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("TRUNKWARDEN_DB"), "{msg}");
    assert!(
        !msg.contains("hunter2"),
        "the password is not echoed: {msg}"
    );
    assert_eq!(
        database_url(None, Some("postgres://bot:hunter2@db/tw".into())).unwrap(),
        Some("postgres://bot:hunter2@db/tw".into()),
        "from the environment it is fine"
    );
    assert!(database_url(Some("mysql://db/tw".into()), None).is_err());
    assert_eq!(database_url(None, Some(String::new())).unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_engine_keeps_its_ledger_in_postgres() {
    let url = support::fresh_pg_schema("tw").await;
    let s = Story::with_db("github", Some(url.clone())).await;
    let head = s.sb.ok(&s.origin, &["rev-parse", "t-1-oidc"]);
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    s.send(&Happening::PrOpened(7)).await;
    s.until("T-1 in progress", |s| s.row("T-1").contains("in-progress"))
        .await;
    let gh = forge::github::Github::new(&s.fake.url, Token::new(TOKEN), Retry::default()).unwrap();
    let merge = gh
        .squash_merge(
            &RepoRef::parse("acme/app").unwrap(),
            7,
            &head,
            "feat(T-1): check the issuer (#7)",
            "",
        )
        .await
        .unwrap();
    s.ci(&merge, "ci/build", "success");
    s.send(&Happening::PrMerged(7)).await;
    s.send(&Happening::Status {
        sha: merge.clone(),
        context: "ci/build".into(),
        success: true,
    })
    .await;
    s.until("done", |s| {
        s.row("T-1").contains("| done ") && !s.issue_open(3)
    })
    .await;
    // The effects ledger is in PostgreSQL, keyed by the forge.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let effects: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM engine_effects WHERE forge = 'github'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(effects >= 1, "closing the issue is recorded as an effect");
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(stored >= 3, "the deliveries are in PostgreSQL too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_from_before_the_body_table_keeps_every_body() {
    let url = support::fresh_pg_schema("tw").await;
    let (schema, rows) = support::ledger_v1(true);
    {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(schema))
            .execute(&mut conn)
            .await
            .unwrap();
        for row in &rows {
            sqlx::query(support::LEDGER_V1_INSERT)
                .bind(row.delivery_id)
                .bind(&row.stored)
                .bind(row.encoding)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    // Two replicas starting together: one moves the bodies, the other finds them moved.
    let (a, b) = tokio::join!(Store::open_postgres(&url), Store::open_postgres(&url));
    let (store, _other) = (a.unwrap(), b.unwrap());
    support::assert_old_bodies_read_back(&store, &rows).await;
    let f = github("pull_request.opened.0", "new-1");
    let new = trunkwarden::queue::NewDelivery {
        forge: trunkwarden::webhook::ForgeKind::Github,
        hook_id: "1".into(),
        delivery_id: "new-1".into(),
        event: "pull_request".into(),
        headers: "{}".into(),
        body: f.body.clone().into(),
        received_at: trunkwarden::queue::now_ms(),
    };
    let trunkwarden::queue::Inserted::New(id) = store.insert(new).await.unwrap() else {
        panic!("a new delivery is new");
    };
    assert_eq!(store.get(id).await.unwrap().unwrap().body, f.body);
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'deliveries' AND column_name LIKE 'body%'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "the old columns are gone");
}

/// Requests of the fake forge made with one replica's token.
fn by_token(s: &Story, token: &str) -> usize {
    s.fake
        .requests()
        .iter()
        .filter(|r| {
            r.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.ends_with(token))
        })
        .count()
}

fn closes(s: &Story) -> (usize, usize) {
    let patches = s
        .fake
        .requests()
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path.ends_with("/issues/3")
                && r.body.as_ref().is_some_and(|b| b["state"] == "closed")
        })
        .count();
    let done = s
        .fake
        .state
        .lock()
        .unwrap()
        .comments
        .iter()
        .filter(|c| c.thread == (false, 3) && c.body.contains("Done: T-1"))
        .count();
    (patches, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_dispatching_replica_resyncs_and_acts() {
    let url = support::fresh_pg_schema("tw").await;
    let tick = Duration::from_millis(150);
    let s = Story::build(
        "github",
        Some(url.clone()),
        support::story::Layout {
            tick: Some(tick),
            ..Default::default()
        },
    )
    .await;
    // Let the story's replica take the dispatcher lock before the standby starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let standby_engine = Arc::new(s.engine_again("standby-token").await);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = support::settings(dir.path(), Some(url.clone()), support::story::SECRET);
    if let Some(w) = settings.workers.as_mut() {
        w.tick = Some(tick);
    }
    let standby = start(settings, standby_engine).await.unwrap();
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    s.send(&Happening::PrOpened(7)).await;
    s.until("in progress", |s| s.row("T-1").contains("in-progress"))
        .await;
    // Merged and green without a single delivery: the resync repairs it.
    let head = s.sb.ok(&s.origin, &["rev-parse", "t-1-oidc"]);
    s.ci(&head, "ci/build", "success");
    let merge = s.merge().await;
    s.ci(&merge, "ci/build", "success");
    s.until("done by the resync", |s| {
        s.row("T-1").contains("| done ") && !s.issue_open(3)
    })
    .await;
    // Several more ticks: nothing more happens, and the standby never called the forge.
    tokio::time::sleep(tick * 6).await;
    assert_eq!(closes(&s), (1, 1));
    assert_eq!(by_token(&s, "standby-token"), 0, "the standby acted");
    // The leader goes away; the standby takes over the resync and finds nothing to do.
    let mut s = s;
    s.server.take().unwrap().shutdown().await;
    for _ in 0..100 {
        if by_token(&s, "standby-token") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        by_token(&s, "standby-token") > 0,
        "the standby took over the resync"
    );
    tokio::time::sleep(tick * 4).await;
    assert_eq!(closes(&s), (1, 1));
    standby.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_reconciling_at_once_close_an_issue_once() {
    let url = support::fresh_pg_schema("tw").await;
    let s = Story::with_db("github", Some(url.clone())).await;
    let a = s.engine_again("replica-a").await;
    let b = s.engine_again("replica-b").await;
    s.fake.add_pull(
        7,
        "alice",
        "t-1-oidc",
        "feat(T-1): check the issuer",
        "Refs #3",
    );
    let head = s.sb.ok(&s.origin, &["rev-parse", "t-1-oidc"]);
    s.ci(&head, "ci/build", "success");
    let merge = s.merge().await;
    s.ci(&merge, "ci/build", "success");
    let repo = RepoRef::parse("acme/app").unwrap();
    let (ra, rb) = tokio::join!(a.reconcile(&repo, &[7], &[]), b.reconcile(&repo, &[7], &[]));
    ra.unwrap();
    rb.unwrap();
    // Whichever came second may have found the claim taken; a later pass settles the row.
    a.reconcile(&repo, &[7], &[]).await.unwrap();
    assert_eq!(closes(&s), (1, 1));
    assert!(s.row("T-1").contains("| done "), "{}", s.row("T-1"));
    s.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_ledger_with_a_table_per_forge_moves_into_the_shared_tables() {
    let url = support::fresh_pg_schema("tw").await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for ddl in [
        "CREATE TABLE engine_gitea_effects (key TEXT PRIMARY KEY, done_at TEXT NOT NULL)",
        "CREATE TABLE engine_gitea_checked (key TEXT PRIMARY KEY, done_at TEXT NOT NULL)",
        "CREATE TABLE engine_gitea_claims (repo TEXT NOT NULL, pr BIGINT NOT NULL, task TEXT NOT NULL, PRIMARY KEY (repo, pr))",
        "CREATE TABLE engine_gitea_repos (name TEXT PRIMARY KEY)",
        "INSERT INTO engine_gitea_effects VALUES ('acme/app:close:3:abc', '2026-11-01T00:00:00Z')",
        "INSERT INTO engine_gitea_claims VALUES ('acme/app', 7, 'T-1')",
        "INSERT INTO engine_gitea_repos VALUES ('acme/app')",
    ] {
        sqlx::query(ddl).execute(&mut conn).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(trunkwarden::engine::SystemClock);
    let open = || {
        trunkwarden::engine::ledger::Ledger::open("gitea", Some(&url), dir.path(), clock.clone())
    };
    // Two replicas starting together move the rows once.
    let (a, b) = tokio::join!(open(), open());
    let (a, _b) = (a.unwrap(), b.unwrap());
    assert!(a.is_done("acme/app:close:3:abc").await.unwrap());
    assert_eq!(
        a.claimed("acme/app", 7).await.unwrap().as_deref(),
        Some("T-1")
    );
    assert_eq!(a.repos().await.unwrap(), ["acme/app"]);
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'engine_gitea_%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(left, 0, "the old tables are gone");
    // Another forge's rows stay apart.
    let other =
        trunkwarden::engine::ledger::Ledger::open("github", Some(&url), dir.path(), clock.clone())
            .await
            .unwrap();
    assert!(!other.is_done("acme/app:close:3:abc").await.unwrap());
    assert!(other.repos().await.unwrap().is_empty());
}
