//! The ledger's retention on real SQLite and PostgreSQL: finished deliveries lose their bodies,
//! then their rows; dead letters stay until their own age; queued work and the newest row are
//! never touched; a redelivery of a kept id is still a duplicate; pruning runs beside inserts
//! without losing one, and holds across a restart.

mod support;

use trunkwarden::event::ForgeKind;
use trunkwarden::queue::retention::{Pruned, Retention};
use trunkwarden::queue::{Finish, Inserted, NewDelivery, Store, Sync, now_ms};

const DAY: i64 = 24 * 3600 * 1000;

fn delivery(id: &str, received_at: i64) -> NewDelivery {
    NewDelivery {
        forge: ForgeKind::Github,
        hook_id: String::new(),
        delivery_id: id.into(),
        event: "push".into(),
        headers: r#"{"x-github-event":"push"}"#.into(),
        body: format!(r#"{{"ref":"refs/heads/main","id":"{id}"}}"#)
            .into_bytes()
            .into(),
        received_at,
    }
}

async fn insert(store: &Store, id: &str, received_at: i64) -> i64 {
    match store.insert(delivery(id, received_at)).await.unwrap() {
        Inserted::New(n) => n,
        Inserted::Duplicate => panic!("{id} was a duplicate"),
    }
}

/// The ledger as `(delivery id → (state, body kept))`.
async fn kept(store: &Store) -> std::collections::BTreeMap<String, (String, bool)> {
    let mut out = std::collections::BTreeMap::new();
    for d in store.list(None, 10_000).await.unwrap() {
        let full = store.get(d.id).await.unwrap().unwrap();
        out.insert(d.delivery_id.clone(), (d.state.clone(), !full.body_pruned));
    }
    out
}

/// Ages and states the retention tells apart, then one prune as of now.
async fn scenario(store: &Store) {
    let now = now_ms();
    let mut finish = Vec::new();
    for (name, age, state) in [
        // In arrival order, as the server stores them.
        ("dead-100d", 100, "dead"),
        ("done-40d", 40, "done"),
        ("ignored-40d", 40, "ignored"),
        ("dead-40d", 40, "dead"),
        ("queued-40d", 40, "queued"),
        ("done-10d", 10, "done"),
        ("done-1d", 1, "done"),
    ] {
        let id = insert(store, name, now - age * DAY).await;
        finish.push(match state {
            "done" => Finish::Done {
                id,
                lane: "acme/app".into(),
                result: "{}".into(),
            },
            "ignored" => Finish::Ignored {
                id,
                reason: "not ours".into(),
            },
            "dead" => Finish::Dead {
                id,
                attempts: 8,
                error: "forge down".into(),
            },
            _ => continue,
        });
    }
    store.finish_all(finish).await.unwrap();
    let pruned = store.prune(&Retention::default()).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            deliveries: 3,
            bodies: 4
        }
    );
    let k = kept(store).await;
    let names: Vec<&str> = k.keys().map(String::as_str).collect();
    // Finished rows past 30 days and dead letters past 90 are gone; the rest stay.
    assert_eq!(
        names,
        ["dead-40d", "done-10d", "done-1d", "queued-40d"],
        "{k:?}"
    );
    assert_eq!(
        k["done-10d"],
        ("done".to_owned(), false),
        "body kept a week"
    );
    assert_eq!(k["done-1d"], ("done".to_owned(), true));
    assert_eq!(
        k["dead-40d"],
        ("dead".to_owned(), true),
        "a dead letter keeps its body"
    );
    assert_eq!(k["queued-40d"], ("queued".to_owned(), true));
    // A redelivery of a kept id is still a duplicate; of a pruned one, a new delivery.
    assert_eq!(
        store.insert(delivery("done-10d", now)).await.unwrap(),
        Inserted::Duplicate
    );
    // A delivery whose body is gone cannot be queued again: nothing is left to process.
    let id = store
        .list(None, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.delivery_id == "done-10d")
        .unwrap()
        .id;
    assert!(!store.requeue(id).await.unwrap());
    // Nothing more to do.
    assert_eq!(
        store.prune(&Retention::default()).await.unwrap(),
        Pruned::default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_what_it_must_and_prunes_the_rest_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Sync::Full).await.unwrap();
    scenario(&store).await;
    drop(store);
    let store = Store::open(dir.path(), Sync::Full).await.unwrap();
    let k = kept(&store).await;
    assert_eq!(k.len(), 4, "{k:?}");
    assert_eq!(
        store.prune(&Retention::default()).await.unwrap(),
        Pruned::default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_what_it_must_and_prunes_the_rest() {
    let url = support::fresh_pg_schema("tw_ret").await;
    let store = Store::open_postgres(&url).await.unwrap();
    scenario(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_row_is_kept_however_old() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Sync::Full).await.unwrap();
    let old = now_ms() - 60 * DAY;
    let a = insert(&store, "a", old).await;
    let b = insert(&store, "b", old).await;
    store
        .finish_all(
            [a, b]
                .map(|id| Finish::Done {
                    id,
                    lane: "l".into(),
                    result: "{}".into(),
                })
                .to_vec(),
        )
        .await
        .unwrap();
    store.prune(&Retention::default()).await.unwrap();
    assert_eq!(kept(&store).await.keys().collect::<Vec<_>>(), ["b"]);
    // Ids keep growing past it.
    assert!(insert(&store, "c", now_ms()).await > b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_beside_a_stream_of_inserts_loses_none_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Sync::Normal).await.unwrap();
    // 5,000 old finished deliveries to prune.
    let old = now_ms() - 40 * DAY;
    let mut ids = Vec::new();
    for i in 0..5_000 {
        ids.push(insert(&store, &format!("old-{i}"), old).await);
    }
    store
        .finish_all(
            ids.iter()
                .map(|&id| Finish::Done {
                    id,
                    lane: "l".into(),
                    result: "{}".into(),
                })
                .collect(),
        )
        .await
        .unwrap();
    let stream = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut n = 0;
            for i in 0..2_000 {
                insert(&store, &format!("new-{i}"), now_ms()).await;
                n += 1;
            }
            n
        })
    };
    let pruner = {
        let store = store.clone();
        tokio::spawn(async move { store.prune(&Retention::default()).await.unwrap() })
    };
    let (inserted, pruned) = (stream.await.unwrap(), pruner.await.unwrap());
    assert_eq!(inserted, 2_000);
    assert_eq!(pruned.deliveries, 5_000);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.get("queued").copied(), Some(2_000), "{counts:?}");
    assert_eq!(counts.get("done").copied(), None, "{counts:?}");
}
