//! `trunkwarden serve` killed with SIGKILL: every acknowledged delivery is processed exactly once
//! after a restart. Runs the real binary.

mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{SECRET, client, github};
use trunkwarden::queue::{Store, Sync};

/// Starts the server and returns it with its base URL (read from its first line of output).
fn serve(dir: &Path, workers: usize) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trunkwarden"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            &workers.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("TRUNKWARDEN_GITHUB_WEBHOOK_SECRET", SECRET)
        .env("TRUNKWARDEN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start trunkwarden serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("address line")
        .to_owned();
    (child, url)
}

/// Sends `n` deliveries, 16 at a time; stops early when `kill_after` acknowledgements are in.
/// Returns the delivery ids that were acknowledged.
async fn flood(
    url: &str,
    n: usize,
    prefix: &str,
    child: Option<&mut Child>,
    kill_after: usize,
) -> HashSet<String> {
    let http = client();
    let endpoint = format!("{url}/webhook");
    let mut acked = HashSet::new();
    let mut child = child;
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:04}")).collect();
    for chunk in ids.chunks(16) {
        let mut sends = tokio::task::JoinSet::new();
        for id in chunk {
            let f = github("pull_request.synchronize.22", id);
            let (http, endpoint, id) = (http.clone(), endpoint.clone(), id.clone());
            sends.spawn(async move {
                let mut req = http.post(&endpoint).body(f.body.clone());
                for (k, v) in &f.headers {
                    req = req.header(k.as_str(), v.as_bytes());
                }
                // A connection refused or reset after the kill is not an acknowledgement.
                match req.send().await {
                    Ok(r) if r.status() == 202 => Some(id),
                    _ => None,
                }
            });
        }
        while let Some(r) = sends.join_next().await {
            if let Ok(Some(id)) = r {
                acked.insert(id);
            }
        }
        if acked.len() >= kill_after
            && let Some(c) = child.take()
        {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }
    acked
}

/// Waits until nothing is queued, then checks every acknowledged delivery was done exactly once.
async fn assert_all_done_once(dir: &Path, acked: &HashSet<String>) {
    let store = Store::open(dir, Sync::Normal).await.unwrap();
    for _ in 0..500 {
        let c = store.counts().await.unwrap();
        if c.get("queued").copied().unwrap_or(0) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows = store.list(None, 10_000).await.unwrap();
    let stored: HashSet<String> = rows.iter().map(|d| d.delivery_id.clone()).collect();
    let lost: Vec<&String> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    for d in &rows {
        assert_eq!(
            (d.state.as_str(), d.attempts),
            ("done", 1),
            "delivery {}",
            d.delivery_id
        );
    }
}

#[tokio::test]
async fn acknowledged_deliveries_survive_sigkill_while_queued() {
    let dir = tempfile::tempdir().unwrap();
    // Ingest only: everything acknowledged is still queued when the process dies.
    let (mut child, url) = serve(dir.path(), 0);
    let acked = flood(&url, 200, "queued", None, usize::MAX).await;
    assert_eq!(acked.len(), 200);
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, _url) = serve(dir.path(), 4);
    assert_all_done_once(dir.path(), &acked).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn acknowledged_deliveries_survive_sigkill_during_processing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = serve(dir.path(), 4);
    // Killed mid-flood, with workers busy: some deliveries are done, some queued, some in flight.
    let acked = flood(&url, 400, "busy", Some(&mut child), 150).await;
    assert!(acked.len() >= 150, "{}", acked.len());
    let _ = child.wait();

    let (mut child, _url) = serve(dir.path(), 4);
    assert_all_done_once(dir.path(), &acked).await;
    child.kill().unwrap();
    child.wait().unwrap();
}
