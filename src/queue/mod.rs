//! The durable delivery ledger and work queue: SQLite in WAL mode (the embedded default), or
//! PostgreSQL shared by several replicas (`--db postgres://…`).
//!
//! With SQLite every write goes through one connection that commits in groups (see `sqlite`), and
//! with `--sync full` the WAL is flushed before a delivery is acknowledged, one flush shared by
//! every group committed before it. Reads use a small pool; WAL lets them run beside the writer. Deliveries the
//! writer commits are handed to the dispatcher in memory, so they are not read back.

pub mod retention;
mod sqlite;
pub mod worker;

pub use sqlite::Fed;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::Notify;

use crate::event::ForgeKind;

/// Name of the SQLite file inside the data directory.
pub const DB_FILE: &str = "trunkwarden.sqlite3";

/// A ledger operation that failed; the message names the operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot start the ledger's checkpoint thread: {0}")]
    Thread(String),
    #[error("cannot flush the ledger to disk: {0}")]
    Flush(std::io::Error),
    #[error("the ledger writer has stopped")]
    WriterGone,
    #[error("pruning the ledger: {0}")]
    Pruning(String),
    #[error("delivery {id}: the stored body is missing or does not decompress")]
    Corrupt { id: i64 },
    #[error("--db `{0}`: only postgres:// URLs are supported (SQLite lives in --data-dir)")]
    DbUrl(String),
    #[error(
        "--db `{0}` holds a password; put the URL in TRUNKWARDEN_DB (or the password in PGPASSWORD or ~/.pgpass), never on the command line"
    )]
    PasswordOnArgv(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Sync {
    /// fsync on every commit: an acknowledged delivery survives a power loss.
    Full,
    /// fsync at checkpoints only: an acknowledged delivery survives a process crash.
    Normal,
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting to be processed, or waiting for a retry.
    Queued,
    /// Processed by the handlers.
    Done,
    /// Verified but not something the bot acts on.
    Ignored,
    /// Failed permanently or too often; waits for an operator's `deliveries retry`.
    Dead,
}

impl State {
    /// Spelling in the database and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Done => "done",
            State::Ignored => "ignored",
            State::Dead => "dead",
        }
    }
}

impl FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [State::Queued, State::Done, State::Ignored, State::Dead]
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown delivery state `{s}`"))
    }
}

/// Which deliveries a page lists; every field unset lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub forge: Option<ForgeKind>,
    pub event: Option<String>,
    pub state: Option<State>,
}

/// A verified delivery about to be stored.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub forge: ForgeKind,
    pub hook_id: String,
    pub delivery_id: String,
    pub event: String,
    /// Kept headers as a JSON object.
    pub headers: String,
    /// The body as received; the store decides how to keep it on disk.
    pub body: Bytes,
    /// Unix milliseconds.
    pub received_at: i64,
}

/// Whether an insert stored something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New(i64),
    /// The same forge and delivery id were stored before.
    Duplicate,
}

/// A stored delivery, as the workers and operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub forge: String,
    pub hook_id: String,
    pub delivery_id: String,
    pub event: String,
    pub headers: serde_json::Value,
    #[serde(skip)]
    pub body: Bytes,
    /// The retention removed the body; the row stays for the dedupe and the record.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub body_pruned: bool,
    #[serde(serialize_with = "rfc3339::at")]
    pub received_at: i64,
    pub state: String,
    pub attempts: i64,
    #[serde(serialize_with = "rfc3339::at")]
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub lane: Option<String>,
    /// What processing recorded: the normalized event, or why it was ignored.
    pub result: Option<serde_json::Value>,
    #[serde(serialize_with = "rfc3339::maybe")]
    pub finished_at: Option<i64>,
}

/// Times in JSON output as RFC 3339 (UTC, milliseconds), as people and log tools read them;
/// the ledger keeps Unix milliseconds.
mod rfc3339 {
    use serde::Serializer;

    fn text(ms: i64) -> String {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    pub fn at<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&text(*ms))
    }

    pub fn maybe<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(&text(*ms)),
            None => s.serialize_none(),
        }
    }
}

impl Delivery {
    /// A kept header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(serde_json::Value::as_str)
    }
}

