//! Shared helpers for tests that talk to a real server over loopback.
#![allow(dead_code)]

pub mod contract;
pub mod fake_app;
pub mod fake_ci;
pub mod fake_forge;
pub mod git;
pub mod story;

use std::path::PathBuf;

use std::time::Duration;

use axum::http::HeaderValue;
use trunkwarden::queue::Sync;
use trunkwarden::queue::worker::{RetryPolicy, WorkerConfig};
use trunkwarden::server::Settings;
use trunkwarden::webhook::verify::Secrets;
use trunkwarden::webhook::{ForgeKind, Verifier, fixture};

/// A test server on a free loopback port that checks every forge's deliveries with `secret`,
/// retries quickly, and keeps its ledger in `data_dir` (or PostgreSQL at `db`).
pub fn settings(data_dir: &std::path::Path, db: Option<String>, secret: &str) -> Settings {
    Settings {
        db,
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_owned(),
        max_body_bytes: 25 << 20,
        max_body_bytes_in_flight: 100 << 20,
        request_timeout: Duration::from_secs(10),
        connections: Default::default(),
        workers: Some(WorkerConfig {
            concurrency: 4,
            retry: RetryPolicy {
                max_attempts: 3,
                base: Duration::from_millis(10),
                max: Duration::from_millis(40),
            },
            tick: None,
        }),
        sync: Sync::Full,
        retention: None,
        ui: trunkwarden::ui::UiSettings {
            enabled: true,
            token: None,
        },
        verifier: Verifier {
            github: Secrets::from_list(secret),
            gitea: Secrets::from_list(secret),
            gitlab_tokens: Secrets::from_list(secret),
            gitlab_tolerance_secs: 300,
            ..Default::default()
        },
    }
}

/// A clock a test moves by hand (it starts at the wall clock's now).
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn now() -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(
            chrono::Utc::now().timestamp_millis(),
        ))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl trunkwarden::engine::Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A signed fixture as the worker hands it to a handler: the stored delivery and its event.
pub fn delivery_of(
    fx: &fixture::Fixture,
) -> (trunkwarden::queue::Delivery, trunkwarden::webhook::Event) {
    delivery_event(fx).expect("an event the bot acts on")
}

/// [`delivery_of`], `None` for a delivery the bot does not act on.
pub fn delivery_event(
    fx: &fixture::Fixture,
) -> Option<(trunkwarden::queue::Delivery, trunkwarden::webhook::Event)> {
    let forge = trunkwarden::webhook::detect(&fx.headers).expect("a forge's delivery");
    let header = |n: &str| {
        fx.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let event = header("x-github-event")
        .or_else(|| header("x-gitea-event"))
        .or_else(|| header("x-gitlab-event"))
        .expect("an event header");
    let normalized =
        trunkwarden::webhook::normalize(forge, &event, header("content-type").as_deref(), &fx.body)
            .expect("the delivery normalizes")?;
    let d = trunkwarden::queue::Delivery {
        id: 1,
        forge: forge.as_str().to_owned(),
        hook_id: "1".into(),
        delivery_id: header("x-github-delivery").unwrap_or_default(),
        event,
        headers: serde_json::json!({}),
        body: fx.body.clone().into(),
        body_pruned: false,
        received_at: 0,
        state: "queued".into(),
        attempts: 0,
        next_attempt_at: 0,
        last_error: None,
        lane: None,
        result: None,
        finished_at: None,
    };
    Some((d, normalized))
}

/// The secret the test servers are configured with.
pub const SECRET: &str = "test-secret-🦀";

/// A recorded delivery from webhook-fixtures/, e.g. `("github", "push.none.4")`.
pub fn fixture(forge: &str, name: &str) -> fixture::Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("webhook-fixtures")
        .join(forge)
        .join(format!("{name}.json"));
    fixture::read(&path).expect("fixture")
}

/// A GitHub fixture with a fresh (or given) delivery id, signed with `SECRET`.
pub fn github(name: &str, delivery: &str) -> fixture::Fixture {
    let mut f = fixture("github", name);
    f.headers.insert(
        "x-github-delivery",
        HeaderValue::from_str(delivery).unwrap(),
    );
    f.sign(ForgeKind::Github, SECRET, delivery).unwrap();
    f
}

/// An HTTP client for loopback tests.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

