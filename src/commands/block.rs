//! `block REASON…`: the task is blocked, with the reason in its notes; `unblock` restores the
//! status it had.

use super::{Command, Context, Op, Plan, Problem, Spec};
use crate::tasks::{Status, Task};

pub(super) const SPEC: Spec = Spec {
    name: "block",
    args: "REASON…",
    write: true,
    help: "set the task blocked, with the reason in notes",
    parse: |s, args| {
        if args.is_empty() {
            return Err(Problem::MissingArgument {
                command: s.name,
                args: s.args,
            });
        }
        Ok(Command::Block(args.join(" ").chars().take(200).collect()))
    },
};

pub(super) fn plan(ctx: &Context<'_>, task: &Task, reason: &str) -> Plan {
    let cells = [
        ("status", Status::Blocked.as_str().to_owned()),
        ("notes", format!("blocked: {reason} (@{})", ctx.user)),
    ];
    let mut plan = Plan::row(
        ctx,
        format!("{} is blocked: {reason}", task.id),
        &task.id,
        &cells,
        format!("chore(tasks): {} blocked — {reason}", task.id),
    );
    // Blocking twice keeps the status from before the first time.
    if task.status != Some(Status::Blocked) {
        plan.ops.push(Op::Blocked {
            task: task.id.clone(),
            previous: task.status.map_or("not-started", |s| s.as_str()).to_owned(),
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn remembers_the_status_it_replaces_once() {
        let (tasks, cols) = tasks(TABLE);
        let p = pr();
        let c = ctx(&tasks, &cols, &p, Some(&tasks[0]));
        let plan = super::plan(&c, &tasks[0], "vendor");
        assert_eq!(cell(&plan, "notes"), Some("blocked: vendor (@alice)"));
        assert_eq!(plan.ops.len(), 1);
        let plan = super::plan(&c, &tasks[2], "still");
        assert!(plan.ops.is_empty(), "already blocked");
    }
}