/// The end of one processing attempt.
#[derive(Debug, Clone)]
pub enum Finish {
    Done {
        id: i64,
        lane: String,
        result: String,
    },
    Ignored {
        id: i64,
        reason: String,
    },
    Retry {
        id: i64,
        attempts: i64,
        next_attempt_at: i64,
        error: String,
    },
    Dead {
        id: i64,
        attempts: i64,
        error: String,
    },
}

/// The ledger: a pool for reads (and PostgreSQL's writes), the SQLite writer, and a signal for
/// new work.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    db: Db,
    new_work: Arc<Notify>,
}

#[derive(Clone)]
enum Db {
    /// Every write goes through the single writer.
    Sqlite { writer: Arc<sqlite::Writer> },
    /// PostgreSQL serializes writers itself; `url` opens the leader's own connection.
    Postgres { url: String },
}

/// Advisory-lock key of the replica that dispatches deliveries. Advisory locks belong to the
/// whole database, so the key names the schema: two ledgers in one database do not collide.
const LEADER_KEY: &str = "hashtext(current_schema() || ':trunkwarden:dispatcher')";
/// Advisory-lock key that serializes schema creation between replicas starting together.
const SCHEMA_KEY: &str = "hashtext(current_schema() || ':trunkwarden:schema')";

/// The right to dispatch deliveries. With SQLite the process is alone; with PostgreSQL exactly
/// one replica holds it (a session advisory lock, released when its connection dies), so the
/// per-repository lanes stay in one process and a replica that dies hands over to another.
pub struct Leader {
    conn: Option<sqlx::AnyConnection>,
}

impl Leader {
    /// Whether this process still holds the lock (its connection answers).
    pub async fn holds(&mut self) -> bool {
        match &mut self.conn {
            None => true,
            Some(c) => sqlx::query("SELECT 1").execute(&mut *c).await.is_ok(),
        }
    }
}

/// The PostgreSQL URL from `--db` or `TRUNKWARDEN_DB`. A URL holding a password is accepted only
/// from the environment: the command line is visible to every user of the machine.
pub fn database_url(
    flag: Option<String>,
    env: Option<String>,
) -> Result<Option<String>, StoreError> {
    if let Some(url) = &flag
        && url::Url::parse(url).is_ok_and(|u| u.password().is_some())
    {
        return Err(StoreError::PasswordOnArgv(redact_url(url)));
    }
    let url = flag.or(env.filter(|e| !e.is_empty()));
    match url {
        Some(u) if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) => {
            Err(StoreError::DbUrl(redact_url(&u)))
        }
        u => Ok(u),
    }
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The ledger's tables in either dialect: `{id}`, `{int}` and `{blob}` name its types.
///
/// Bodies live in their own table: a delivery's row is rewritten when its outcome is recorded,
/// and with the body beside it every outcome rewrote a whole page (a compressed push is over
/// half of one), so the WAL and checkpoints carried each body three times.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    id              {id},
    forge           TEXT    NOT NULL,
    hook_id         TEXT    NOT NULL,
    delivery_id     TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    headers         TEXT    NOT NULL,
    received_at     {int}   NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'queued',
    attempts        {int}   NOT NULL DEFAULT 0,
    next_attempt_at {int}   NOT NULL DEFAULT 0,
    last_error      TEXT,
    lane            TEXT,
    result          TEXT,
    finished_at     {int},
    UNIQUE (forge, hook_id, delivery_id)
);
CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries (state, id);
DROP INDEX IF EXISTS deliveries_queued;
CREATE TABLE IF NOT EXISTS delivery_bodies (
    id       {int}   PRIMARY KEY,
    body     {blob}  NOT NULL,
    encoding TEXT    NOT NULL
);
";

/// Moves the bodies of a ledger written before they had their own table (which holds the
/// `body` column this looks for) and drops the old columns, in the schema's transaction.
const MOVE_BODIES: &str = "
INSERT INTO delivery_bodies (id, body, encoding) SELECT id, body, body_encoding FROM deliveries;
ALTER TABLE deliveries DROP COLUMN body;
ALTER TABLE deliveries DROP COLUMN body_encoding;
";