/// Posts a fixture as the forge would.
pub async fn post(client: &reqwest::Client, url: &str, f: &fixture::Fixture) -> (u16, String) {
    let mut req = client.post(url).body(f.body.clone());
    for (k, v) in &f.headers {
        req = req.header(k.as_str(), v.as_bytes());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Cases per property: `PROPTEST_CASES` when set (for long local runs), else the CI default.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A delivery as releases before the body table stored it.
pub struct OldRow {
    pub delivery_id: &'static str,
    /// The body as received.
    pub body: Vec<u8>,
    /// The body as stored, in `encoding`.
    pub stored: Vec<u8>,
    pub encoding: &'static str,
}

/// Stores an [`OldRow`] in a ledger from [`ledger_v1`]: `$1` delivery id, `$2` stored body,
/// `$3` encoding (SQLite reads `$n` too).
pub const LEDGER_V1_INSERT: &str = "INSERT INTO deliveries (forge, hook_id, delivery_id, event, headers, body, body_encoding, received_at) VALUES ('github', '1', $1, 'push', '{}', $2, $3, 0)";

/// Every old row is listed, and reads back with the body it was received with.
pub async fn assert_old_bodies_read_back(store: &trunkwarden::queue::Store, rows: &[OldRow]) {
    let listed = store.list(None, 10).await.unwrap();
    assert_eq!(listed.len(), rows.len());
    for row in rows {
        let d = listed
            .iter()
            .find(|d| d.delivery_id == row.delivery_id)
            .unwrap();
        let full = store.get(d.id).await.unwrap().unwrap();
        assert_eq!(full.body, row.body, "{}", row.delivery_id);
    }
}

/// The ledger as releases before bodies had their own table created it, and two deliveries
/// for it: `old-1` with a body stored as is, `old-2` with one compressed as those releases did.
pub fn ledger_v1(postgres: bool) -> (String, [OldRow; 2]) {
    let (id, int, blob) = if postgres {
        ("BIGSERIAL PRIMARY KEY", "BIGINT", "BYTEA")
    } else {
        ("INTEGER PRIMARY KEY", "INTEGER", "BLOB")
    };
    let schema = format!(
        "CREATE TABLE deliveries (
            id {id}, forge TEXT NOT NULL, hook_id TEXT NOT NULL, delivery_id TEXT NOT NULL,
            event TEXT NOT NULL, headers TEXT NOT NULL, body {blob} NOT NULL,
            body_encoding TEXT NOT NULL DEFAULT 'identity', received_at {int} NOT NULL,
            state TEXT NOT NULL DEFAULT 'queued', attempts {int} NOT NULL DEFAULT 0,
            next_attempt_at {int} NOT NULL DEFAULT 0, last_error TEXT, lane TEXT, result TEXT,
            finished_at {int}, UNIQUE (forge, hook_id, delivery_id));
        CREATE INDEX deliveries_state ON deliveries (state, id);
        CREATE INDEX deliveries_queued ON deliveries (id) WHERE state = 'queued';"
    );
    let plain = br#"{"zen":"Keep it logically awesome."}"#.to_vec();
    let big = br#"{"ref":"refs/heads/main","commits":[]}"#.repeat(50);
    let packed = lz4_flex::compress_prepend_size(&big);
    (
        schema,
        [
            OldRow {
                delivery_id: "old-1",
                body: plain.clone(),
                stored: plain,
                encoding: "identity",
            },
            OldRow {
                delivery_id: "old-2",
                body: big,
                stored: packed,
                encoding: "lz4",
            },
        ],
    )
}

/// A fresh schema named `{prefix}_<pid>_<random>` in the test PostgreSQL
/// (`TRUNKWARDEN_TEST_PG`, else 127.0.0.1:5432/test); the URL selects it for every connection.
pub async fn fresh_pg_schema(prefix: &str) -> String {
    use sqlx::Connection as _;
    let base = std::env::var("TRUNKWARDEN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("{prefix}_{}_{}", std::process::id(), rand::random::<u32>());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (scripts/test starts one)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{base}?options=-c%20search_path%3D{schema}")
}

/// `trunkwarden ci diagnose - --format json` over `log`, as a CI system would pipe it.
pub fn diagnose(log: &str) -> serde_json::Value {
    use std::io::Write;
    let mut child = std::process::Command::new(git::BIN)
        .args(["ci", "diagnose", "-", "--format", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let log = log.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(log.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
