//! The durable delivery ledger and work queue: SQLite in WAL mode (the embedded default), or
//! PostgreSQL shared by several replicas (`--db postgres://…`).
//!
//! Every write goes through one writer task that commits in groups: requests that arrive while a
//! commit is in flight share the next one, so each acknowledged delivery is on disk (fsynced with
//! `synchronous=FULL`) while the cost of the sync is shared. Reads use a small pool; WAL lets them
//! run beside the writer.

pub mod worker;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::webhook::Forge;

/// Name of the SQLite file inside the data directory.
pub const DB_FILE: &str = "trunkwarden.sqlite3";

/// Most deliveries committed together; bounds the statement size and the batch's memory.
const MAX_BATCH: usize = 256;
const MAX_BATCH_BYTES: usize = 64 << 20;

/// A ledger operation that failed; the message names the operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the ledger writer has stopped")]
    WriterGone,
    #[error("delivery {id}: the stored body does not decompress")]
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

/// A verified delivery about to be stored.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub forge: Forge,
    pub hook_id: String,
    pub delivery_id: String,
    pub event: String,
    /// Kept headers as a JSON object.
    pub headers: String,
    pub body: Vec<u8>,
    /// Set by the store: how `body` is kept on disk.
    pub body_encoding: &'static str,
    /// Unix milliseconds.
    pub received_at: i64,
}

/// Whether an insert stored something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New(i64),
    /// The same `(forge, hook id, delivery id)` was stored before.
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
    pub body: Vec<u8>,
    pub received_at: i64,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub lane: Option<String>,
    /// What processing recorded: the normalized event, or why it was ignored.
    pub result: Option<serde_json::Value>,
    pub finished_at: Option<i64>,
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

/// Where the writer sends one operation's answer.
type Reply<T> = oneshot::Sender<Result<T, Arc<StoreError>>>;

