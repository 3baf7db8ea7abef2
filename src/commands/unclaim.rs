//! `unclaim`: undo a claim; the task goes back to not-started and this pull request stops
//! counting for it.

use super::{Command, Context, Op, Plan, Spec, no_args};
use crate::forge::PullRequest;
use crate::tasks::{Status, Task};

pub(super) const SPEC: Spec = Spec {
    name: "unclaim",
    args: "",
    write: true,
    help: "undo the claim: the task goes back to not-started",
    parse: |s, args| no_args(s, args, Command::Unclaim),
};

pub(super) fn plan(ctx: &Context<'_>, pr: &PullRequest, task: &Task) -> Plan {
    let cells = [
        ("status", Status::NotStarted.as_str().to_owned()),
        (
            "notes",
            format!("unclaimed from PR #{} by @{}", pr.number, ctx.user),
        ),
    ];
    let mut plan = Plan::row(
        ctx,
        format!("unclaimed {}: not-started again", task.id),
        &task.id,
        &cells,
        format!(
            "chore(tasks): {} not-started — unclaimed from PR #{}",
            task.id, pr.number
        ),
    );
    plan.ops.push(Op::Claim {
        pr: pr.number,
        task: String::new(),
    });
    plan
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn the_task_goes_back_and_the_link_is_dropped() {
        let (tasks, cols) = tasks(TABLE);
        let p = pr();
        let c = ctx(&tasks, &cols, &p, Some(&tasks[0]));
        let plan = super::plan(&c, &p, &tasks[0]);
        assert_eq!(cell(&plan, "status"), Some("not-started"));
        assert_eq!(
            plan.ops,
            [super::Op::Claim {
                pr: 9,
                task: String::new()
            }]
        );
    }
}
