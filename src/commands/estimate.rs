//! `estimate TOKENS`: the task's estimate (e.g. 8K).

use super::{Command, Context, Plan, Problem, Spec, one_arg};
use crate::tasks::{Task, Tokens};

pub(super) const SPEC: Spec = Spec {
    name: "estimate",
    args: "TOKENS",
    write: true,
    help: "set estimate (e.g. 8K)",
    parse: |s, args| {
        let n = one_arg(s, args)?;
        let t: Tokens = n.parse().map_err(|e: String| Problem::BadArgument {
            command: s.name,
            message: e,
        })?;
        Ok(Command::Estimate(t))
    },
};

pub(super) fn plan(ctx: &Context<'_>, task: &Task, n: Tokens) -> Plan {
    if !ctx.has_column("estimate") {
        return Plan::reply(format!(
            "{} has no `estimate` column; add one to record estimates",
            ctx.tasks_path
        ));
    }
    Plan::row(
        ctx,
        format!("{} estimate is {n}", task.id),
        &task.id,
        &[("estimate", n.to_string())],
        format!("chore(tasks): {} estimate {n}", task.id),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn sets_the_estimate_where_the_table_has_the_column() {
        let (tasks, cols) = tasks(TABLE);
        let p = pr();
        let c = ctx(&tasks, &cols, &p, Some(&tasks[0]));
        let plan = super::plan(&c, &tasks[0], crate::tasks::Tokens(12_000));
        assert_eq!(cell(&plan, "estimate"), Some("12K"));
        let none: Vec<String> = vec!["id".into(), "status".into()];
        let c = ctx(&tasks, &none, &p, Some(&tasks[0]));
        assert!(
            super::plan(&c, &tasks[0], crate::tasks::Tokens(1))
                .reply
                .contains("no `estimate` column")
        );
    }
}