enum Op {
    Insert(NewDelivery, Reply<Inserted>),
    Finish(Finish, Reply<()>),
    Requeue(i64, Reply<bool>),
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
    /// Every write goes through the single writer task.
    Sqlite { ops: mpsc::Sender<Op> },
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

/// The ledger's table in either dialect: `{id}`, `{int}` and `{blob}` name its types.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    id              {id},
    forge           TEXT    NOT NULL,
    hook_id         TEXT    NOT NULL,
    delivery_id     TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    headers         TEXT    NOT NULL,
    body            {blob}  NOT NULL,
    body_encoding   TEXT    NOT NULL DEFAULT 'identity',
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
CREATE INDEX IF NOT EXISTS deliveries_queued ON deliveries (id) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries (state, id);
";

/// The schema for SQLite (`id` is the rowid) or PostgreSQL.
fn schema(postgres: bool) -> String {
    let (id, int, blob) = if postgres {
        ("BIGSERIAL PRIMARY KEY", "BIGINT", "BYTEA")
    } else {
        ("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "BLOB")
    };
    SCHEMA
        .replace("{id}", id)
        .replace("{int}", int)
        .replace("{blob}", blob)
}

const COLUMNS: &str = "id, forge, hook_id, delivery_id, event, headers, body, body_encoding, received_at, state, attempts, next_attempt_at, last_error, lane, result, finished_at";

/// Largest body a stored row may decompress to; a corrupted size prefix cannot claim more.
const MAX_STORED_BODY: usize = 64 << 20;

/// Compresses a body for storage. Webhook JSON shrinks about fourfold, which is what the single
/// writer thread spends most of its time on (WAL frames and checkpoint copies); the compression
/// itself runs on the request's own thread, in parallel.
fn encode_body(body: Vec<u8>) -> (Vec<u8>, &'static str) {
    if body.len() < 256 {
        return (body, "identity");
    }
    let packed = lz4_flex::compress_prepend_size(&body);
    if packed.len() < body.len() {
        (packed, "lz4")
    } else {
        (body, "identity")
    }
}

fn decode_body(id: i64, body: Vec<u8>, encoding: &str) -> Result<Vec<u8>, StoreError> {
    match encoding {
        "identity" => Ok(body),
        "lz4" => {
            let claimed = body
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            if claimed.is_none_or(|n| n > MAX_STORED_BODY) {
                return Err(StoreError::Corrupt { id });
            }
            lz4_flex::decompress_size_prepended(&body).map_err(|_| StoreError::Corrupt { id })
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
        let opts = SqliteConnectOptions::new()
            .filename(data_dir.join(DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                Sync::Full => SqliteSynchronous::Full,
                Sync::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(10));
        let mut writer = SqliteConnection::connect_with(&opts).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(schema(false)))
            .execute(&mut writer)
            .await?;

        sqlx::any::install_default_drivers();
        let read_url = opts.clone().read_only(true).to_url_lossy();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .connect_with(AnyConnectOptions::from_url(&read_url)?)
            .await?;
        let (ops, rx) = mpsc::channel(16_384);
        let new_work = Arc::new(Notify::new());
        tokio::spawn(write_loop(writer, rx, new_work.clone(), sync));
        Ok(Store {
            pool,
            db: Db::Sqlite { ops },
            new_work,
        })
    }

    /// Connects to a PostgreSQL ledger several replicas share, creating its table if needed.
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::DbUrl(redact_url(url)));
        }
        sqlx::any::install_default_drivers();
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
    pub async fn insert(&self, mut d: NewDelivery) -> Result<Inserted, Arc<StoreError>> {
        let (body, encoding) = encode_body(std::mem::take(&mut d.body));
        d.body = body;
        d.body_encoding = encoding;
        if let Db::Postgres { .. } = self.db {
            let inserted = self.pg_insert(d).await.map_err(Arc::new)?;
            if matches!(inserted, Inserted::New(_)) {
                self.new_work.notify_one();
            }
            return Ok(inserted);
        }
        self.call(|tx| Op::Insert(d, tx)).await
    }

    /// Records the end of a processing attempt.
    pub async fn finish(&self, f: Finish) -> Result<(), Arc<StoreError>> {
        if let Db::Postgres { .. } = self.db {
            let mut sql = String::new();
            let mut args = sqlx::any::AnyArguments::default();
            let now = now_ms();
            finish_sql(&mut sql, &mut args, &f, now)
                .map_err(|e| Arc::new(StoreError::Db(sqlx::Error::Encode(e))))?;
            let sql = numbered(sql.trim_end_matches(';'));
            sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                .execute(&self.pool)
                .await
                .map_err(|e| Arc::new(e.into()))?;
            return Ok(());
        }
        self.call(|tx| Op::Finish(f, tx)).await
    }

    /// Puts a finished delivery back in the queue with a fresh attempt count; `false` when there
    /// is no such delivery or it is already queued.
    pub async fn requeue(&self, id: i64) -> Result<bool, Arc<StoreError>> {
        if let Db::Postgres { .. } = self.db {
            let n = sqlx::query(
                "UPDATE deliveries SET state = 'queued', attempts = 0, next_attempt_at = $1, last_error = NULL, finished_at = NULL WHERE id = $2 AND state <> 'queued'",
            )
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
        self.call(|tx| Op::Requeue(id, tx)).await
    }

    async fn pg_insert(&self, d: NewDelivery) -> Result<Inserted, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO deliveries (forge, hook_id, delivery_id, event, headers, body, body_encoding, received_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (forge, hook_id, delivery_id) DO NOTHING RETURNING id",
        )
        .bind(d.forge.as_str())
        .bind(d.hook_id)
        .bind(d.delivery_id)
        .bind(d.event)
        .bind(d.headers)
        .bind(d.body)
        .bind(d.body_encoding)
        .bind(d.received_at)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.map_or(Inserted::Duplicate, Inserted::New))
    }

