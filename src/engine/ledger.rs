//! The engine's own records, behind named operations: effects done once, claims on effects in
//! flight (so two replicas never perform one), failures backed off, pull requests claimed for
//! tasks, pending merges, blocked tasks, comments seen, command lines planned, red heads, and
//! the repositories the resync covers. No SQL lives anywhere else in the engine.
//!
//! One schema for SQLite (a file per forge, the default) and PostgreSQL (shared by replicas and
//! forges): every table is keyed by the forge first. Placeholders are written `?` and numbered
//! `$1, $2, …` for both databases.
//!
//! An effect's key is claimed *before* the forge is called; the claim is released as done, as
//! refused (with the time of the next attempt), or — after a crash — taken over by another
//! process once it is stale: at once on SQLite, whose file belongs to one process, and after
//! [`LEASE_MS`] on PostgreSQL, where the claimer may still be running (a forge request times
//! out long before).

use std::path::Path;
use std::sync::Arc;

use sqlx::ConnectOptions as _;
use sqlx::sqlite::SqliteConnectOptions;

/// Milliseconds a claim by another live replica is respected before it counts as abandoned.
pub const LEASE_MS: i64 = 5 * 60 * 1000;

/// First wait after an effect the forge refused (403, 404, 422 …); doubles up to
/// [`BACKOFF_MAX_MS`].
pub const BACKOFF_MS: i64 = 60 * 1000;
/// The longest wait between attempts of a refused effect.
pub const BACKOFF_MAX_MS: i64 = 6 * 60 * 60 * 1000;

/// Time as the engine reads it; tests and the simulation move it by hand.
pub trait Clock: Send + Sync {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// RFC 3339 (seconds, UTC) of a clock reading, as the task table writes timestamps.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// What claiming an effect's key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This process holds the key now and performs the effect; `first` when no process held
    /// it before, so nothing of the effect can have reached the forge yet.
    Mine { first: bool },
    /// The effect was performed before.
    Done,
    /// Another live replica is performing it.
    Busy,
    /// The forge refused it; the next attempt is not before `retry_at` (Unix ms).
    Deferred { retry_at: i64, error: String },
}

/// The ledger's tables; `forge` leads every key.
const SCHEMA: [&str; 12] = [
    "CREATE TABLE IF NOT EXISTS engine_effects (forge TEXT NOT NULL, key TEXT NOT NULL, done_at TEXT NOT NULL, PRIMARY KEY (forge, key))",
    "CREATE TABLE IF NOT EXISTS engine_effect_claims (forge TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL, claimed_at BIGINT NOT NULL, attempts BIGINT NOT NULL, retry_at BIGINT NOT NULL, last_error TEXT, PRIMARY KEY (forge, key))",
    "CREATE TABLE IF NOT EXISTS engine_claims (forge TEXT NOT NULL, repo TEXT NOT NULL, pr BIGINT NOT NULL, task TEXT NOT NULL, PRIMARY KEY (forge, repo, pr))",
    "CREATE TABLE IF NOT EXISTS engine_merges (forge TEXT NOT NULL, repo TEXT NOT NULL, pr BIGINT NOT NULL, head TEXT NOT NULL, requested_by TEXT NOT NULL, PRIMARY KEY (forge, repo, pr))",
    "CREATE TABLE IF NOT EXISTS engine_blocked (forge TEXT NOT NULL, repo TEXT NOT NULL, task TEXT NOT NULL, previous TEXT NOT NULL, PRIMARY KEY (forge, repo, task))",
    "CREATE TABLE IF NOT EXISTS engine_comments (forge TEXT NOT NULL, repo TEXT NOT NULL, id BIGINT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (forge, repo, id))",
    "CREATE TABLE IF NOT EXISTS engine_command_lines (forge TEXT NOT NULL, repo TEXT NOT NULL, key TEXT NOT NULL, plan TEXT NOT NULL, done BIGINT NOT NULL, PRIMARY KEY (forge, repo, key))",
    "CREATE TABLE IF NOT EXISTS engine_red_heads (forge TEXT NOT NULL, repo TEXT NOT NULL, pr BIGINT NOT NULL, sha TEXT NOT NULL, PRIMARY KEY (forge, repo, pr, sha))",
    "CREATE TABLE IF NOT EXISTS engine_pending_since (forge TEXT NOT NULL, repo TEXT NOT NULL, sha TEXT NOT NULL, since BIGINT NOT NULL, PRIMARY KEY (forge, repo, sha))",
    "CREATE TABLE IF NOT EXISTS engine_repos (forge TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (forge, name))",
    "CREATE TABLE IF NOT EXISTS engine_said (forge TEXT NOT NULL, repo TEXT NOT NULL, thread TEXT NOT NULL, marker TEXT NOT NULL, id BIGINT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (forge, repo, thread, marker))",
    "CREATE TABLE IF NOT EXISTS engine_diagnoses (forge TEXT NOT NULL, repo TEXT NOT NULL, sha TEXT NOT NULL, context TEXT NOT NULL, detail TEXT NOT NULL, flaky BIGINT NOT NULL, PRIMARY KEY (forge, repo, sha, context))",
];

