//! What may start now, what waits on what, and whether the table is deadlocked.

use serde::Serialize;

use super::lint::index;
use super::model::{Status, Task};

/// A dependency that is not yet `done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    pub id: String,
    /// The blocker's status; `None` when the id is not in the table or its status is unreadable.
    pub status: Option<Status>,
    /// Whether the id exists in the table at all.
    pub exists: bool,
}

/// A `not-started` task that cannot start yet, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    pub id: String,
    pub blocked_by: Vec<Blocker>,
}

/// The state of the table for an orchestrator deciding what to hand out next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextTasks {
    /// `not-started` tasks whose every dependency is `done`, in table order.
    pub ready: Vec<String>,
    pub in_progress: Vec<String>,
    pub waiting: Vec<Waiting>,
    /// Tasks neither `done` nor `deferred`; empty when the work is finished.
    pub open: Vec<String>,
    /// Nothing may start, nothing is in progress, yet tasks are open.
    pub deadlock: bool,
}

/// Computes the plan. `deferred` tasks are set aside on purpose and never count as open work.
pub fn plan(tasks: &[Task]) -> NextTasks {
    let by_id = index(tasks);
    let mut p = NextTasks {
        ready: Vec::new(),
        in_progress: Vec::new(),
        waiting: Vec::new(),
        open: Vec::new(),
        deadlock: false,
    };
    for (i, t) in tasks.iter().enumerate() {
        if by_id.get(t.id.as_str()) != Some(&i) {
            continue; // a duplicate id is a lint error, not a second task
        }
        match t.status {
            Some(Status::Done | Status::Deferred) => continue,
            Some(Status::InProgress) => p.in_progress.push(t.id.clone()),
            Some(Status::NotStarted) => {
                let blocked_by: Vec<Blocker> = t
                    .depends_on
                    .iter()
                    .filter_map(|d| match by_id.get(d.as_str()) {
                        Some(&j) if tasks[j].is_done() => None,
                        Some(&j) => Some(Blocker {
                            id: d.clone(),
                            status: tasks[j].status,
                            exists: true,
                        }),
                        None => Some(Blocker {
                            id: d.clone(),
                            status: None,
                            exists: false,
                        }),
                    })
                    .collect();
                if blocked_by.is_empty() {
                    p.ready.push(t.id.clone());
                } else {
                    p.waiting.push(Waiting {
                        id: t.id.clone(),
                        blocked_by,
                    });
                }
            }
            _ => {}
        }
        p.open.push(t.id.clone());
    }
    p.deadlock = p.ready.is_empty() && p.in_progress.is_empty() && !p.open.is_empty();
    p
}
