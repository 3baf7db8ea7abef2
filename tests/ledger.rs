//! The SQLite ledger's writer under concurrency: every caller is answered once, ids follow commit
//! order, a duplicate in the same group is caught, cancelled callers leave nobody waiting, and the
//! dispatcher's in-memory feed says when it had to drop deliveries; bodies are stored without a
//! padded page each.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use trunkwarden::event::ForgeKind;
use trunkwarden::queue::{Inserted, NewDelivery, Store, StoreError, Sync, now_ms};

fn delivery(id: &str, body: &[u8]) -> NewDelivery {
    NewDelivery {
        forge: ForgeKind::Github,
        hook_id: "1".into(),
        delivery_id: id.into(),
        event: "push".into(),
        headers: r#"{"x-github-event":"push"}"#.into(),
        body: body.to_vec().into(),
        received_at: now_ms(),
    }
}

/// Stores one delivery on a task of its own, as a request handler would.
fn spawn_insert(
    store: &Store,
    id: String,
    body: &[u8],
) -> JoinHandle<Result<Inserted, Arc<StoreError>>> {
    let (store, d) = (store.clone(), delivery(&id, body));
    tokio::spawn(async move { store.insert(d).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_are_each_answered_once_in_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Sync::Full).await.unwrap();
    assert!(store.subscribe());
    assert!(store.take_feed().unwrap().lost);
    let body = br#"{"ref":"refs/heads/main","commits":[]}"#.repeat(30);
    let mut tasks = Vec::new();
    for i in 0..400 {
        // Every fourth delivery is sent twice at once, as a forge's retry might be.
        for _ in 0..if i % 4 == 0 { 2 } else { 1 } {
            tasks.push(spawn_insert(&store, format!("d-{i}"), &body));
        }
    }
    let (mut new, mut dup) = (HashSet::new(), 0);
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Inserted::New(id) => assert!(new.insert(id), "id {id} given twice"),
            Inserted::Duplicate => dup += 1,
        }
    }
    assert_eq!((new.len(), dup), (400, 100));

    let fed = store.take_feed().unwrap();
    let ids: Vec<i64> = fed.items.iter().map(|d| d.id).collect();
    assert_eq!(ids.len(), 400);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "feed out of order");
    assert!(fed.items.iter().all(|d| d.body[..] == body[..]));
    let stored = store.list(None, 1_000).await.unwrap();
    assert_eq!(stored.len(), 400);
    assert_eq!(
        stored.iter().map(|d| d.id).collect::<HashSet<_>>(),
        new,
        "the ledger holds exactly the ids that were answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_callers_leave_nobody_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Sync::Full).await.unwrap();
    let mut kept = Vec::new();
    for round in 0..40u64 {
        let mut cancel = Vec::new();
        for i in 0..24 {
            let h = spawn_insert(&store, format!("c-{round}-{i}"), b"{}");
            if i % 2 == 0 {
                cancel.push(h);
            } else {
                kept.push(h);
            }
        }
        // Cancel half of them while they wait for a group commit (as a request is dropped when
        // its client disconnects): some of them have been told to commit for the others.
        tokio::time::sleep(Duration::from_micros(50 * (round % 8))).await;
        for h in cancel {
            h.abort();
        }
    }
    let all = async {
        for h in kept {
            assert!(matches!(h.await.unwrap(), Ok(Inserted::New(_))));
        }
    };
    tokio::time::timeout(Duration::from_secs(20), all)
        .await
        .expect("a caller was left waiting");
    // The writer is free again.
    let last = tokio::time::timeout(
        Duration::from_secs(5),
        store.insert(delivery("after", b"{}")),
    )
    .await
    .expect("writer stuck");
    assert!(matches!(last, Ok(Inserted::New(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_feed_tells_the_dispatcher_to_read_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Sync::Normal).await.unwrap();
    assert!(store.subscribe());
    // Right after subscribing, what came before is in the ledger only.
    assert!(store.take_feed().unwrap().lost);
    let n = 8_192 + 8;
    for chunk in (0..n).collect::<Vec<_>>().chunks(512) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|i| spawn_insert(&store, format!("f-{i}"), b"{}"))
            .collect();
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Ok(Inserted::New(_))));
        }
    }
    let fed = store.take_feed().unwrap();
    assert!(fed.lost, "the feed kept more than it holds");
    assert_eq!(fed.items.len(), 8_192);
    // After a take the feed is empty and whole again.
    let again = store.take_feed().unwrap();
    assert!(!again.lost && again.items.is_empty());
    store.insert(delivery("next", b"{}")).await.unwrap();
    assert_eq!(store.take_feed().unwrap().items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_from_before_the_body_table_keeps_every_body() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(trunkwarden::queue::DB_FILE);
    let (schema, rows) = support::ledger_v1(false);
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(&schema).unwrap();
        for row in &rows {
            db.execute(
                support::LEDGER_V1_INSERT,
                rusqlite::params![row.delivery_id, row.stored, row.encoding],
            )
            .unwrap();
        }
    }
    let store = Store::open(dir.path(), Sync::Full).await.unwrap();
    support::assert_old_bodies_read_back(&store, &rows).await;
    // Old deliveries are still duplicates, and new ones are stored after them with their body.
    assert_eq!(
        store.insert(delivery("old-1", b"again")).await.unwrap(),
        Inserted::Duplicate
    );
    let Inserted::New(new) = store.insert(delivery("new-1", b"{}")).await.unwrap() else {
        panic!("a new delivery is new");
    };
    assert!(new > 2);
    assert_eq!(&store.get(new).await.unwrap().unwrap().body[..], b"{}");
    drop(store);
    let db = rusqlite::Connection::open(&path).unwrap();
    let body_columns: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('deliveries') WHERE name LIKE 'body%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(body_columns, 0, "the old columns are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_not_padded_to_a_page_each() {
    // Bodies that do not compress, each too big for two to share a 4 KB page.
    const N: usize = 200;
    const LEN: usize = 2600;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Sync::Full).await.unwrap();
    for i in 0..N {
        let mut body = vec![0u8; LEN];
        rand::fill(&mut body[..]);
        store
            .insert(delivery(&format!("d-{i}"), &body))
            .await
            .unwrap();
    }
    drop(store);
    let db = rusqlite::Connection::open(dir.path().join(trunkwarden::queue::DB_FILE)).unwrap();
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let size: i64 = db
        .query_row(
            "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // A page per body would be 800 KB; the bodies themselves are 520 KB.
    assert!(
        (size as usize) < N * LEN * 13 / 10,
        "{N} bodies of {LEN} bytes took a {size}-byte ledger"
    );
}

#[tokio::test]
async fn an_engine_ledger_from_before_the_forge_column_keeps_its_rows() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("engine.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for ddl in [
        "CREATE TABLE effects (key TEXT PRIMARY KEY, done_at TEXT NOT NULL)",
        "CREATE TABLE checked (key TEXT PRIMARY KEY, done_at TEXT NOT NULL)",
        "CREATE TABLE comments (repo TEXT NOT NULL, id BIGINT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (repo, id))",
        "INSERT INTO effects VALUES ('acme/app:close:3:abc', '2026-11-01T00:00:00Z')",
        "INSERT INTO comments VALUES ('acme/app', 41, '@trunkwarden status')",
    ] {
        sqlx::query(ddl).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    let clock = std::sync::Arc::new(trunkwarden::engine::SystemClock);
    let l = trunkwarden::engine::ledger::Ledger::open("github", None, dir.path(), clock)
        .await
        .unwrap();
    assert!(l.is_done("acme/app:close:3:abc").await.unwrap());
    assert_eq!(
        l.seen_comment("acme/app", 41).await.unwrap().as_deref(),
        Some("@trunkwarden status")
    );
    assert_eq!(l.effects_done().await.unwrap(), 1);
}