/// Tables of ledgers written before the forge was a column (a table per forge on PostgreSQL,
/// `engine_<forge>_<name>`; unprefixed in each forge's SQLite file), each with the columns its
/// rows move over with. `checked` is gone: the bot's checks are effects now.
const UPGRADES: [(&str, &str); 10] = [
    ("effects", "key, done_at"),
    (
        "effect_claims",
        "key, owner, claimed_at, attempts, retry_at, last_error",
    ),
    ("claims", "repo, pr, task"),
    ("merges", "repo, pr, head, requested_by"),
    ("blocked", "repo, task, previous"),
    ("comments", "repo, id, body"),
    ("command_lines", "repo, key, plan, done"),
    ("red_heads", "repo, pr, sha"),
    ("pending_since", "repo, sha, since"),
    ("repos", "name"),
];

/// The effects tables and the rest of the engine's records, behind named operations.
pub struct Ledger {
    pool: sqlx::AnyPool,
    /// The forge every row of this ledger is about.
    forge: String,
    /// Who this process is in claims: fresh at every start.
    owner: String,
    /// Whether other processes share the database (PostgreSQL).
    shared: bool,
    /// Whether every comment the bot wrote is recorded (the ledger began with the record),
    /// so a comment not recorded was never written.
    knows_all_comments: bool,
    clock: Arc<dyn Clock>,
}

/// A statement as either database takes it.
fn q(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(crate::queue::numbered(sql))
}

impl Ledger {
    /// Opens the ledger of `forge`: in PostgreSQL at `db`, else in `data_dir/engine.db`;
    /// creates its tables and moves an older ledger's rows over once.
    pub async fn open(
        forge: &str,
        db: Option<&str>,
        data_dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Ledger, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let pool = match db {
            Some(url) => {
                sqlx::any::AnyPoolOptions::new()
                    .max_connections(4)
                    .connect(url)
                    .await?
            }
            None => {
                let opts = SqliteConnectOptions::new()
                    .filename(data_dir.join("engine.db"))
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
                sqlx::any::AnyPoolOptions::new()
                    .max_connections(2)
                    // The file and WAL mode come first, on a connection of its own: an Any pool
                    // of SQLite connections is configured by URL only.
                    .connect_with(sqlx::any::AnyConnectOptions::from_url(&{
                        use sqlx::Connection as _;
                        let c = sqlx::SqliteConnection::connect_with(&opts).await?;
                        c.close().await?;
                        opts.to_url_lossy()
                    })?)
                    .await?
            }
        };
        let ledger = Ledger {
            pool,
            forge: forge.to_owned(),
            owner: uuid::Uuid::new_v4().to_string(),
            shared: db.is_some(),
            clock,
            knows_all_comments: false,
        };
        let mut ledger = ledger;
        ledger.knows_all_comments = ledger.schema().await?;
        Ok(ledger)
    }

