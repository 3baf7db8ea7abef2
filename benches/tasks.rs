//! Parses a 10,000-row TASKS.md, changes one row, serializes it; prints the timings and checks
//! the result differs from the input in exactly one line. Run with `cargo bench --bench tasks`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use trunkwarden::tasks::{TaskTable, lint};

const ROWS: usize = 10_000;
const RUNS: usize = 41;

fn table(rows: usize) -> String {
    let mut s = String::from(
        "# Tasks\n\nPlanned by the orchestrator.\n\n| id | status | description | issue | repo | branch | depends_on | blocks | agent | started_at | completed_at | estimate | used | notes |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for i in 0..rows {
        let dep = if i > 0 {
            format!("BE-SEC-{:05}", i - 1)
        } else {
            String::new()
        };
        let blocks = if i + 1 < rows {
            format!("BE-SEC-{:05}", i + 1)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "| BE-SEC-{i:05} | done | FIND-{i}: harden handler \\| input {i} | #{} | api | fix/sec-{i} | {dep} | {blocks} | worker-{} | 2026-02-05T10:00:00Z | 2026-02-05T11:12:00Z | 8K | 6.1K | PR #{} squash-merged; CI green |\n",
            1000 + i,
            i % 8,
            5000 + i
        ));
    }
    s.push_str("\n## Notes\n\nEverything after the table is kept verbatim.\n");
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let input = table(ROWS);
    let target = format!("BE-SEC-{:05}", ROWS / 2);
    let (mut parse, mut update, mut write, mut total) = (vec![], vec![], vec![], vec![]);
    let mut output = String::new();
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let mut t = TaskTable::parse(black_box(&input)).expect("bench table parses");
        let t1 = Instant::now();
        let row = t.find(&target).expect("row exists");
        t.set(row, "status", "in-progress").expect("set");
        t.set(row, "notes", "reopened: CI on main failed")
            .expect("set");
        let t2 = Instant::now();
        output = t.to_string();
        let t3 = Instant::now();
        parse.push(t1 - t0);
        update.push(t2 - t1);
        write.push(t3 - t2);
        total.push(t3 - t0);
    }
    let changed: Vec<(usize, &str)> = input
        .lines()
        .zip(output.lines())
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (_, b))| (i + 1, b))
        .collect();
    assert_eq!(input.lines().count(), output.lines().count());
    assert_eq!(changed.len(), 1, "exactly one line must differ");

    let lint_start = Instant::now();
    let (tasks, diags) = lint(&TaskTable::parse(&input).expect("parses"));
    let lint_time = lint_start.elapsed();
    assert!(diags.is_empty(), "bench table is consistent: {diags:?}");

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "tasks table: {ROWS} rows, {:.1} MB, median of {RUNS} runs",
        input.len() as f64 / 1e6
    );
    println!("  parse                {:8.3} ms", ms(median(parse)));
    println!("  find + set 2 cells   {:8.3} ms", ms(median(update)));
    println!("  serialize            {:8.3} ms", ms(median(write)));
    println!("  total                {:8.3} ms", ms(median(total)));
    println!(
        "  lint (typed read + every rule, {} tasks, once) {:.3} ms",
        tasks.len(),
        ms(lint_time)
    );
    println!(
        "  diff: 1 line changed (line {}): {}",
        changed[0].0, changed[0].1
    );
}
