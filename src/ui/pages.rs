//! The overview of every watched repository, and the ledger of deliveries with its filters.

use std::collections::HashMap;

use maud::{Markup, html};

use super::layout::ago;
use super::{Action, Source};
use crate::event::ForgeKind;
use crate::queue::{Delivery, Filter, State, Store};
use crate::tasks::{self, Status, TaskTable};

/// Deliveries per page.
pub const PAGE: i64 = 50;

/// Header names never shown, whatever a forge sends: signatures, tokens, credentials.
fn hidden_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["signature", "token", "authorization", "secret", "cookie"]
        .iter()
        .any(|w| n.contains(w))
}

/// One row of the overview: a repository's table, counted.
struct RepoRow {
    forge: ForgeKind,
    repo: String,
    counts: HashMap<Status, usize>,
    ready: Vec<String>,
    deadlock: Option<String>,
    problem: Option<String>,
    read_at_ms: i64,
}

async fn repo_rows(source: &dyn Source) -> Vec<RepoRow> {
    let mut rows = Vec::new();
    for w in source.repos().await {
        let snap = source
            .snapshot(w.forge.as_str(), &w.repo)
            .await
            .unwrap_or_default();
        let mut row = RepoRow {
            forge: w.forge,
            repo: w.repo,
            counts: HashMap::new(),
            ready: Vec::new(),
            deadlock: None,
            problem: None,
            read_at_ms: snap.view.read_at_ms,
        };
        match snap.view.table.as_deref().map(TaskTable::parse_bytes) {
            None => {
                row.problem = Some(if snap.view.read_at_ms == 0 {
                    "not read since the start; the next pass reads it".into()
                } else {
                    "no task table on the trunk".into()
                })
            }
            Some(Err(e)) => row.problem = Some(e.to_string()),
            Some(Ok(table)) => {
                let (all, _) = tasks::read_tasks(&table);
                for t in &all {
                    if let Some(s) = t.status {
                        *row.counts.entry(s).or_default() += 1;
                    }
                }
                let plan = tasks::plan(&all);
                row.ready = plan.ready;
                if plan.deadlock {
                    row.deadlock = Some(
                        plan.waiting
                            .iter()
                            .map(|w| {
                                let by: Vec<&str> =
                                    w.blocked_by.iter().map(|b| b.id.as_str()).collect();
                                format!("{} waits on {}", w.id, by.join(", "))
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                    );
                }
            }
        }
        rows.push(row);
    }
    rows
}

fn action_line(a: &Action) -> Markup {
    // Keys read `close:5:<sha>`, `reopen:5:<sha>`, `squash-only:7:<sha>`, …
    let mut parts = a.what.split(':');
    let verb = parts.next().unwrap_or("");
    let number: Option<u64> = parts.next().and_then(|n| n.parse().ok());
    let sha = parts.next().filter(|s| s.len() >= 7);
    let target = match (verb, number) {
        ("close" | "reopen" | "reopen-early", Some(n)) => {
            a.links.issue(n).map(|h| (h, format!("#{n}")))
        }
        (_, Some(n)) => a.links.pull(n).map(|h| (h, format!("#{n}"))),
        _ => None,
    };
    html! {
        li {
            span.when { (a.at) } " "
            span.forge { (a.forge.as_str()) } " "
            a href={ "/repos/" (a.repo) "?forge=" (a.forge.as_str()) } { (a.repo) } " "
            strong { (verb) } " "
            @match (target, number) {
                (Some((h, text)), _) => a href=(h) { (text) },
                (None, Some(n)) => span { "#" (n) },
                _ => span { (a.what) },
            }
            @if let Some(s) = sha {
                " at "
                @match a.links.commit(s) {
                    Some(h) => a href=(h) { code { (&s[..7]) } },
                    None => code { (&s[..7]) },
                }
            }
        }
    }
}

/// `/`: every repository, the bot's last actions, the forges' budgets, the ledger's counts.
pub async fn overview(source: Option<&dyn Source>, store: &Store, now_ms: i64) -> Markup {
    let rows = match source {
        Some(s) => repo_rows(s).await,
        None => Vec::new(),
    };
    let actions = match source {
        Some(s) => s.actions(20).await,
        None => Vec::new(),
    };
    let budgets = source.map(|s| s.budgets()).unwrap_or_default();
    let counts = store.counts().await.unwrap_or_default();
    // The board's columns but `deferred`: work set aside is not counted here.
    let shown = &super::board::COLUMNS[..6];
    html! {
        h1 { "Repositories" }
        @if source.is_none() {
            p.problem { "No forge token is set: deliveries are recorded, tasks are not advanced (README: Forge tokens)." }
        }
        @if rows.is_empty() && source.is_some() {
            p { "No repository watched yet: the first delivery from one adds it." }
        }
        @if !rows.is_empty() {
            table.repos {
                thead { tr {
                    th { "repository" }
                    @for &s in shown { th { (s.as_str()) } }
                    th { "may start now" } th { "read" }
                } }
                tbody {
                    @for r in &rows {
                        tr data-repo=(r.repo) {
                            td { a href={ "/repos/" (r.repo) "?forge=" (r.forge.as_str()) } { (r.repo) } " " span.forge { (r.forge.as_str()) } }
                            @if let Some(p) = &r.problem {
                                td.problem colspan=(shown.len() + 1) { (p) }
                            } @else {
                                @for &s in shown { td.num { (r.counts.get(&s).copied().unwrap_or(0)) } }
                                td {
                                    @if let Some(d) = &r.deadlock { span.deadlock { "deadlock: " (d) } }
                                    @else if r.ready.is_empty() { "—" }
                                    @else { (r.ready.join(", ")) }
                                }
                            }
                            td { @if r.read_at_ms > 0 { (ago(now_ms - r.read_at_ms)) " ago" } }
                        }
                    }
                }
            }
        }
        div.panels {
            section {
                h2 { "Last actions" }
                @if actions.is_empty() { p { "None yet." } }
                ul.actions { @for a in &actions { (action_line(a)) } }
            }
            section {
                h2 { "Forge API budget" }
                ul {
                    @for (forge, b) in &budgets {
                        li {
                            strong { (forge.as_str()) } ": "
                            @match b {
                                Some(b) => {
                                    (b.remaining) @if let Some(l) = b.limit { " of " (l) } " left, refills in "
                                    (ago((b.reset_at * 1000 - now_ms).max(0)))
                                }
                                None => "not announced yet",
                            }
                        }
                    }
                }
                h2 { "Deliveries" }
                ul {
                    @for st in ["queued", "done", "ignored", "dead"] {
                        li { a href={ "/deliveries?state=" (st) } { (st) } ": " (counts.get(st).copied().unwrap_or(0)) }
                    }
                }
            }
        }
    }
}

/// The query of `/deliveries`, as typed: unknown values are an error, not silently all.
#[derive(Debug, Default, serde::Deserialize)]
pub struct DeliveryQuery {
    pub forge: Option<String>,
    pub event: Option<String>,
    pub state: Option<String>,
    pub before: Option<i64>,
}

impl DeliveryQuery {
    /// The filter asked for, or what is wrong with it.
    pub fn filter(&self) -> Result<Filter, String> {
        let blank = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Ok(Filter {
            forge: blank(&self.forge)
                .map(|f| f.parse::<ForgeKind>())
                .transpose()?,
            event: blank(&self.event),
            state: blank(&self.state).map(|s| s.parse::<State>()).transpose()?,
        })
    }
}

/// `/deliveries`: the ledger, newest first, a page at a time.
pub fn deliveries(filter: &Filter, rows: &[Delivery], now_ms: i64) -> Markup {
    let next = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|d| d.id))
        .flatten();
    let keep = |extra: &str| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(f) = filter.forge {
            q.append_pair("forge", f.as_str());
        }
        if let Some(e) = &filter.event {
            q.append_pair("event", e);
        }
        if let Some(s) = filter.state {
            q.append_pair("state", s.as_str());
        }
        let q = q.finish();
        format!(
            "/deliveries?{q}{}{extra}",
            if q.is_empty() { "" } else { "&" }
        )
    };
    html! {
        h1 { "Deliveries" }
        form.filters method="get" action="/deliveries" {
            label { "forge " select name="forge" {
                option value="" { "any" }
                @for f in ForgeKind::ALL { option value=(f.as_str()) selected[filter.forge == Some(f)] { (f.as_str()) } }
            } }
            label { "event " input type="text" name="event" value=(filter.event.as_deref().unwrap_or("")) placeholder="pull_request"; }
            label { "state " select name="state" {
                option value="" { "any" }
                @for s in ["queued", "done", "ignored", "dead"] {
                    option value=(s) selected[filter.state.map(State::as_str) == Some(s)] { (s) }
                }
            } }
            button type="submit" { "Filter" }
        }
        table.deliveries {
            thead { tr { th { "id" } th { "forge" } th { "event" } th { "state" } th { "received" } th { "attempts" } th { "error" } } }
            tbody {
                @for d in rows {
                    tr class={ "state-" (d.state) } data-id=(d.id) {
                        td { a href={ "/deliveries/" (d.id) } { (d.id) } }
                        td { (d.forge) } td { (d.event) } td { (d.state) }
                        td { (ago(now_ms - d.received_at)) " ago" }
                        td.num { (d.attempts) }
                        td.error { @if let Some(e) = &d.last_error { (e) } }
                    }
                }
            }
        }
        @if rows.is_empty() { p { "No delivery matches." } }
        nav.pages {
            @if let Some(id) = next { a href=(keep(&format!("before={id}"))) { "older" } }
        }
    }
}