/// The schema for SQLite (`id` is the rowid) or PostgreSQL.
fn schema(postgres: bool) -> String {
    let (id, int, blob) = if postgres {
        ("BIGSERIAL PRIMARY KEY", "BIGINT", "BYTEA")
    } else {
        // Not AUTOINCREMENT: ids only grow as long as no row is deleted, and none is, while
        // AUTOINCREMENT writes its counter's page on every commit.
        ("INTEGER PRIMARY KEY", "INTEGER", "BLOB")
    };
    SCHEMA
        .replace("{id}", id)
        .replace("{int}", int)
        .replace("{blob}", blob)
}

const COLUMNS: &str = "d.id, d.forge, d.hook_id, d.delivery_id, d.event, d.headers, d.received_at, d.state, d.attempts, d.next_attempt_at, d.last_error, d.lane, d.result, d.finished_at";

/// Deliveries with their bodies; a missing body reads as NULL and is reported as corrupt.
const WITH_BODIES: &str = "deliveries d LEFT JOIN delivery_bodies b ON b.id = d.id";

/// Largest body a stored row may decompress to; a corrupted size prefix cannot claim more.
const MAX_STORED_BODY: usize = 64 << 20;

/// Compresses a body for storage. Webhook JSON shrinks about fourfold, which is what the single
/// writer thread spends most of its time on (WAL frames and checkpoint copies); the compression
/// itself runs on the request's own thread, in parallel.
/// `None` keeps the body as it is.
fn encode_body(body: &[u8]) -> (Option<Vec<u8>>, &'static str) {
    if body.len() < 256 {
        return (None, "identity");
    }
    let packed = lz4_flex::compress_prepend_size(body);
    if packed.len() < body.len() {
        (Some(packed), "lz4")
    } else {
        (None, "identity")
    }
}

fn decode_body(id: i64, body: Vec<u8>, encoding: &str) -> Result<Bytes, StoreError> {
    match encoding {
        "identity" => Ok(body.into()),
        "lz4" => {
            let claimed = body
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            if claimed.is_none_or(|n| n > MAX_STORED_BODY) {
                return Err(StoreError::Corrupt { id });
            }
            lz4_flex::decompress_size_prepended(&body)
                .map(Bytes::from)
                .map_err(|_| StoreError::Corrupt { id })
        }
        _ => Err(StoreError::Corrupt { id }),
    }
}

