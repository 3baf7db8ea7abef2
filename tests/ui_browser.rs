//! The status page in a real browser: Debian's Chromium driven through chromedriver, against
//! the real server, ledger and engine over a fake forge. Each test saves screenshots under
//! the test output directory (`target/tmp/ui/`).

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use support::fake_forge::Happening;
use support::story::Story;

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn driver() -> Driver {
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let port = free_port();
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {bin} ({e}); scripts/test installs Debian's chromium-driver")
        });
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d
}

async fn browser(d: &Driver) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut caps = serde_json::Map::new();
    let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1500,1100", "--force-prefers-reduced-motion"],
        }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a Chromium session")
}

/// Where this test's screenshots go.
fn shots() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            shot(c, "failed").await;
            let page = c.source().await.unwrap_or_default();
            panic!("never appeared: {css}: {e}\npage:\n{page}")
        }
    }
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_follows_a_task_from_pull_request_to_done_without_a_reload() {
    let d = driver().await;
    let s = Story::new("github").await;
    let base = format!("http://{}", s.server.as_ref().unwrap().addr);
    let c = browser(&d).await;

    // A pull request whose title is markup: it must show as text wherever it shows.
    let hostile = "<img src=x id=pwned><script>window.pwned=1</script>";
    s.fake.add_pull(7, "alice", "t-1-oidc", hostile, "Refs #3");
    s.send(&Happening::PrOpened(7)).await;
    s.until("T-1 in progress", |s| s.row("T-1").contains("in-progress"))
        .await;
    s.idle().await;

    c.goto(&format!("{base}/repos/acme/app")).await.unwrap();
    wait_for(
        &c,
        ".column[data-status='in-progress'] .card[data-id='T-1']",
    )
    .await;
    assert_eq!(
        count(&c, ".column[data-status='not-started'] .card").await,
        2,
        "T-2 and T-3 wait"
    );
    // The graph: T-1 → T-2 → T-3, both edges blocking while T-1 is not done.
    for (from, to) in [("T-1", "T-2"), ("T-2", "T-3")] {
        let css = format!("path.edge.blocking[data-from='{from}'][data-to='{to}']");
        assert_eq!(count(&c, &css).await, 1, "{css}");
    }
    assert_eq!(count(&c, "path.edge").await, 2);
    assert_eq!(
        count(&c, ".stage[data-stage='open'] .item[data-task='T-1']").await,
        1
    );
    shot(&c, "board-open").await;

    // Squash-merged, CI on the squash commit pending: the pipeline shows the wait.
    let merge = s.merge().await;
    s.ci(&merge, "ci/build", "pending");
    s.send(&Happening::PrMerged(7)).await;
    s.until("merge noted", |s| s.sticky(7).contains("waiting for CI"))
        .await;
    s.idle().await;
    // The page refreshes itself: no goto here.
    let item = wait_for(&c, ".stage[data-stage='waiting'] .item[data-task='T-1']").await;
    let text = item.text().await.unwrap();
    assert!(text.contains(&merge[..7]), "{text}");
    assert!(
        text.contains("waiting on: ci/build") && text.contains(" · waiting "),
        "how long, and on which context: {text}"
    );
    shot(&c, "board-waiting").await;

    // Green on the squash commit: done, without a reload; the edge from T-1 is met.
    s.ci(&merge, "ci/build", "success");
    s.send(&Happening::Status {
        sha: merge.clone(),
        context: "ci/build".into(),
        success: true,
    })
    .await;
    s.until("done", |s| s.row("T-1").contains("| done ")).await;
    wait_for(&c, ".stage[data-stage='done'] .item[data-task='T-1']").await;
    wait_for(&c, ".column[data-status='done'] .card[data-id='T-1']").await;
    wait_for(&c, "path.edge.met[data-from='T-1'][data-to='T-2']").await;
    let ready = c.find(Locator::Css("p.ready")).await.unwrap();
    assert!(ready.text().await.unwrap().contains("T-2"));
    shot(&c, "board-done").await;

    // The overview lists the repository with its counts.
    c.goto(&base).await.unwrap();
    let row = wait_for(&c, "tr[data-repo='acme/app']").await;
    assert!(row.text().await.unwrap().contains("T-2"), "T-2 may start");
    shot(&c, "overview").await;

    // Deliveries: filter by event through the form; every row shown is that event.
    c.goto(&format!("{base}/deliveries")).await.unwrap();
    let all = count(&c, "table.deliveries tbody tr").await;
    assert!(all >= 3, "{all} deliveries listed");
    let event = c.find(Locator::Css("input[name='event']")).await.unwrap();
    event.send_keys("pull_request").await.unwrap();
    c.find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "table.deliveries").await;
    let rows = c
        .find_all(Locator::Css("table.deliveries tbody tr"))
        .await
        .unwrap();
    assert!(
        !rows.is_empty() && rows.len() < all,
        "{} of {all}",
        rows.len()
    );
    for r in &rows {
        let t = r.text().await.unwrap();
        assert!(t.contains("pull_request"), "{t}");
    }
    shot(&c, "deliveries").await;

    // The hostile title: shown as text on the delivery's page, never run or parsed.
    rows[rows.len() - 1]
        .find(Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let pre = wait_for(&c, "pre.event").await;
    assert!(pre.text().await.unwrap().contains("window.pwned=1"));
    assert_eq!(count(&c, "#pwned").await, 0, "the title became an element");
    let pwned = c
        .execute("return window.pwned === undefined;", vec![])
        .await;
    assert_eq!(pwned.unwrap(), serde_json::json!(true), "the title ran");
    shot(&c, "delivery").await;

    c.close().await.unwrap();
}

