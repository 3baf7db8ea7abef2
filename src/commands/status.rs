//! `status`: the linked task's row, CI on the current head, what is missing before done, what
//! may start next.

use super::{Command, Context, Plan, Spec, no_args};
use crate::forge::{PrState, PullRequest};

pub(super) const SPEC: Spec = Spec {
    name: "status",
    args: "",
    write: false,
    help: "the linked task's row, CI on the current head, what is missing before done, what may start next",
    parse: |s, args| no_args(s, args, Command::Status),
};

pub(super) fn plan(ctx: &Context<'_>, pr: &PullRequest) -> Plan {
    let Some(task) = ctx.linked else {
        return Plan::reply("this pull request is linked to no task; `claim ID` links it");
    };
    let (ci, green) = ctx.head_ci.unwrap_or(("not read", false));
    let status = task.status.map_or("?", |s| s.as_str());
    let trunk = ctx.trunk;
    let missing = match pr.state {
        _ if task.is_done() => "nothing".to_owned(),
        PrState::Open if green => {
            format!("a squash merge into `{trunk}`, then CI green on the merge commit")
        }
        PrState::Open => format!(
            "CI green on the head, a squash merge into `{trunk}`, then CI green on the merge commit"
        ),
        PrState::Merged => "CI green on the merge commit".into(),
        PrState::Closed => "a merged pull request".into(),
    };
    let plan = crate::tasks::plan(ctx.tasks);
    let ready = if plan.ready.is_empty() {
        "none".to_owned()
    } else {
        plan.ready.join(", ")
    };
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    Plan::reply(format!(
        "{} is **{status}** (agent {}, notes: {})\n\n- CI on `{}`: {ci}\n- missing before done: {missing}\n- may start now: {ready}\n- issues: write `Refs #N`; trunkwarden closes them once CI on the squash commit is green",
        task.id,
        or_dash(&task.agent),
        or_dash(&task.notes),
        pr.head_sha.get(..7).unwrap_or(&pr.head_sha),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn says_what_is_missing_and_what_may_start() {
        let (tasks, cols) = tasks(TABLE);
        let p = pr();
        let mut c = ctx(&tasks, &cols, &p, Some(&tasks[0]));
        c.head_ci = Some(("green (ci/build)", true));
        let r = super::plan(&c, &p).reply;
        assert!(r.starts_with("T-1 is **not-started**"), "{r}");
        assert!(r.contains("- CI on `aaaaaaa`: green (ci/build)"), "{r}");
        assert!(
            r.contains("missing before done: a squash merge into `main`"),
            "{r}"
        );
        assert!(r.contains("may start now: T-1"), "{r}");
        let c = ctx(&tasks, &cols, &p, None);
        assert!(super::plan(&c, &p).reply.contains("linked to no task"));
    }
}