impl Store {
    /// Opens (creating if needed) the ledger in a data directory and starts its writer.
    pub async fn open(data_dir: &Path, sync: Sync) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let new_work = Arc::new(Notify::new());
        let writer = sqlite::Writer::open(&path, &schema(false), sync, new_work.clone())?;
        sqlx::any::install_default_drivers();
        let read_url = SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10))
            .to_url_lossy();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .connect_with(AnyConnectOptions::from_url(&read_url)?)
            .await?;
        Ok(Store {
            pool,
            db: Db::Sqlite {
                writer: Arc::new(writer),
            },
            new_work,
        })
    }

    /// Connects to a PostgreSQL ledger several replicas share, creating its table if needed.
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::DbUrl(redact_url(url)));
        }
        sqlx::any::install_default_drivers();
        // One plain connection first: a pool retries until its acquire timeout and then says
        // only "timed out"; this says why (refused, authentication, DNS) within seconds.
        {
            use sqlx::Connection as _;
            let probe =
                tokio::time::timeout(Duration::from_secs(10), sqlx::AnyConnection::connect(url))
                    .await
                    .map_err(|_| {
                        StoreError::Db(sqlx::Error::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no answer from {} within 10 s", redact_url(url)),
                        )))
                    })??;
            let _ = probe.close().await;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .connect(url)
            .await?;
        let mut tx = pool.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT pg_advisory_xact_lock({SCHEMA_KEY})"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(schema(true)))
            .execute(&mut *tx)
            .await?;
        let old: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'deliveries' AND column_name = 'body'",
        )
        .fetch_one(&mut *tx)
        .await?;
        if old > 0 {
            sqlx::raw_sql(MOVE_BODIES).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Store {
            pool,
            db: Db::Postgres {
                url: url.to_owned(),
            },
            new_work: Arc::new(Notify::new()),
        })
    }

    /// The ledger `--db` names, else the SQLite file in the data directory.
    pub async fn connect(
        db: Option<&str>,
        data_dir: &Path,
        sync: Sync,
    ) -> Result<Store, StoreError> {
        match db {
            Some(url) => Store::open_postgres(url).await,
            None => Store::open(data_dir, sync).await,
        }
    }

    /// Waits until this process may dispatch deliveries (at once with SQLite).
    /// `waiting` runs about once a second while another replica leads.
    pub async fn lead(&self, waiting: impl Fn()) -> Result<Leader, StoreError> {
        let Db::Postgres { url } = &self.db else {
            return Ok(Leader { conn: None });
        };
        let mut announced = false;
        loop {
            let mut conn = sqlx::AnyConnection::connect(url).await?;
            let got: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT pg_try_advisory_lock({LEADER_KEY})"
            )))
            .fetch_one(&mut conn)
            .await?;
            if got {
                tracing::info!("this replica dispatches deliveries");
                return Ok(Leader { conn: Some(conn) });
            }
            if !announced {
                tracing::info!("another replica dispatches deliveries; standing by");
                announced = true;
            }
            drop(conn);
            for _ in 0..2 {
                waiting();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// How long the dispatcher sleeps without a signal: other replicas' deliveries reach a
    /// PostgreSQL leader only by polling.
    pub fn idle_poll(&self) -> Duration {
        match self.db {
            Db::Sqlite { .. } => Duration::from_secs(1),
            Db::Postgres { .. } => Duration::from_millis(200),
        }
    }

    /// Stores a verified delivery durably; returns once it is committed.
    pub async fn insert(&self, d: NewDelivery) -> Result<Inserted, Arc<StoreError>> {
        let (packed, encoding) = encode_body(&d.body);
        let writer = match &self.db {
            Db::Sqlite { writer } => writer,
            Db::Postgres { .. } => {
                let body = packed.unwrap_or_else(|| d.body.to_vec());
                let inserted = self.pg_insert(d, body, encoding).await.map_err(Arc::new)?;
                if matches!(inserted, Inserted::New(_)) {
                    self.new_work.notify_one();
                }
                return Ok(inserted);
            }
        };
        let staged = sqlite::Staged {
            d,
            packed,
            encoding,
        };
        match writer.call(sqlite::Write::Insert(Box::new(staged))).await? {
            sqlite::Answer::Inserted(i) => Ok(i),
            _ => Err(Arc::new(StoreError::WriterGone)),
        }
    }

    /// Records the end of a processing attempt.
    pub async fn finish(&self, f: Finish) -> Result<(), Arc<StoreError>> {
        self.finish_all(vec![f]).await
    }

    /// Records several outcomes in one transaction, in order.
    pub async fn finish_all(&self, finishes: Vec<Finish>) -> Result<(), Arc<StoreError>> {
        let writer = match &self.db {
            Db::Sqlite { writer } => writer,
            Db::Postgres { .. } => {
                let now = now_ms();
                let mut tx = self.pool.begin().await.map_err(|e| Arc::new(e.into()))?;
                for f in &finishes {
                    let (sql, args) = finish_statement(f, now);
                    let mut q = sqlx::query(sql);
                    for a in args {
                        q = match a {
                            Param::Int(i) => q.bind(i),
                            Param::Text(t) => q.bind(t),
                        };
                    }
                    q.execute(&mut *tx).await.map_err(|e| Arc::new(e.into()))?;
                }
                tx.commit().await.map_err(|e| Arc::new(e.into()))?;
                return Ok(());
            }
        };
        writer
            .call(sqlite::Write::Finish(finishes))
            .await
            .map(|_| ())
    }

    /// Puts a finished delivery back in the queue with a fresh attempt count; `false` when there
    /// is no such delivery or it is already queued.
    pub async fn requeue(&self, id: i64) -> Result<bool, Arc<StoreError>> {
        let writer = match &self.db {
            Db::Sqlite { writer } => writer,
            Db::Postgres { .. } => {
                let n = sqlx::query(REQUEUE_SQL)
                    .bind(now_ms())
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| Arc::new(e.into()))?
                    .rows_affected();
                if n > 0 {
                    self.new_work.notify_one();
                }
                return Ok(n > 0);
            }
        };
        match writer.call(sqlite::Write::Requeue(id)).await? {
            sqlite::Answer::Requeued(r) => Ok(r),
            _ => Err(Arc::new(StoreError::WriterGone)),
        }
    }

    async fn pg_insert(
        &self,
        d: NewDelivery,
        body: Vec<u8>,
        encoding: &'static str,
    ) -> Result<Inserted, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(PG_INSERT_SQL)
            .bind(d.forge.as_str())
            .bind(d.hook_id)
            .bind(d.delivery_id)
            .bind(d.event)
            .bind(d.headers)
            .bind(d.received_at)
            .bind(body)
            .bind(encoding)
            .fetch_optional(&self.pool)
            .await?;
        Ok(id.map_or(Inserted::Duplicate, Inserted::New))
    }

    /// Starts handing committed deliveries to this process's dispatcher in memory (SQLite only:
    /// PostgreSQL's leader also dispatches what other replicas stored, so it reads the ledger).
    pub fn subscribe(&self) -> bool {
        match &self.db {
            Db::Sqlite { writer } => {
                writer.subscribe();
                true
            }
            Db::Postgres { .. } => false,
        }
    }

    /// Committed deliveries not yet taken, once [`Store::subscribe`] said yes.
    pub fn take_feed(&self) -> Option<Fed> {
        match &self.db {
            Db::Sqlite { writer } => Some(writer.take_feed()),
            Db::Postgres { .. } => None,
        }
    }

    /// Signalled after every commit that queued something.
    pub fn new_work(&self) -> Arc<Notify> {
        self.new_work.clone()
    }

    /// Queued deliveries after `after_id`, oldest first.
    pub async fn queued_after(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let q = format!(
            "SELECT {COLUMNS}, b.body, b.encoding FROM {WITH_BODIES} WHERE d.state = 'queued' AND d.id > $1 ORDER BY d.id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| row_to_delivery(r, true)).collect()
    }

    /// Ids of queued deliveries up to `up_to`, for finding ones an operator put back.
    pub async fn queued_ids_up_to(&self, up_to: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM deliveries WHERE state = 'queued' AND id <= $1 ORDER BY id LIMIT 1000",
        )
        .bind(up_to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get::<i64, _>(0)).collect())
    }

    /// One delivery, body included.
    pub async fn get(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        let q = format!("SELECT {COLUMNS}, b.body, b.encoding FROM {WITH_BODIES} WHERE d.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| row_to_delivery(r, true)).transpose()
    }

    /// The newest deliveries, optionally in one state; bodies are not loaded.
    pub async fn list(
        &self,
        state: Option<State>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let q = format!(
            "SELECT {COLUMNS} FROM deliveries d WHERE (CAST($1 AS TEXT) IS NULL OR d.state = $1) ORDER BY d.id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(state.map(State::as_str))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| row_to_delivery(r, false)).collect()
    }

    /// A page of deliveries, newest first, older than `before` (an id) when given, narrowed by
    /// forge, event and state; bodies are not loaded. Keyed on the id, so every page costs the
    /// same however deep it is.
    pub async fn page(
        &self,
        filter: &Filter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let q = format!(
            "SELECT {COLUMNS} FROM deliveries d WHERE (CAST($1 AS TEXT) IS NULL OR d.state = $1) AND (CAST($2 AS TEXT) IS NULL OR d.forge = $2) AND (CAST($3 AS TEXT) IS NULL OR d.event = $3) AND d.id < $4 ORDER BY d.id DESC LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(filter.state.map(State::as_str))
            .bind(filter.forge.map(ForgeKind::as_str))
            .bind(filter.event.as_deref())
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| row_to_delivery(r, false)).collect()
    }

    /// The newest delivery's id (0 for none): moves whenever one arrives.
    pub async fn newest_id(&self) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM deliveries")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// Number of deliveries per state.
    pub async fn counts(&self) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
            .collect())
    }

    /// A cheap query that proves the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// A row of `COLUMNS`, followed by the body and its encoding when `with_body`.
