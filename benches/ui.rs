//! Time to first byte of the status page over loopback: the board of a 1,000- and a
//! 10,000-row task table, and the deliveries page over a ledger of 100,000 deliveries — beside
//! the same server's embedded stylesheet, the floor any page of this stack pays.
//! `cargo bench --bench ui`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trunkwarden::event::ForgeKind;
use trunkwarden::forge::Budget;
use trunkwarden::queue::worker::RecordHandler;
use trunkwarden::queue::{NewDelivery, Sync, now_ms};
use trunkwarden::server::{Connections, Settings, start_with};
use trunkwarden::ui::{Action, Links, Snapshot, Source, TrunkView, UiSettings, Watched};
use trunkwarden::webhook::Verifier;

/// One repository whose table has `rows` tasks in a chain, a tenth of them open.
struct Big {
    tables: Vec<(String, Arc<[u8]>)>,
}

fn table(rows: usize) -> Arc<[u8]> {
    let mut t = String::from(
        "# Tasks\n\n| id | status | description | issue | depends_on | agent | estimate | used | notes |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for i in 0..rows {
        let status = match i % 10 {
            0 => "in-progress",
            1 => "not-started",
            _ => "done",
        };
        let dep = if i > 0 {
            format!("BN-CH-{:05}", i - 1)
        } else {
            String::new()
        };
        let notes = if status == "done" {
            format!(
                "PR #{i} squash-merged as {:07x}; CI green (ci/test); closed #{i}",
                i * 7919
            )
        } else {
            format!("PR #{i}")
        };
        t.push_str(&format!(
            "| BN-CH-{i:05} | {status} | Task number {i} of the benchmark | #{i} | {dep} | w{} | 8K | 9.5K | {notes} |\n",
            i % 7
        ));
    }
    t.into_bytes().into()
}

#[async_trait::async_trait]
impl Source for Big {
    async fn repos(&self) -> Vec<Watched> {
        self.tables
            .iter()
            .map(|(r, _)| Watched {
                forge: ForgeKind::Github,
                repo: r.clone(),
            })
            .collect()
    }

    async fn snapshot(&self, _forge: &str, repo: &str) -> Option<Snapshot> {
        let (_, t) = self.tables.iter().find(|(r, _)| r == repo)?;
        Some(Snapshot {
            links: Links::from_clone_url(
                ForgeKind::Github,
                &format!("https://github.com/{repo}.git"),
            ),
            view: Arc::new(TrunkView {
                trunk: "main".into(),
                tasks_path: "docs/TASKS.md".into(),
                tip: "0123456789abcdef0123456789abcdef01234567".into(),
                read_at_ms: now_ms(),
                table: Some(t.clone()),
                ..TrunkView::default()
            }),
            ..Snapshot::default()
        })
    }

    fn budgets(&self) -> Vec<(ForgeKind, Option<Budget>)> {
        Vec::new()
    }

    async fn actions(&self, _limit: usize) -> Vec<Action> {
        Vec::new()
    }

    fn generation(&self) -> u64 {
        0
    }
}

/// Time to the first byte and to the last, of one GET on a fresh connection.
async fn get(addr: std::net::SocketAddr, path: &str) -> (Duration, Duration, usize, u16) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let t = Instant::now();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let n = s.read(&mut buf).await.unwrap();
    let first = t.elapsed();
    let mut total = n;
    let head = String::from_utf8_lossy(&buf[..n.min(16)]).to_string();
    loop {
        let m = s.read(&mut buf).await.unwrap();
        if m == 0 {
            break;
        }
        total += m;
    }
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (first, t.elapsed(), total, status)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn measure(addr: std::net::SocketAddr, label: &str, path: &str, runs: usize) {
    let _ = get(addr, path).await; // warm
    let mut firsts = Vec::new();
    let mut lasts = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let (f, l, b, status) = get(addr, path).await;
        assert_eq!(status, 200, "{path}");
        firsts.push(f);
        lasts.push(l);
        bytes = b;
    }
    firsts.sort();
    lasts.sort();
    println!(
        "{label:<44} {:>9.2} {:>9.2} {:>10.2} {:>9} KiB",
        ms(firsts[runs / 2]),
        ms(firsts[runs * 9 / 10]),
        ms(lasts[runs / 2]),
        bytes / 1024
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 3)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let source = Arc::new(Big {
        tables: vec![
            ("acme/one-k".into(), table(1_000)),
            ("acme/ten-k".into(), table(10_000)),
        ],
    });
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        db: None,
        max_body_bytes: 1 << 20,
        max_body_bytes_in_flight: 2 << 20,
        request_timeout: Duration::from_secs(30),
        connections: Connections::default(),
        workers: None,
        sync: Sync::Normal,
        verifier: Verifier::default(),
        retention: None,
        ui: UiSettings {
            enabled: true,
            token: None,
        },
    };
    let running = start_with(settings, Arc::new(RecordHandler), Some(source))
        .await
        .unwrap();
    // 100,000 deliveries, a few of them of a rare event.
    let t = Instant::now();
    let body: bytes::Bytes = bytes::Bytes::from(vec![b'{'; 600]);
    for chunk in 0..100 {
        let mut tasks = Vec::new();
        for i in 0..1_000 {
            let n = chunk * 1_000 + i;
            let store = running.store.clone();
            let d = NewDelivery {
                forge: if n % 3 == 0 {
                    ForgeKind::Gitea
                } else {
                    ForgeKind::Github
                },
                hook_id: String::new(),
                delivery_id: format!("bench-{n}"),
                event: if n % 1000 == 0 { "release" } else { "push" }.into(),
                headers: r#"{"x-github-event":"push"}"#.into(),
                body: body.clone(),
                received_at: now_ms(),
            };
            tasks.push(tokio::spawn(async move { store.insert(d).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }
    println!(
        "ledger: 100,000 deliveries stored in {:.1} s\n",
        t.elapsed().as_secs_f64()
    );
    let addr = running.addr;
    let runs = 30;
    println!(
        "{:<44} {:>9} {:>9} {:>10} {:>13}",
        "page (median of 30, fresh connection each)", "TTFB ms", "p90 ms", "whole ms", "size"
    );
    measure(
        addr,
        "anchor: /ui/style.css (embedded, static)",
        "/ui/style.css",
        runs,
    )
    .await;
    measure(addr, "board, 1,000 rows", "/repos/acme/one-k", runs).await;
    measure(addr, "board, 10,000 rows", "/repos/acme/ten-k", runs).await;
    measure(
        addr,
        "board, 10,000 rows: all 8,000 done, page 1",
        "/repos/acme/ten-k?status=done",
        runs,
    )
    .await;
    measure(addr, "overview (both repositories)", "/", runs).await;
    measure(
        addr,
        "deliveries, newest page of 100,000",
        "/deliveries",
        runs,
    )
    .await;
    measure(
        addr,
        "deliveries, deep page (before id 20,000)",
        "/deliveries?before=20000",
        runs,
    )
    .await;
    measure(
        addr,
        "deliveries, forge=gitea",
        "/deliveries?forge=gitea",
        runs,
    )
    .await;
    measure(
        addr,
        "deliveries, rare event (100 of 100,000)",
        "/deliveries?event=release",
        runs,
    )
    .await;
    measure(addr, "one delivery", "/deliveries/50000", runs).await;
    running.shutdown().await;
}
