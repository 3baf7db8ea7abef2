//! `used TOKENS`: what the task used; the variance against the estimate is said, and recorded
//! as a learning beyond ±50%.

use super::{Command, Context, Plan, Problem, Spec, one_arg};
use crate::tasks::{Task, Tokens};

pub(super) const SPEC: Spec = Spec {
    name: "used",
    args: "TOKENS",
    write: true,
    help: "set used (e.g. 12.5K); reports the variance and records a learning beyond ±50%",
    parse: |s, args| {
        let n = one_arg(s, args)?;
        let t: Tokens = n.parse().map_err(|e: String| Problem::BadArgument {
            command: s.name,
            message: e,
        })?;
        Ok(Command::Used(t))
    },
};

pub(super) fn plan(ctx: &Context<'_>, task: &Task, n: Tokens) -> Plan {
    if !ctx.has_column("used") {
        return Plan::reply(format!(
            "{} has no `used` column; add one to record usage",
            ctx.tasks_path
        ));
    }
    let variance = task.estimate.and_then(|e| crate::tasks::ratio(e, n));
    let mut learning = None;
    let said = match (task.estimate, variance) {
        (Some(e), Some(v)) => {
            learning = crate::tasks::learning_entry(&task.id, e, n, ctx.now);
            format!(
                "{} used {n} against an estimate of {e}: {:+.0}%{}",
                task.id,
                v * 100.0,
                if v.abs() > 0.5 {
                    " — recorded as a learning"
                } else {
                    ""
                }
            )
        }
        _ => format!("{} used {n} (no estimate to compare with)", task.id),
    };
    let mut plan = Plan::row(
        ctx,
        said,
        &task.id,
        &[("used", n.to_string())],
        format!("chore(tasks): {} used {n}", task.id),
    );
    plan.learning = learning;
    plan
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::tasks::Tokens;

    #[test]
    fn far_from_the_estimate_is_a_learning() {
        let (tasks, cols) = tasks(TABLE);
        let p = pr();
        let c = ctx(&tasks, &cols, &p, Some(&tasks[0]));
        let plan = super::plan(&c, &tasks[0], Tokens(20_000));
        assert_eq!(
            plan.reply,
            "T-1 used 20K against an estimate of 8K: +150% — recorded as a learning"
        );
        assert_eq!(cell(&plan, "used"), Some("20K"));
        assert!(plan.learning.is_some());
        let near = super::plan(&c, &tasks[0], Tokens(9_000));
        assert!(near.learning.is_none());
        let plan = super::plan(&c, &tasks[1], Tokens(1_000));
        assert_eq!(plan.reply, "T-2 used 1K (no estimate to compare with)");
    }
}
