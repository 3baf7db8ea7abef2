//! The engine's own records: effects done once, claims on effects in flight (so two replicas
//! never perform one), failures backed off, and comment command lines planned before they are
//! applied (so a crash repeats or completes a command, never drops it).
//!
//! An effect's key is claimed in the shared database *before* the forge is called; the claim
//! is released as done, as failed (with the time of the next attempt), or — after a crash —
//! taken over by another process once it is stale: at once on SQLite, whose file belongs to
//! one process, and after [`LEASE_MS`] on PostgreSQL, where the claimer may still be running.

use std::sync::Arc;

/// Milliseconds a claim by another live replica is respected before it counts as abandoned.
pub const LEASE_MS: i64 = 5 * 60 * 1000;

/// First wait after an effect the forge refused (403, 404, 422 …); doubles up to [`BACKOFF_MAX_MS`].
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
    /// This process holds the key now and performs the effect.
    Mine,
    /// The effect was performed before.
    Done,
    /// Another live replica is performing it.
    Busy,
    /// The forge refused it; the next attempt is not before `retry_at` (Unix ms).
    Deferred { retry_at: i64, error: String },
}

/// The effects tables and the command lines, behind named operations.
pub struct Ledger {
    pub(super) pool: sqlx::AnyPool,
    prefix: String,
    /// Who this process is in claims: fresh at every start.
    owner: String,
    /// Whether other processes share the database (PostgreSQL).
    shared: bool,
    pub(super) clock: Arc<dyn Clock>,
}

impl Ledger {
    /// Wraps an opened pool whose tables carry `prefix`.
    pub(super) fn new(
        pool: sqlx::AnyPool,
        prefix: String,
        shared: bool,
        clock: Arc<dyn Clock>,
    ) -> Ledger {
        Ledger {
            pool,
            prefix,
            owner: uuid::Uuid::new_v4().to_string(),
            shared,
            clock,
        }
    }

    /// A statement with this ledger's table prefix and numbered placeholders.
    pub(super) fn q(&self, sql: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(super::ledger_sql(sql, &self.prefix))
    }

    /// Now, by the engine's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Claims an effect's key before it is performed.
    pub async fn claim(&self, key: &str) -> Result<Claim, sqlx::Error> {
        for _ in 0..2 {
            if self.is_done(key).await? {
                return Ok(Claim::Done);
            }
            let now = self.now_ms();
            let inserted = sqlx::query(self.q(
                "INSERT INTO effect_claims (key, owner, claimed_at, attempts, retry_at) VALUES (?, ?, ?, 0, 0) ON CONFLICT DO NOTHING",
            ))
            .bind(key)
            .bind(&self.owner)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(Claim::Mine);
            }
            let row: Option<(String, i64, i64, Option<String>)> = sqlx::query_as(self.q(
                "SELECT owner, claimed_at, retry_at, last_error FROM effect_claims WHERE key = ?",
            ))
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
            let taken = sqlx::query(self.q(
                "UPDATE effect_claims SET owner = ?, claimed_at = ? WHERE key = ? AND owner = ? AND claimed_at = ?",
            ))
            .bind(&self.owner)
            .bind(now)
            .bind(key)
            .bind(&owner)
            .bind(claimed_at)
            .execute(&self.pool)
            .await?
            .rows_affected();
            return Ok(if taken == 1 { Claim::Mine } else { Claim::Busy });
        }
        Ok(Claim::Busy)
    }

    /// Records a claimed effect as performed.
    pub async fn done(&self, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            self.q("INSERT INTO effects (key, done_at) VALUES (?, ?) ON CONFLICT DO NOTHING"),
        )
        .bind(key)
        .bind(rfc3339(self.now_ms()))
        .execute(&self.pool)
        .await?;
        sqlx::query(self.q("DELETE FROM effect_claims WHERE key = ?"))
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that the forge refused a claimed effect; returns when it may be tried again.
    pub async fn refused(&self, key: &str, error: &str) -> Result<i64, sqlx::Error> {
        let attempts: i64 =
            sqlx::query_scalar(self.q("SELECT attempts FROM effect_claims WHERE key = ?"))
                .bind(key)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0)
                + 1;
        let wait = BACKOFF_MS
            .saturating_mul(1i64 << (attempts - 1).clamp(0, 20))
            .min(BACKOFF_MAX_MS);
        let retry_at = self.now_ms() + wait;
        sqlx::query(self.q(
            "UPDATE effect_claims SET attempts = ?, retry_at = ?, last_error = ?, claimed_at = 0 WHERE key = ?",
        ))
        .bind(attempts)
        .bind(retry_at)
        .bind(error)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(retry_at)
    }

    /// Gives a claimed effect back after a passing failure (a timeout, a 5xx): anyone may try
    /// it again at once.
    pub async fn release(&self, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query(self.q("UPDATE effect_claims SET claimed_at = 0 WHERE key = ? AND owner = ?"))
            .bind(key)
            .bind(&self.owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether an effect was performed.
    pub async fn is_done(&self, key: &str) -> Result<bool, sqlx::Error> {
        let seen: Option<String> =
            sqlx::query_scalar(self.q("SELECT key FROM effects WHERE key = ?"))
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(seen.is_some())
    }

    /// How many rounds of an effect were performed: `key` itself and `key:N`.
    pub async fn rounds_done(&self, key: &str) -> Result<u32, sqlx::Error> {
        let escaped: String = key
            .chars()
            .flat_map(|c| match c {
                '\\' | '%' | '_' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let n: i64 = sqlx::query_scalar(
            self.q("SELECT COUNT(*) FROM effects WHERE key = ? OR key LIKE ? ESCAPE '\\'"),
        )
        .bind(key)
        .bind(format!("{escaped}:%"))
        .fetch_one(&self.pool)
        .await?;
        Ok(n.clamp(0, i64::from(u32::MAX)) as u32)
    }

    /// A command line's plan, if it was made: `(plan, done)`.
    pub async fn command_line(
        &self,
        repo: &str,
        key: &str,
    ) -> Result<Option<(String, bool)>, sqlx::Error> {
        let row: Option<(String, i64)> = sqlx::query_as(
            self.q("SELECT plan, done FROM command_lines WHERE repo = ? AND key = ?"),
        )
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
        sqlx::query(self.q(
            "INSERT INTO command_lines (repo, key, plan, done) VALUES (?, ?, ?, 0) ON CONFLICT DO NOTHING",
        ))
        .bind(repo)
        .bind(key)
        .bind(plan)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a command line applied and answered.
    pub async fn command_line_done(&self, repo: &str, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query(self.q("UPDATE command_lines SET done = 1 WHERE repo = ? AND key = ?"))
            .bind(repo)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The repositories the periodic resync covers (every replica's, as the database has them).
    pub async fn repos(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(self.q("SELECT name FROM repos"))
            .fetch_all(&self.pool)
            .await
    }
}