fn row_to_delivery(r: &AnyRow, with_body: bool) -> Result<Delivery, StoreError> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let id: i64 = r.try_get("id")?;
    let state: String = r.try_get("state")?;
    let mut body_pruned = false;
    let body = if with_body {
        match (
            r.try_get("body")?,
            r.try_get::<Option<String>, _>("encoding")?,
        ) {
            (Some(body), Some(encoding)) => decode_body(id, body, &encoding)?,
            // The retention removes the bodies of finished deliveries first.
            (None, None) if state != "queued" => {
                body_pruned = true;
                Bytes::new()
            }
            _ => return Err(StoreError::Corrupt { id }),
        }
    } else {
        Bytes::new()
    };
    Ok(Delivery {
        id,
        forge: r.try_get("forge")?,
        hook_id: r.try_get("hook_id")?,
        delivery_id: r.try_get("delivery_id")?,
        event: r.try_get("event")?,
        headers: json(r.try_get("headers")?).unwrap_or(serde_json::Value::Null),
        body,
        received_at: r.try_get("received_at")?,
        state,
        body_pruned,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_error: r.try_get("last_error")?,
        lane: r.try_get("lane")?,
        result: json(r.try_get("result")?),
        finished_at: r.try_get("finished_at")?,
    })
}

/// `?` placeholders as `$1, $2, …`, which PostgreSQL needs and SQLite reads too (the ledgers'
/// statements hold no `?` in text).
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Stores a delivery's row; `$6` (received) is also its first `next_attempt_at`. Answers the
/// new id, or no row for a duplicate.
const INSERT_SQL: &str = "INSERT INTO deliveries (forge, hook_id, delivery_id, event, headers, received_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (forge, hook_id, delivery_id) DO NOTHING RETURNING id";

