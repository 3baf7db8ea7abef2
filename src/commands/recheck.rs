//! `recheck`: rerun trunkwarden/policy and trunkwarden/secrets on the current head.

use super::{Command, Plan, Spec, no_args};
use crate::forge::PullRequest;

pub(super) const SPEC: Spec = Spec {
    name: "recheck",
    args: "",
    write: true,
    help: "rerun trunkwarden/policy and trunkwarden/secrets on the current head",
    parse: |s, args| no_args(s, args, Command::Recheck),
};

pub(super) fn plan(pr: &PullRequest) -> Plan {
    let mut plan = Plan::reply(format!(
        "rechecking `{}`",
        pr.head_sha.get(..7).unwrap_or(&pr.head_sha)
    ));
    plan.recheck = true;
    plan
}

#[cfg(test)]
mod tests {
    #[test]
    fn asks_for_the_checks_again() {
        let p = super::super::testing::pr();
        let plan = super::plan(&p);
        assert!(plan.recheck);
        assert_eq!(plan.reply, "rechecking `aaaaaaa`");
    }
}