/// `/deliveries/{id}`: one delivery's headers (credentials never shown) and what processing
/// made of it.
pub fn delivery(d: &Delivery) -> Markup {
    let headers: Vec<(String, String)> = d
        .headers
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !hidden_header(k))
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let result = d
        .result
        .as_ref()
        .map(|r| serde_json::to_string_pretty(r).unwrap_or_default());
    html! {
        h1 { "Delivery " (d.id) }
        dl.fields {
            dt { "forge" } dd { (d.forge) }
            dt { "event" } dd { (d.event) }
            dt { "delivery id" } dd { code { (d.delivery_id) } }
            dt { "state" } dd class={ "state-" (d.state) } { (d.state) }
            dt { "attempts" } dd { (d.attempts) }
            @if let Some(e) = &d.last_error { dt { "error" } dd.error { (e) } }
            @if d.body_pruned { dt { "body" } dd { "pruned by the retention" } }
        }
        h2 { "Headers" }
        table.headers { tbody { @for (k, v) in &headers { tr { th { (k) } td { code { (v) } } } } } }
        h2 { "Normalized event" }
        @match result {
            Some(r) => pre.event { (r) },
            None => p { "Not processed yet." },
        }
        p { a href="/deliveries" { "all deliveries" } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_never_shown() {
        for h in [
            "X-Hub-Signature-256",
            "x-gitlab-token",
            "Authorization",
            "Cookie",
        ] {
            assert!(hidden_header(h), "{h}");
        }
        assert!(!hidden_header("x-github-event"));
    }

    #[test]
    fn an_unknown_filter_value_is_an_error() {
        let q = DeliveryQuery {
            forge: Some("bitbucket".into()),
            ..Default::default()
        };
        assert!(q.filter().unwrap_err().contains("unknown forge"));
        let q = DeliveryQuery {
            state: Some(" ".into()),
            ..Default::default()
        };
        assert_eq!(q.filter().unwrap(), Filter::default());
    }
}
