//! `unblock`: the task returns to the status it had before it was blocked.

use super::{Command, Context, Plan, Spec, no_args};
use crate::forge::PullRequest;
use crate::tasks::{Status, Task};

pub(super) const SPEC: Spec = Spec {
    name: "unblock",
    args: "",
    write: true,
    help: "set the task back to what it was before block",
    parse: |s, args| no_args(s, args, Command::Unblock),
};

pub(super) fn plan(ctx: &Context<'_>, pr: &PullRequest, task: &Task) -> Plan {
    if task.status != Some(Status::Blocked) {
        return Plan::reply(format!("{} is not blocked", task.id));
    }
    let back = ctx
        .blocked_before
        .unwrap_or(Status::InProgress.as_str())
        .to_owned();
    let cells = [
        ("status", back.clone()),
        ("notes", format!("PR #{}", pr.number)),
    ];
    Plan::row(
        ctx,
        format!("{} is {back} again", task.id),
        &task.id,
        &cells,
        format!(
            "chore(tasks): {} {back} — unblocked by @{}",
            task.id, ctx.user
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn restores_what_was_there() {
        let (tasks, cols) = tasks(TABLE);
        let p = pr();
        let mut c = ctx(&tasks, &cols, &p, Some(&tasks[2]));
        c.blocked_before = Some("not-started");
        let plan = super::plan(&c, &p, &tasks[2]);
        assert_eq!(cell(&plan, "status"), Some("not-started"));
        assert_eq!(super::plan(&c, &p, &tasks[0]).reply, "T-1 is not blocked");
    }
}