    /// Hands one operation to the SQLite writer and waits for its answer.
    async fn call<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, Arc<StoreError>> {
        let Db::Sqlite { ops } = &self.db else {
            return Err(Arc::new(StoreError::WriterGone));
        };
        let (tx, rx) = oneshot::channel();
        ops.send(op(tx))
            .await
            .map_err(|_| Arc::new(StoreError::WriterGone))?;
        rx.await.map_err(|_| Arc::new(StoreError::WriterGone))?
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
            "SELECT {COLUMNS} FROM deliveries WHERE state = 'queued' AND id > $1 ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row_to_delivery).collect()
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
        let q = format!("SELECT {COLUMNS} FROM deliveries WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(row_to_delivery).transpose()
    }

    /// The newest deliveries, optionally in one state; bodies are not loaded.
    pub async fn list(
        &self,
        state: Option<State>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let empty = match self.db {
            Db::Sqlite { .. } => "x''",
            Db::Postgres { .. } => "''::bytea",
        };
        let cols = COLUMNS
            .replace("body,", &format!("{empty} AS body,"))
            .replace("body_encoding,", "'identity' AS body_encoding,");
        let q = format!(
            "SELECT {cols} FROM deliveries WHERE (CAST($1 AS TEXT) IS NULL OR state = $1) ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(state.map(State::as_str))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row_to_delivery).collect()
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

fn row_to_delivery(r: &AnyRow) -> Result<Delivery, StoreError> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(Delivery {
        id: r.try_get("id")?,
        forge: r.try_get("forge")?,
        hook_id: r.try_get("hook_id")?,
        delivery_id: r.try_get("delivery_id")?,
        event: r.try_get("event")?,
        headers: json(r.try_get("headers")?).unwrap_or(serde_json::Value::Null),
        body: decode_body(
            r.try_get("id")?,
            r.try_get("body")?,
            &r.try_get::<String, _>("body_encoding")?,
        )?,
        received_at: r.try_get("received_at")?,
        state: r.try_get("state")?,
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

/// The single writer: drains what is waiting, commits it as one transaction, answers everyone.
async fn write_loop(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Op>,
    new_work: Arc<Notify>,
    sync: Sync,
) {
    let mut batch: Vec<Op> = Vec::with_capacity(MAX_BATCH);
    let mut full_now = sync == Sync::Full;
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let mut bytes = 0;
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(op) => {
                    if let Op::Insert(d, _) = &op {
                        bytes += d.body.len();
                    }
                    batch.push(op);
                }
                Err(_) => break,
            }
        }
        // Only stored deliveries need the fsync; worker outcomes may be lost in a power cut and
        // are then simply processed again. The next full commit flushes them anyway.
        let want_full = sync == Sync::Full && batch.iter().any(|op| matches!(op, Op::Insert(..)));
        let pragma = (want_full != full_now).then_some(if want_full {
            "PRAGMA synchronous = FULL;"
        } else {
            "PRAGMA synchronous = NORMAL;"
        });
        let (queued_something, committed) = commit(&mut conn, &mut batch, pragma).await;
        if committed && pragma.is_some() {
            full_now = want_full;
        }
        if queued_something {
            new_work.notify_waiters();
            new_work.notify_one();
        }
    }
}

type Key = (Forge, String, String);

/// Commits one batch and answers every waiter; returns whether new work was queued and whether
/// the commit happened.
async fn commit(
    conn: &mut SqliteConnection,
    batch: &mut Vec<Op>,
    pragma: Option<&str>,
) -> (bool, bool) {
    let mut rows = Vec::new();
    let mut waiters: Vec<(Key, Reply<Inserted>)> = Vec::new();
    let mut others = Vec::new();
    for op in batch.drain(..) {
        match op {
            Op::Insert(d, tx) => {
                waiters.push(((d.forge, d.hook_id.clone(), d.delivery_id.clone()), tx));
                rows.push(d);
            }
            other => others.push(other),
        }
    }
    match run_batch(conn, rows, &others, pragma).await {
        Ok((ids, requeued)) => {
            let queued = !ids.is_empty() || !requeued.is_empty();
            let mut seen: HashMap<Key, ()> = HashMap::new();
            for (key, tx) in waiters {
                // Within one batch, the first of two identical deliveries is the new one.
                let answer = match ids.get(&key) {
                    Some(&id) if seen.insert(key, ()).is_none() => Inserted::New(id),
                    _ => Inserted::Duplicate,
                };
                let _ = tx.send(Ok(answer));
            }
            for op in others {
                match op {
                    Op::Finish(_, tx) => {
                        let _ = tx.send(Ok(()));
                    }
                    Op::Requeue(id, tx) => {
                        let _ = tx.send(Ok(requeued.contains(&id)));
                    }
                    Op::Insert(..) => {}
                }
            }
            (queued, true)
        }
        Err(e) => {
            tracing::error!(error = %e, "ledger commit failed");
            let e = Arc::new(e);
            for (_, tx) in waiters {
                let _ = tx.send(Err(e.clone()));
            }
            for op in others {
                match op {
                    Op::Finish(_, tx) => {
                        let _ = tx.send(Err(e.clone()));
                    }
                    Op::Requeue(_, tx) => {
                        let _ = tx.send(Err(e.clone()));
                    }
                    Op::Insert(..) => {}
                }
            }
            (false, false)
        }
    }
}

/// Splits `n` into chunks whose sizes are powers of two up to `max`, so the statements built
/// for them repeat and stay in the prepared-statement cache.
fn pow2_chunks(mut n: usize, max: usize) -> Vec<usize> {
    let mut out = Vec::new();
    while n > 0 {
        let size = max.min(1 << (usize::BITS - 1 - n.leading_zeros()));
        out.push(size);
        n -= size;
    }
    out
}

/// `INSERT … VALUES (…), (…) …` for `rows` deliveries; each stored row comes back tagged `new`.
fn insert_sql(sql: &mut String, rows: usize) {
    sql.push_str(
        "INSERT INTO deliveries (forge, hook_id, delivery_id, event, headers, body, body_encoding, received_at, next_attempt_at) VALUES ",
    );
    for i in 0..rows {
        sql.push_str(if i == 0 {
            "(?,?,?,?,?,?,?,?,?)"
        } else {
            ",(?,?,?,?,?,?,?,?,?)"
        });
    }
    sql.push_str(" ON CONFLICT (forge, hook_id, delivery_id) DO NOTHING RETURNING 'new', id, forge, hook_id, delivery_id;");
}

/// One `UPDATE … FROM (VALUES …)` marking `rows` deliveries done.
fn done_sql(sql: &mut String, rows: usize) {
    sql.push_str(
        "UPDATE deliveries SET state = 'done', attempts = attempts + 1, lane = v.column2, result = v.column3, last_error = NULL, finished_at = v.column4 FROM (VALUES ",
    );
    for i in 0..rows {
        sql.push_str(if i == 0 { "(?,?,?,?)" } else { ",(?,?,?,?)" });
    }
    sql.push_str(") AS v WHERE deliveries.id = v.column1;");
}

type Args = sqlx::sqlite::SqliteArguments;

/// Runs a whole batch as one multi-statement query — `BEGIN; …; COMMIT` — so the commit costs
/// one round trip to the connection's thread instead of one per statement (each a pair of thread
/// wake-ups, which on a small VM dominated an acknowledgement's latency).
async fn run_batch(
    conn: &mut SqliteConnection,
    rows: Vec<NewDelivery>,
    others: &[Op],
    pragma: Option<&str>,
) -> Result<(HashMap<Key, i64>, Vec<i64>), StoreError> {
    use sqlx::Arguments as _;
    let now = now_ms();
    let mut sql = String::with_capacity(1024);
    let mut args = Args::default();
    let bind_err = |e: sqlx::error::BoxDynError| StoreError::Db(sqlx::Error::Encode(e));
    if let Some(p) = pragma {
        sql.push_str(p);
    }
    sql.push_str("BEGIN IMMEDIATE;");
    let mut rows = rows.into_iter();
    for size in pow2_chunks(rows.len(), 64) {
        insert_sql(&mut sql, size);
        for d in rows.by_ref().take(size) {
            args.add(d.forge.as_str()).map_err(bind_err)?;
            args.add(d.hook_id).map_err(bind_err)?;
            args.add(d.delivery_id).map_err(bind_err)?;
            args.add(d.event).map_err(bind_err)?;
            args.add(d.headers).map_err(bind_err)?;
            args.add(d.body).map_err(bind_err)?;
            args.add(d.body_encoding).map_err(bind_err)?;
            args.add(d.received_at).map_err(bind_err)?;
            args.add(d.received_at).map_err(bind_err)?;
        }
    }
    let done: Vec<(i64, &String, &String)> = others
        .iter()
        .filter_map(|op| match op {
            Op::Finish(Finish::Done { id, lane, result }, _) => Some((*id, lane, result)),
            _ => None,
        })
        .collect();
    let mut done_iter = done.into_iter();
    for size in pow2_chunks(done_iter.len(), 64) {
        done_sql(&mut sql, size);
        for (id, lane, result) in done_iter.by_ref().take(size) {
            args.add(id).map_err(bind_err)?;
            args.add(lane.clone()).map_err(bind_err)?;
            args.add(result.clone()).map_err(bind_err)?;
            args.add(now).map_err(bind_err)?;
        }
    }
    for op in others {
        match op {
            // `Done` is marked in bulk above.
            Op::Finish(Finish::Done { .. }, _) => {}
            Op::Finish(f, _) => finish_sql(&mut sql, &mut args, f, now).map_err(bind_err)?,
            Op::Requeue(id, _) => {
                sql.push_str(
                    "UPDATE deliveries SET state = 'queued', attempts = 0, next_attempt_at = ?, last_error = NULL, finished_at = NULL WHERE id = ? AND state <> 'queued' RETURNING 'requeued', id, '', '', '';",
                );
                args.add(now).map_err(bind_err)?;
                args.add(*id).map_err(bind_err)?;
            }
            Op::Insert(..) => {}
        }
    }
    sql.push_str("COMMIT;");
    let result = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
        .fetch_all(&mut *conn)
        .await;
    let returned = match result {
        Ok(r) => r,
        Err(e) => {
            // A statement failed inside the transaction: undo whatever ran before it.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            return Err(e.into());
        }
    };
    let mut ids = HashMap::new();
    let mut requeued = Vec::new();
    for row in returned {
        let tag: String = row.try_get(0)?;
        if tag == "requeued" {
            requeued.push(row.try_get(1)?);
            continue;
        }
        let forge: String = row.try_get(2)?;
        let Ok(forge) = forge.parse::<Forge>() else {
            continue;
        };
        ids.insert((forge, row.try_get(3)?, row.try_get(4)?), row.try_get(1)?);
    }
    Ok((ids, requeued))
}

/// Appends the statement recording one outcome (SQLite batches mark `Done` in bulk instead).
fn finish_sql<A>(
    sql: &mut String,
    args: &mut A,
    f: &Finish,
    now: i64,
) -> Result<(), sqlx::error::BoxDynError>
where
    A: sqlx::Arguments,
    i64: sqlx::Encode<'static, A::Database> + sqlx::Type<A::Database>,
    String: sqlx::Encode<'static, A::Database> + sqlx::Type<A::Database>,
{
    match f {
        Finish::Done { id, lane, result } => {
            sql.push_str(
                "UPDATE deliveries SET state = 'done', attempts = attempts + 1, lane = ?, result = ?, last_error = NULL, finished_at = ? WHERE id = ?;",
            );
            args.add(lane.clone())?;
            args.add(result.clone())?;
            args.add(now)?;
            args.add(*id)?;
        }
        Finish::Ignored { id, reason } => {
            sql.push_str(
                "UPDATE deliveries SET state = 'ignored', result = ?, finished_at = ? WHERE id = ?;",
            );
            args.add(serde_json::json!({ "ignored": reason }).to_string())?;
            args.add(now)?;
            args.add(*id)?;
        }
        Finish::Retry {
            id,
            attempts,
            next_attempt_at,
            error,
        } => {
            sql.push_str(
                "UPDATE deliveries SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?;",
            );
            args.add(*attempts)?;
            args.add(*next_attempt_at)?;
            args.add(error.clone())?;
            args.add(*id)?;
        }
        Finish::Dead {
            id,
            attempts,
            error,
        } => {
            sql.push_str(
                "UPDATE deliveries SET state = 'dead', attempts = ?, last_error = ?, finished_at = ? WHERE id = ?;",
            );
            args.add(*attempts)?;
            args.add(error.clone())?;
            args.add(now)?;
            args.add(*id)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_corruption_is_an_error() {
        let json = br#"{"ref":"refs/heads/main","commits":[]}"#.repeat(40);
        let (packed, enc) = encode_body(json.clone());
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
        assert_eq!(
            encode_body(b"tiny".to_vec()),
            (b"tiny".to_vec(), "identity")
        );
    }

    #[test]
    fn chunks_are_powers_of_two_that_add_up() {
        assert_eq!(pow2_chunks(0, 64), Vec::<usize>::new());
        assert_eq!(pow2_chunks(13, 64), vec![8, 4, 1]);
        assert_eq!(pow2_chunks(200, 64), vec![64, 64, 64, 8]);
        for n in 0..300 {
            let c = pow2_chunks(n, 64);
            assert_eq!(c.iter().sum::<usize>(), n);
            assert!(c.iter().all(|s| s.is_power_of_two() && *s <= 64));
        }
    }
}