/// A table with every status, a chain of dependencies, a deadlock-free wait and variances:
/// what a board looks like in a real repository, and the README's screenshot.
const SAMPLE: &str = "# Tasks

| id | status | description | issue | branch | depends_on | blocks | agent | started_at | completed_at | estimate | used | notes |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
| MS-SEC-001 | done | SEC-API-1: validate OIDC issuer | #337 | fix/oidc | | MS-SEC-002, MS-SEC-004 | worker-1 | 2026-02-05T10:00:00Z | 2026-02-05T11:12:00Z | 8K | 6.1K | PR #341 squash-merged as 9f1c2ab; CI green (ci/test, ci/lint); closed #337 |
| MS-SEC-002 | done | SEC-WEB-2: escape user HTML | #338 | fix/escape | MS-SEC-001 | MS-SEC-003 | worker-2 | 2026-02-05T11:20:00Z | 2026-02-05T14:02:00Z | 10K | 23K | PR #342 squash-merged as 1b2c3d4; CI green (ci/test); closed #338 |
| MS-SEC-003 | in-progress | SEC-API-4: rate-limit login | #339 | fix/rate-limit | MS-SEC-002 | MS-SEC-005 | worker-3 | 2026-02-06T09:00:00Z | | 5K | | PR #350 |
| MS-SEC-004 | needs-qa | SEC-API-7: rotate signing keys | #340 | fix/keys | MS-SEC-001 | | worker-1 | 2026-02-05T12:00:00Z | | 12K | 14K | PR #344 reached main as a merge commit, not a squash |
| MS-SEC-005 | not-started | SEC-WEB-5: strict CSP headers | #345 | | MS-SEC-003 | | | | | 6K | | |
| MS-OPS-001 | done | OPS-1: nightly backups verified | #346 | ops/backups | | MS-OPS-002 | worker-2 | 2026-02-04T08:00:00Z | 2026-02-04T09:00:00Z | 4K | 3.5K | PR #330 squash-merged as 7aa01bc; CI green (ci/test); closed #346 |
| MS-OPS-002 | failed | OPS-2: zero-downtime migrations | #347 | ops/migrate | MS-OPS-001 | MS-OPS-003 | worker-4 | 2026-02-05T08:00:00Z | 2026-02-05T16:00:00Z | 9K | 21K | PR #339 squash-merged as 5e6f7a8; CI red on main (ci/migrate) |
| MS-OPS-003 | blocked | OPS-3: blue/green deploys | #348 | | MS-OPS-002 | | | | | 15K | | blocked: MS-OPS-002 failed |
| MS-DOC-001 | not-started | DOC-1: runbook for key rotation | TASKS:P3 | | MS-SEC-004 | | | | | 3K | | |
| MS-DOC-002 | deferred | DOC-2: architecture decision records | | | | | | | | 8K | | after the release |
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_board_shows_columns_graph_and_variance() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("TASKS.md");
    std::fs::write(&table, SAMPLE).unwrap();
    let out = dir.path().join("site");
    let run = Command::new(env!("CARGO_BIN_EXE_trunkwarden"))
        .args(["tasks", "--file"])
        .arg(&table)
        .args(["board", "--web-url", "https://github.com/acme/app", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let d = driver().await;
    let c = browser(&d).await;
    c.goto(&format!("file://{}", out.join("index.html").display()))
        .await
        .unwrap();
    wait_for(&c, ".board").await;
    for (status, n) in [
        ("done", 3),
        ("in-progress", 1),
        ("not-started", 2),
        ("failed", 1),
        ("needs-qa", 1),
        ("blocked", 1),
        ("deferred", 1),
    ] {
        let css = format!(".column[data-status='{status}'] .card");
        assert_eq!(count(&c, &css).await, n, "{css}");
    }
    // Every depends_on is an edge; those from unfinished tasks block.
    assert_eq!(count(&c, "path.edge").await, 7);
    assert_eq!(count(&c, "path.edge.blocking").await, 3);
    assert_eq!(
        count(
            &c,
            "path.edge.met[data-from='MS-SEC-001'][data-to='MS-SEC-002']"
        )
        .await,
        1
    );
    // Variance: MS-SEC-002 used 23K of 10K (+130%), critical.
    let bar = wait_for(&c, "g.bar.critical[data-id='MS-SEC-002']").await;
    assert!(bar.text().await.unwrap().contains("+130%"));
    // Links go to the forge.
    let issue = c
        .find(Locator::Css("#task-MS-SEC-003 a[href$='/issues/339']"))
        .await;
    assert!(issue.is_ok(), "the issue links to GitHub");
    let stage = c
        .find(Locator::Css(".stage[data-stage='refused']"))
        .await
        .unwrap();
    let text = stage.text().await.unwrap();
    assert!(
        text.contains("MS-OPS-002") && text.contains("MS-SEC-004"),
        "{text}"
    );
    // The whole page in one picture: the graph and the chart sit below the fold.
    let height = c
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(1100);
    c.set_window_size(1500, height.min(4000) as u32 + 140)
        .await
        .unwrap();
    shot(&c, "board-static").await;
    // `TRUNKWARDEN_UPDATE_SCREENSHOT=1` refreshes the README's picture from this run.
    if std::env::var_os("TRUNKWARDEN_UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(
            shots().join("board-static.png"),
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/board.png"),
        )
        .unwrap();
    }
    c.close().await.unwrap();
}