    /// Creates the tables and moves rows of the older layout over, in one transaction (on
    /// PostgreSQL under a lock, so replicas starting together do it once). Says whether the
    /// ledger has recorded every comment the bot wrote: it began before any repository did.
    async fn schema(&self) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if self.shared {
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':trunkwarden:engine'))",
            )
            .execute(&mut *tx)
            .await?;
        }
        for ddl in SCHEMA {
            sqlx::query(ddl).execute(&mut *tx).await?;
        }
        let safe = self
            .forge
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        for (name, columns) in UPGRADES {
            let old = if self.shared {
                format!("engine_{safe}_{name}")
            } else {
                name.to_owned()
            };
            let exists: i64 = if self.shared {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1",
                )
                .bind(&old)
                .fetch_one(&mut *tx)
                .await?
            } else {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
                )
                .bind(&old)
                .fetch_one(&mut *tx)
                .await?
            };
            if exists == 0 {
                continue;
            }
            let copy = format!(
                "INSERT INTO engine_{name} (forge, {columns}) SELECT CAST($1 AS TEXT), {columns} FROM {old} WHERE true ON CONFLICT DO NOTHING"
            );
            sqlx::query(sqlx::AssertSqlSafe(copy))
                .bind(&self.forge)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {old}")))
                .execute(&mut *tx)
                .await?;
        }
        let old_checked = if self.shared {
            format!("engine_{safe}_checked")
        } else {
            "checked".to_owned()
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {old_checked}"
        )))
        .execute(&mut *tx)
        .await?;
        let repos: i64 = sqlx::query_scalar(q("SELECT COUNT(*) FROM engine_repos WHERE forge = ?"))
            .bind(&self.forge)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(q(
            "INSERT INTO engine_said (forge, repo, thread, marker, id, digest) VALUES (?, '', '', 'ledger', ?, '') ON CONFLICT DO NOTHING",
        ))
        .bind(&self.forge)
        .bind(i64::from(repos == 0))
        .execute(&mut *tx)
        .await?;
        let whole: i64 = sqlx::query_scalar(q(
            "SELECT id FROM engine_said WHERE forge = ? AND repo = '' AND thread = '' AND marker = 'ledger'",
        ))
        .bind(&self.forge)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(whole == 1)
    }

    /// Whether a comment the ledger has no record of was never written.
    pub fn knows_all_comments(&self) -> bool {
        self.knows_all_comments
    }

    /// Now, by the engine's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    // Effects, once each.

    /// Claims an effect's key before it is performed.
    pub async fn claim(&self, key: &str) -> Result<Claim, sqlx::Error> {
        for _ in 0..2 {
            if self.is_done(key).await? {
                return Ok(Claim::Done);
            }
            let now = self.now_ms();
            let inserted = sqlx::query(q(
                "INSERT INTO engine_effect_claims (forge, key, owner, claimed_at, attempts, retry_at) VALUES (?, ?, ?, ?, 0, 0) ON CONFLICT DO NOTHING",
            ))
            .bind(&self.forge)
            .bind(key)
            .bind(&self.owner)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(Claim::Mine { first: true });
            }
            let row: Option<(String, i64, i64, Option<String>)> = sqlx::query_as(q(
                "SELECT owner, claimed_at, retry_at, last_error FROM engine_effect_claims WHERE forge = ? AND key = ?",
            ))
            .bind(&self.forge)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
            // Gone between the two statements: done, or released; look again.
            let Some((owner, claimed_at, retry_at, error)) = row else {
                continue;
            };
            if retry_at > now {
                return Ok(Claim::Deferred {
                    retry_at,
                    error: error.unwrap_or_default(),
                });
            }
            let live =
                claimed_at > 0 && owner != self.owner && self.shared && now - claimed_at < LEASE_MS;
            if live {
                return Ok(Claim::Busy);
            }
            let taken = sqlx::query(q(
                "UPDATE engine_effect_claims SET owner = ?, claimed_at = ? WHERE forge = ? AND key = ? AND owner = ? AND claimed_at = ?",
            ))
            .bind(&self.owner)
            .bind(now)
            .bind(&self.forge)
            .bind(key)
            .bind(&owner)
            .bind(claimed_at)
            .execute(&self.pool)
            .await?
            .rows_affected();
            return Ok(if taken == 1 {
                Claim::Mine { first: false }
            } else {
                Claim::Busy
            });
        }
        Ok(Claim::Busy)
    }

    /// Records a claimed effect as performed.
    pub async fn done(&self, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query(q(
            "INSERT INTO engine_effects (forge, key, done_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        ))
        .bind(&self.forge)
        .bind(key)
        .bind(rfc3339(self.now_ms()))
        .execute(&self.pool)
        .await?;
        sqlx::query(q(
            "DELETE FROM engine_effect_claims WHERE forge = ? AND key = ?",
        ))
        .bind(&self.forge)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that the forge refused a claimed effect; returns when it may be tried again.
    pub async fn refused(&self, key: &str, error: &str) -> Result<i64, sqlx::Error> {
        let attempts: i64 = sqlx::query_scalar(q(
            "SELECT attempts FROM engine_effect_claims WHERE forge = ? AND key = ?",
        ))
        .bind(&self.forge)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(0)
            + 1;
        let wait = BACKOFF_MS
            .saturating_mul(1i64 << (attempts - 1).clamp(0, 20))
            .min(BACKOFF_MAX_MS);
        let retry_at = self.now_ms() + wait;
        sqlx::query(q(
            "UPDATE engine_effect_claims SET attempts = ?, retry_at = ?, last_error = ?, claimed_at = 0 WHERE forge = ? AND key = ?",
        ))
        .bind(attempts)
        .bind(retry_at)
        .bind(error)
        .bind(&self.forge)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(retry_at)
    }

    /// Gives a claimed effect back after a passing failure (a timeout, a 5xx): anyone may try
    /// it again at once.
    pub async fn release(&self, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query(q(
            "UPDATE engine_effect_claims SET claimed_at = 0 WHERE forge = ? AND key = ? AND owner = ?",
        ))
        .bind(&self.forge)
        .bind(key)
        .bind(&self.owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether an effect was performed.
    pub async fn is_done(&self, key: &str) -> Result<bool, sqlx::Error> {
        let seen: Option<String> = sqlx::query_scalar(q(
            "SELECT key FROM engine_effects WHERE forge = ? AND key = ?",
        ))
        .bind(&self.forge)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(seen.is_some())
    }

    /// Forgets that an effect was performed, so it happens again (a `recheck`).
    pub async fn forget(&self, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query(q("DELETE FROM engine_effects WHERE forge = ? AND key = ?"))
            .bind(&self.forge)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many rounds of an effect were performed: `key` itself and `key:N`.
    pub async fn rounds_done(&self, key: &str) -> Result<u32, sqlx::Error> {
        self.rounds(
            "SELECT COUNT(*) FROM engine_effects WHERE forge = ? AND (key = ? OR key LIKE ? ESCAPE '\\')",
            key,
        )
        .await
    }

    /// How many rounds of an effect were claimed and not recorded as done: begun, perhaps
    /// applied by the forge, by a process that died or gave the claim back.
    pub async fn rounds_begun(&self, key: &str) -> Result<u32, sqlx::Error> {
        self.rounds(
            "SELECT COUNT(*) FROM engine_effect_claims WHERE forge = ? AND (key = ? OR key LIKE ? ESCAPE '\\') AND last_error IS NULL",
            key,
        )
        .await
    }

    /// Counts the rows `sql` selects for `key` and its rounds `key:N`.
    async fn rounds(&self, sql: &str, key: &str) -> Result<u32, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(q(sql))
            .bind(&self.forge)
            .bind(key)
            .bind(format!("{}:%", like_escaped(key)))
            .fetch_one(&self.pool)
            .await?;
        Ok(n.clamp(0, i64::from(u32::MAX)) as u32)
    }

    /// How many effects on issues and pull requests were performed (the bot's own commit
    /// statuses not counted).
    pub async fn effects_done(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(q(
            "SELECT COUNT(*) FROM engine_effects WHERE forge = ? AND key NOT LIKE '%:checks:%'",
        ))
        .bind(&self.forge)
        .fetch_one(&self.pool)
        .await
    }

    // Pull requests claimed for tasks.

    /// The task a pull request was claimed for (`Some("")`: explicitly unclaimed).
    pub async fn claimed(&self, repo: &str, pr: u64) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(q(
            "SELECT task FROM engine_claims WHERE forge = ? AND repo = ? AND pr = ?",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(pr as i64)
        .fetch_optional(&self.pool)
        .await
    }

    /// Links a pull request to a task (an empty task unlinks it for good).
    pub async fn claim_pull(&self, repo: &str, pr: u64, task: &str) -> Result<(), sqlx::Error> {
        sqlx::query(q(
            "INSERT INTO engine_claims (forge, repo, pr, task) VALUES (?, ?, ?, ?) ON CONFLICT (forge, repo, pr) DO UPDATE SET task = excluded.task",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(pr as i64)
        .bind(task)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // Pending merges.

    /// A merge asked for: the head it is for and who asked.
    pub async fn pending_merge(
        &self,
        repo: &str,
        pr: u64,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        sqlx::query_as(q(
            "SELECT head, requested_by FROM engine_merges WHERE forge = ? AND repo = ? AND pr = ?",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(pr as i64)
        .fetch_optional(&self.pool)
        .await
    }

    /// Asks for a merge once `head` is green.
    pub async fn request_merge(
        &self,
        repo: &str,
        pr: u64,
        head: &str,
        by: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(q(
            "INSERT INTO engine_merges (forge, repo, pr, head, requested_by) VALUES (?, ?, ?, ?, ?) ON CONFLICT (forge, repo, pr) DO UPDATE SET head = excluded.head, requested_by = excluded.requested_by",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(pr as i64)
        .bind(head)
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Withdraws a pending merge.
    pub async fn clear_merge(&self, repo: &str, pr: u64) -> Result<(), sqlx::Error> {
        sqlx::query(q(
            "DELETE FROM engine_merges WHERE forge = ? AND repo = ? AND pr = ?",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(pr as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // Blocked tasks.

    /// The status a blocked task had before it was blocked.
    pub async fn blocked_before(
        &self,
        repo: &str,
        task: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(q(
            "SELECT previous FROM engine_blocked WHERE forge = ? AND repo = ? AND task = ?",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(task)
        .fetch_optional(&self.pool)
        .await
    }

    /// Remembers the status a task had before it is blocked.
    pub async fn remember_blocked(
        &self,
        repo: &str,
        task: &str,
        previous: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(q(
            "INSERT INTO engine_blocked (forge, repo, task, previous) VALUES (?, ?, ?, ?) ON CONFLICT (forge, repo, task) DO UPDATE SET previous = excluded.previous",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(task)
        .bind(previous)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // The bot's own marked comments, so writing one again needs no search of the thread.

    /// The id and body digest of the bot's comment carrying `marker` on `thread`, as last
    /// written; id 0 when a write began and its outcome is unknown.
    pub async fn said(
        &self,
        repo: &str,
        thread: &str,
        marker: &str,
    ) -> Result<Option<(u64, String)>, sqlx::Error> {
        let row: Option<(i64, String)> = sqlx::query_as(q(
            "SELECT id, digest FROM engine_said WHERE forge = ? AND repo = ? AND thread = ? AND marker = ?",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(thread)
        .bind(marker)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, digest)| (id.max(0) as u64, digest)))
    }

    /// Marks a first write of a comment as begun; false when another writer began it first.
    pub async fn begin_saying(
        &self,
        repo: &str,
        thread: &str,
        marker: &str,
    ) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(q(
            "INSERT INTO engine_said (forge, repo, thread, marker, id, digest) VALUES (?, ?, ?, ?, 0, '') ON CONFLICT DO NOTHING",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(thread)
        .bind(marker)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Records the comment as written — its id and the digest of its body — if the record
    /// still holds `expect` (the id the write started from, 0 for none). Otherwise another
    /// writer recorded first: returns the id it recorded.
    pub async fn said_as(
        &self,
        repo: &str,
        thread: &str,
        marker: &str,
        expect: u64,
        id: u64,
        digest: &str,
    ) -> Result<Option<u64>, sqlx::Error> {
        let updated = sqlx::query(q(
            "UPDATE engine_said SET id = ?, digest = ? WHERE forge = ? AND repo = ? AND thread = ? AND marker = ? AND id = ?",
        ))
        .bind(id as i64)
        .bind(digest)
        .bind(&self.forge)
        .bind(repo)
        .bind(thread)
        .bind(marker)
        .bind(expect as i64)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 1 {
            return Ok(None);
        }
        Ok(Some(
            self.said(repo, thread, marker)
                .await?
                .map_or(0, |(id, _)| id),
        ))
    }

    // Comments and their command lines.

    /// The body of a comment as the bot last acted on it.
    pub async fn seen_comment(&self, repo: &str, id: u64) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(q(
            "SELECT body FROM engine_comments WHERE forge = ? AND repo = ? AND id = ?",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(id as i64)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records a comment's body as acted on.
    pub async fn see_comment(&self, repo: &str, id: u64, body: &str) -> Result<(), sqlx::Error> {
        sqlx::query(q(
            "INSERT INTO engine_comments (forge, repo, id, body) VALUES (?, ?, ?, ?) ON CONFLICT (forge, repo, id) DO UPDATE SET body = excluded.body",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(id as i64)
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A command line's plan, if it was made: `(plan, done)`.
    pub async fn command_line(
        &self,
        repo: &str,
        key: &str,
    ) -> Result<Option<(String, bool)>, sqlx::Error> {
        let row: Option<(String, i64)> = sqlx::query_as(q(
            "SELECT plan, done FROM engine_command_lines WHERE forge = ? AND repo = ? AND key = ?",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(plan, done)| (plan, done != 0)))
    }

    /// Records a command line's plan before any of it is applied; an earlier plan stays.
    pub async fn plan_command_line(
        &self,
        repo: &str,
        key: &str,
        plan: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(q(
            "INSERT INTO engine_command_lines (forge, repo, key, plan, done) VALUES (?, ?, ?, ?, 0) ON CONFLICT DO NOTHING",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(key)
        .bind(plan)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a command line applied and answered.
    pub async fn command_line_done(&self, repo: &str, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query(q(
            "UPDATE engine_command_lines SET done = 1 WHERE forge = ? AND repo = ? AND key = ?",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // CI history.

    /// Records that CI failed on a head of a pull request; returns on how many heads it did.
    pub async fn red_head(&self, repo: &str, pr: u64, sha: &str) -> Result<i64, sqlx::Error> {
        sqlx::query(q(
            "INSERT INTO engine_red_heads (forge, repo, pr, sha) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(pr as i64)
        .bind(sha)
        .execute(&self.pool)
        .await?;
        sqlx::query_scalar(q(
            "SELECT COUNT(*) FROM engine_red_heads WHERE forge = ? AND repo = ? AND pr = ?",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(pr as i64)
        .fetch_one(&self.pool)
        .await
    }

    /// What a failed context's log said on a commit (`detail` as the engine wrote it; empty
    /// when there was no log to read), with whether its passing on a rerun was noted.
    pub async fn diagnoses(
        &self,
        repo: &str,
        sha: &str,
    ) -> Result<Vec<(String, String, bool)>, sqlx::Error> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(q(
            "SELECT context, detail, flaky FROM engine_diagnoses WHERE forge = ? AND repo = ? AND sha = ? ORDER BY context",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(sha)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(c, d, f)| (c, d, f != 0)).collect())
    }

    /// Records what a failed context's log said, once: the first reader's record stands.
    pub async fn record_diagnosis(
        &self,
        repo: &str,
        sha: &str,
        context: &str,
        detail: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(q(
            "INSERT INTO engine_diagnoses (forge, repo, sha, context, detail, flaky) VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT DO NOTHING",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(sha)
        .bind(context)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a failed context as passed on a rerun of the same commit; `true` for the one
    /// caller (of all replicas) that marked it first.
    pub async fn note_flaky(
        &self,
        repo: &str,
        sha: &str,
        context: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(q(
            "UPDATE engine_diagnoses SET flaky = 1 WHERE forge = ? AND repo = ? AND sha = ? AND context = ? AND flaky = 0",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(sha)
        .bind(context)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Since when (Unix ms) a commit's CI has been awaited: the first time this was asked.
    pub async fn pending_since(&self, repo: &str, sha: &str) -> Result<i64, sqlx::Error> {
        sqlx::query(q(
            "INSERT INTO engine_pending_since (forge, repo, sha, since) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(sha)
        .bind(self.now_ms())
        .execute(&self.pool)
        .await?;
        sqlx::query_scalar(q(
            "SELECT since FROM engine_pending_since WHERE forge = ? AND repo = ? AND sha = ?",
        ))
        .bind(&self.forge)
        .bind(repo)
        .bind(sha)
        .fetch_one(&self.pool)
        .await
    }

    // Repositories.

    /// Remembers a repository for the resync, across restarts and for every replica.
    pub async fn remember_repo(&self, name: &str) -> Result<(), sqlx::Error> {
        sqlx::query(q(
            "INSERT INTO engine_repos (forge, name) VALUES (?, ?) ON CONFLICT DO NOTHING",
        ))
        .bind(&self.forge)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes a repository out of the resync (its App no longer covers it).
    pub async fn forget_repo(&self, name: &str) -> Result<(), sqlx::Error> {
        sqlx::query(q("DELETE FROM engine_repos WHERE forge = ? AND name = ?"))
            .bind(&self.forge)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The repositories the resync covers.
    pub async fn repos(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(q("SELECT name FROM engine_repos WHERE forge = ?"))
            .bind(&self.forge)
            .fetch_all(&self.pool)
            .await
    }

    // What the status page reads.

    /// The commits of a repository whose CI is awaited, with since when (Unix ms): the
    /// done-gate's waiting room, read without adding to it.
    pub async fn waits(&self, repo: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as(q(
            "SELECT sha, since FROM engine_pending_since WHERE forge = ? AND repo = ? ORDER BY since DESC LIMIT 500",
        ))
        .bind(&self.forge)
        .bind(repo)
        .fetch_all(&self.pool)
        .await
    }

    /// The newest effects performed on issues and pull requests (`repo:what`, when), the
    /// bot's own statuses left out.
    pub async fn recent_effects(&self, limit: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
        sqlx::query_as(q(
            "SELECT key, done_at FROM engine_effects WHERE forge = ? AND key NOT LIKE '%:checks:%' ORDER BY done_at DESC LIMIT ?",
        ))
        .bind(&self.forge)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}

/// A key as a LIKE pattern that matches only itself (`\\` escapes).
fn like_escaped(key: &str) -> String {
    key.chars()
        .flat_map(|c| match c {
            '\\' | '%' | '_' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_first_writer_of_a_comment_record_wins_and_the_other_learns_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open("gitea", None, dir.path(), Arc::new(SystemClock))
            .await
            .unwrap();
        let (r, t, m) = ("acme/app", "pull-7", "task");
        assert_eq!(l.said(r, t, m).await.unwrap(), None);
        assert!(l.begin_saying(r, t, m).await.unwrap());
        assert!(!l.begin_saying(r, t, m).await.unwrap(), "one writer begins");
        assert_eq!(l.said(r, t, m).await.unwrap(), Some((0, String::new())));
        // Two writers posted (11 and 12); the first to record stands.
        assert_eq!(l.said_as(r, t, m, 0, 11, "d1").await.unwrap(), None);
        assert_eq!(l.said_as(r, t, m, 0, 12, "d2").await.unwrap(), Some(11));
        assert_eq!(l.said(r, t, m).await.unwrap(), Some((11, "d1".into())));
        // An edit of the known comment moves the digest only.
        assert_eq!(l.said_as(r, t, m, 11, 11, "d3").await.unwrap(), None);
        assert_eq!(l.said(r, t, m).await.unwrap(), Some((11, "d3".into())));
    }
}
