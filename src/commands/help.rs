//! `help`: the commands, who may run them, and how to name a task's issues.

use super::{COMMANDS, Command, Context, Plan, Spec, no_args};

pub(super) const SPEC: Spec = Spec {
    name: "help",
    args: "",
    write: false,
    help: "this table",
    parse: |s, args| no_args(s, args, Command::Help),
};

/// The reply: every declaration, then what to write for issues.
pub(super) fn plan(ctx: &Context<'_>) -> Plan {
    Plan::reply(format!("\n\n{}", text(ctx.prefix)))
}

/// The table of commands, generated from the declarations.
pub(super) fn text(prefix: &str) -> String {
    let mut out = format!(
        "Commands, one per line, as `{prefix} <command>`:\n\n| command | who | what it does |\n|---|---|---|\n"
    );
    for s in COMMANDS {
        let synopsis = if s.args.is_empty() {
            s.name.to_owned()
        } else {
            format!("{} {}", s.name, s.args)
        };
        let who = if s.write { "write access" } else { "anyone" };
        out.push_str(&format!("| `{synopsis}` | {who} | {} |\n", s.help));
    }
    out.push_str(
        "\nName a task's issues with `Refs #N`: trunkwarden closes them once the pull request is \
         squash-merged and CI on the squash commit is green. A closing keyword (`Closes #N`, \
         `Fixes #N`) lets the forge close them at merge, before CI has run; trunkwarden/policy \
         fails on it, and an issue closed that way is reopened until green.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn help_answers_anywhere_even_without_a_pull_request() {
        let (tasks, cols) = tasks(TABLE);
        let p = pr();
        let mut c = ctx(&tasks, &cols, &p, None);
        c.pr = None;
        let plan = super::super::plan(&super::super::Command::Help, &c);
        assert!(plan.reply.contains("| `claim ID` | write access |"));
        assert!(plan.reply.contains("with `Refs #N`"));
        assert!(plan.rows.is_empty() && plan.ops.is_empty());
    }
}