/// Stores the body of the delivery `INSERT_SQL` just stored.
const INSERT_BODY_SQL: &str =
    "INSERT INTO delivery_bodies (id, body, encoding) VALUES ($1, $2, $3)";

/// Both in one PostgreSQL statement (SQLite has no writing CTEs): `$7` body, `$8` encoding.
const PG_INSERT_SQL: &str = "WITH d AS (INSERT INTO deliveries (forge, hook_id, delivery_id, event, headers, received_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (forge, hook_id, delivery_id) DO NOTHING RETURNING id) INSERT INTO delivery_bodies (id, body, encoding) SELECT id, $7, $8 FROM d RETURNING id";

/// Puts a finished delivery back in the queue: `$1` now, `$2` its id.
/// A delivery whose body the retention pruned has nothing left to process: it is not requeued.
const REQUEUE_SQL: &str = "UPDATE deliveries SET state = 'queued', attempts = 0, next_attempt_at = $1, last_error = NULL, finished_at = NULL WHERE id = $2 AND state <> 'queued' AND EXISTS (SELECT 1 FROM delivery_bodies b WHERE b.id = $2)";

/// A statement parameter either database binds.
enum Param {
    Int(i64),
    Text(String),
}

/// The statement recording one outcome, for either database.
fn finish_statement(f: &Finish, now: i64) -> (&'static str, Vec<Param>) {
    use Param::{Int, Text};
    match f {
        Finish::Done { id, lane, result } => (
            "UPDATE deliveries SET state = 'done', attempts = attempts + 1, lane = $1, result = $2, last_error = NULL, finished_at = $3 WHERE id = $4",
            vec![Text(lane.clone()), Text(result.clone()), Int(now), Int(*id)],
        ),
        Finish::Ignored { id, reason } => (
            "UPDATE deliveries SET state = 'ignored', result = $1, finished_at = $2 WHERE id = $3",
            vec![
                Text(serde_json::json!({ "ignored": reason }).to_string()),
                Int(now),
                Int(*id),
            ],
        ),
        Finish::Retry {
            id,
            attempts,
            next_attempt_at,
            error,
        } => (
            "UPDATE deliveries SET attempts = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4",
            vec![
                Int(*attempts),
                Int(*next_attempt_at),
                Text(error.clone()),
                Int(*id),
            ],
        ),
        Finish::Dead {
            id,
            attempts,
            error,
        } => (
            "UPDATE deliveries SET state = 'dead', attempts = $1, last_error = $2, finished_at = $3 WHERE id = $4",
            vec![Int(*attempts), Text(error.clone()), Int(now), Int(*id)],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_corruption_is_an_error() {
        let json = br#"{"ref":"refs/heads/main","commits":[]}"#.repeat(40);
        let (packed, enc) = encode_body(&json);
        let packed = packed.unwrap();
        assert_eq!(enc, "lz4");
        assert!(packed.len() * 3 < json.len());
        assert_eq!(decode_body(1, packed.clone(), enc).unwrap(), json);
        let mut bad = packed.clone();
        bad[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_body(1, bad, "lz4"),
            Err(StoreError::Corrupt { id: 1 })
        ));
        assert!(decode_body(1, packed[..10].to_vec(), "lz4").is_err());
        assert_eq!(encode_body(b"tiny"), (None, "identity"));
    }
}
