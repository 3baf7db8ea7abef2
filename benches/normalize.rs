//! Normalizes real deliveries from webhook-fixtures/ and prints the time per delivery, beside a
//! full `serde_json::Value` parse of the same body (what normalization cost before it kept only
//! the fields it reads) and the floor: checking that the body is JSON and nothing else. Run with
//! `cargo bench --bench normalize`.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use trunkwarden::webhook::{ForgeKind, fixture, meta, normalize};

const RUNS: u32 = 20_000;

fn per_run(f: impl Fn()) -> f64 {
    for _ in 0..RUNS / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..RUNS {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(RUNS)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("webhook-fixtures");
    println!(
        "{:<48} {:>7} {:>14} {:>12} {:>14}",
        "delivery", "bytes", "normalize µs", "Value µs", "JSON check µs"
    );
    for (forge, name) in [
        (ForgeKind::Github, "push.none.4"),
        (ForgeKind::Github, "pull_request.opened.0"),
        (ForgeKind::Gitea, "push.branch.woodpecker"),
        (ForgeKind::Gitea, "pull_request.opened.go-scm"),
        (ForgeKind::Gitlab, "merge_request.close.woodpecker"),
    ] {
        let path = root.join(forge.as_str()).join(format!("{name}.json"));
        let Ok(f) = fixture::read(&path) else {
            println!("{name}: no such fixture");
            continue;
        };
        let m = meta(forge, &f.headers, &f.body).expect("fixture headers");
        let event = normalize(forge, &m.event, None, &f.body).expect("fixture normalizes");
        assert!(event.is_some(), "{name} is an event the bot acts on");
        let ours = per_run(|| {
            black_box(normalize(forge, &m.event, None, black_box(&f.body)).ok());
        });
        let full = per_run(|| {
            black_box(serde_json::from_slice::<serde_json::Value>(black_box(&f.body)).ok());
        });
        let check = per_run(|| {
            black_box(serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&f.body)).ok());
        });
        println!(
            "{:<48} {:>7} {:>14.2} {:>12.2} {:>14.2}",
            format!("{forge}/{name}"),
            f.body.len(),
            ours,
            full,
            check
        );
    }
}
