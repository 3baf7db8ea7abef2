//! `merge [cancel]`: squash-merge into the trunk once CI on the current head is green (a new
//! push cancels it); `merge cancel` withdraws it.

use super::{Command, Context, Op, Plan, Problem, Spec};
use crate::forge::{PrState, PullRequest};

pub(super) const SPEC: Spec = Spec {
    name: "merge",
    args: "[cancel]",
    write: true,
    help: "squash-merge into the trunk once CI on the current head is green (cancelled by a new push); `merge cancel` withdraws it",
    parse: |s, args| match args {
        [] => Ok(Command::Merge),
        [c] if c.eq_ignore_ascii_case("cancel") => Ok(Command::MergeCancel),
        [other, ..] => Err(Problem::ExtraArgument {
            command: s.name,
            extra: other.chars().take(40).collect(),
        }),
    },
};

pub(super) fn plan(ctx: &Context<'_>, pr: &PullRequest) -> Plan {
    if pr.state != PrState::Open {
        return Plan::reply("this pull request is not open");
    }
    if pr.base_ref != ctx.trunk {
        return Plan::reply(format!(
            "this pull request targets `{}`; the bot merges only into `{}`",
            pr.base_ref, ctx.trunk
        ));
    }
    let mut plan = Plan::reply(format!(
        "will squash-merge once CI on `{}` is green; a new push cancels this",
        pr.head_sha.get(..7).unwrap_or(&pr.head_sha)
    ));
    plan.ops.push(Op::Merge {
        pr: pr.number,
        head: pr.head_sha.clone(),
        by: ctx.user.to_owned(),
    });
    plan
}

pub(super) fn cancel(ctx: &Context<'_>, pr: &PullRequest) -> Plan {
    let mut plan = Plan::reply(if ctx.merge_pending {
        "the pending merge is withdrawn"
    } else {
        "there was no pending merge"
    });
    plan.ops.push(Op::CancelMerge { pr: pr.number });
    plan
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Command, Op, parse};

    #[test]
    fn asks_for_a_merge_of_this_head_into_the_trunk_only() {
        let (tasks, cols) = tasks(TABLE);
        let p = pr();
        let c = ctx(&tasks, &cols, &p, None);
        let plan = super::plan(&c, &p);
        assert!(matches!(&plan.ops[..], [Op::Merge { pr: 9, by, .. }] if by == "alice"));
        let mut other = pr();
        other.base_ref = "release".into();
        assert!(
            super::plan(&c, &other)
                .reply
                .contains("merges only into `main`")
        );
        assert_eq!(parse("merge cancel"), Ok(Command::MergeCancel));
        assert!(parse("merge now").is_err());
    }
}
