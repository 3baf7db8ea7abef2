//! `claim ID`: link this pull request to a task that may start — in progress, with its agent,
//! start and branch.

use super::{Command, Context, Op, Plan, Problem, Spec, one_arg};
use crate::forge::PullRequest;
use crate::tasks::Status;

pub(super) const SPEC: Spec = Spec {
    name: "claim",
    args: "ID",
    write: true,
    help: "link this pull request to task ID (not-started or blocked, dependencies done): in-progress, agent, started_at, branch",
    parse: |s, args| {
        let id = one_arg(s, args)?;
        if !crate::tasks::is_valid_id(id) {
            return Err(Problem::BadArgument {
                command: s.name,
                message: format!(
                    "`{}` is not a task id (like MS-SEC-001)",
                    id.chars().take(40).collect::<String>()
                ),
            });
        }
        Ok(Command::Claim(id.to_owned()))
    },
};

pub(super) fn plan(ctx: &Context<'_>, pr: &PullRequest, id: &str) -> Plan {
    let Some(task) = ctx.tasks.iter().find(|x| x.id.eq_ignore_ascii_case(id)) else {
        return Plan::reply(format!("there is no task `{id}` in {}", ctx.tasks_path));
    };
    if !matches!(task.status, Some(Status::NotStarted | Status::Blocked)) {
        let s = task.status.map_or("?", |s| s.as_str());
        return Plan::reply(format!(
            "{} is {s}; only not-started or blocked tasks can be claimed",
            task.id
        ));
    }
    let open: Vec<&str> = task
        .depends_on
        .iter()
        .filter(|d| !ctx.tasks.iter().any(|x| &x.id == *d && x.is_done()))
        .map(String::as_str)
        .collect();
    if !open.is_empty() {
        return Plan::reply(format!(
            "{} depends on {}, not done yet",
            task.id,
            open.join(", ")
        ));
    }
    let mut cells = vec![
        ("status", Status::InProgress.as_str().to_owned()),
        ("notes", format!("PR #{}", pr.number)),
    ];
    if task.agent.is_empty() {
        cells.push(("agent", pr.author.login.clone()));
    }
    if task.started_at.is_none() {
        cells.push(("started_at", ctx.now.to_owned()));
    }
    cells.push(("branch", pr.head_ref.clone()));
    let mut plan = Plan::row(
        ctx,
        format!("claimed {} for this pull request: in-progress", task.id),
        &task.id,
        &cells,
        format!(
            "chore(tasks): {} in-progress — claimed for PR #{} by @{}",
            task.id, pr.number, ctx.user
        ),
    );
    plan.ops.push(Op::Claim {
        pr: pr.number,
        task: task.id.clone(),
    });
    plan
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Command, Op, parse};

    #[test]
    fn claims_a_task_that_may_start_and_refuses_the_others() {
        let (tasks, cols) = tasks(TABLE);
        let p = pr();
        let c = ctx(&tasks, &cols, &p, None);
        let plan = super::plan(&c, &p, "t-1");
        assert_eq!(plan.reply, "claimed T-1 for this pull request: in-progress");
        assert_eq!(cell(&plan, "status"), Some("in-progress"));
        assert_eq!(cell(&plan, "agent"), Some("alice"));
        assert_eq!(cell(&plan, "branch"), Some("misc"));
        assert_eq!(cell(&plan, "started_at"), Some("2026-12-07T06:00:00Z"));
        assert_eq!(
            plan.ops,
            [Op::Claim {
                pr: 9,
                task: "T-1".into()
            }]
        );
        assert_eq!(
            super::plan(&c, &p, "T-2").reply,
            "T-2 depends on T-1, not done yet"
        );
        assert!(super::plan(&c, &p, "T-9").reply.contains("no task `T-9`"));
        assert!(parse("claim x").is_err());
        assert_eq!(
            parse("claim MS-SEC-001"),
            Ok(Command::Claim("MS-SEC-001".into()))
        );
    }

    #[test]
    fn write_access_is_checked_first() {
        let (tasks, cols) = tasks(TABLE);
        let p = pr();
        let mut c = ctx(&tasks, &cols, &p, None);
        c.user = "bob";
        c.permission = Some(crate::forge::Permission::Read);
        let plan = super::super::plan(&Command::Claim("T-1".into()), &c);
        assert_eq!(plan.reply, "`claim` needs write access; @bob has read");
        assert!(plan.rows.is_empty());
    }
}
