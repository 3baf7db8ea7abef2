//! A team's tuning of the scanner and the git inputs of `trunkwarden scan`: allowlists, custom
//! rules, the baseline, `--staged`, `--range` and `--history`, in real repositories.

mod support;

use std::path::Path;
use std::process::Output;

use support::git::{Sandbox, TOKEN, stderr, text, write};

const AWS: &str = "AKIAUJZDESGXDUNCFRQE";
const STRIPE: &str = "sk_live_jq4i9DoV8gz4FkQ1okTBGzvA";

fn scan(sb: &Sandbox, dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["scan"];
    all.extend_from_slice(args);
    sb.tw(dir, &all, None, &[])
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The JSON findings as (path, rule) pairs, sorted.
fn found(o: &Output) -> Vec<(String, String)> {
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(o)));
    let mut got: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["rule"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    got
}

fn pair(path: &str, rule: &str) -> (String, String) {
    (path.to_owned(), rule.to_owned())
}

#[test]
fn allowlists_by_path_regex_and_stopword_scoped_to_rules() {
    let sb = Sandbox::new();
    let r = sb.repo("r");
    write(&r, "src/app.env", &format!("GH={TOKEN}\nAWS={AWS}\n"));
    write(&r, "tests/fixtures/keys.env", &format!("GH={TOKEN}\n"));
    write(&r, "docs/pay.md", &format!("key {STRIPE}\n"));
    let o = scan(&sb, &r, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(found(&o).len(), 4);

    write(
        &r,
        ".trunkwarden.toml",
        r#"
[[secrets.allow]]
description = "fixtures hold fake keys"
paths = ["tests/fixtures/**"]

[[secrets.allow]]
description = "the AWS key of the docs"
rules = ["aws-access-key-id"]
regexes = ["^AKIAUJZ"]

[[secrets.allow]]
rules = ["github-pat"]
stopwords = ["jq4i9dov8"]  # would allow the Stripe key, but only applies to github-pat
"#,
    );
    let o = scan(&sb, &r, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        found(&o),
        vec![
            pair("docs/pay.md", "stripe-secret-key"),
            pair("src/app.env", "github-pat")
        ]
    );

    // A stop-word for every rule: matched in any case inside the secret.
    write(
        &r,
        ".trunkwarden.toml",
        "[[secrets.allow]]\nstopwords = [\"JQ4I9DOV8\", \"aWFeOgd23\"]\n",
    );
    let o = scan(&sb, &r, &["--format", "json"]);
    assert_eq!(
        found(&o),
        vec![pair("src/app.env", "aws-access-key-id")],
        "{}",
        text(&o)
    );
}

#[test]
fn broken_tuning_is_a_clear_error() {
    let sb = Sandbox::new();
    let r = sb.repo("r");
    write(&r, "a.env", &format!("GH={TOKEN}\n"));
    for (policy, expect) in [
        (
            "[[secrets.allow]]\nrules = [\"githb-pat\"]\npaths = [\"x\"]\n",
            "secrets.allow[0]: rules: no rule `githb-pat`",
        ),
        (
            "[[secrets.allow]]\nregexes = [\"(unclosed\"]\n",
            "secrets.allow[0]: regexes `(unclosed`",
        ),
        (
            "[[secrets.allow]]\ndescription = \"nothing to match\"\n",
            "secrets.allow[0]: needs at least one of paths, path_regexes, regexes or stopwords",
        ),
        (
            "[secrets]\ndisable = [\"no-such-rule\"]\n",
            "secrets.disable: no built-in rule `no-such-rule`",
        ),
        (
            "[secrets]\nbaseline = \"../outside.json\"\n",
            "secrets.baseline",
        ),
        ("[secrets]\nallow-list = []\n", "unknown field `allow-list`"),
    ] {
        write(&r, ".trunkwarden.toml", policy);
        let o = scan(&sb, &r, &[]);
        assert_eq!(o.status.code(), Some(2), "{policy}\n{}", text(&o));
        assert!(stderr(&o).contains(expect), "{policy}\n{}", text(&o));
        assert!(!text(&o).contains(TOKEN));
    }
}

#[test]
fn custom_rules_must_prove_their_examples_and_may_replace_a_builtin() {
    let sb = Sandbox::new();
    let r = sb.repo("r");
    write(
        &r,
        "deploy.sh",
        "export ACME_TOKEN=acme_Zk38QpLm20XvBn71Rt\n",
    );
    let custom = r#"
[[secrets.rule]]
id = "acme-token"
description = "ACME internal API token"
keywords = ["acme_"]
regex = '''\b(?P<secret>acme_[A-Za-z0-9]{18})\b'''
entropy = 3.5
examples = ["ACME_TOKEN=acme_Zk38QpLm20XvBn71Rt"]
negatives = ["acme_aaaaaaaaaaaaaaaaaa"]
"#;
    write(&r, ".trunkwarden.toml", custom);
    let o = scan(&sb, &r, &["--format", "json"]);
    assert_eq!(
        found(&o),
        vec![pair("deploy.sh", "acme-token")],
        "{}",
        text(&o)
    );

    // Same id as a built-in: the team's version replaces it (here: only after `GH=`).
    write(&r, "deploy.sh", &format!("GH={TOKEN}\nLEGACY={TOKEN}\n"));
    let team_rule = r#"
[[secrets.rule]]
id = "github-pat"
description = "GitHub token after GH="
keywords = ["GH=ghp_"]
regex = '''GH=(?P<secret>ghp_[A-Za-z0-9]{36})\b'''
checksum = "github-crc32"
"#;
    write(&r, ".trunkwarden.toml", &format!("{custom}{team_rule}"));
    let o = scan(&sb, &r, &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let lines: Vec<(u64, &str)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["line"].as_u64().unwrap(),
                f["description"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(lines, vec![(1, "GitHub token after GH=")], "{}", text(&o));
    write(&r, ".trunkwarden.toml", custom);
    let o = scan(&sb, &r, &["--format", "json"]);
    assert_eq!(found(&o).len(), 2, "the built-in finds both: {}", text(&o));

    // An example the rule does not find is refused before anything is scanned.
    write(
        &r,
        ".trunkwarden.toml",
        &custom.replace("acme_Zk38QpLm20XvBn71Rt\"]", "acme_short\"]"),
    );
    let o = scan(&sb, &r, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("rule `acme-token`: example 1 is not found"),
        "{}",
        text(&o)
    );
}

#[test]
fn baseline_accepts_known_findings_and_reports_new_ones() {
    let sb = Sandbox::new();
    let r = sb.repo("r");
    write(&r, "old.env", &format!("GH={TOKEN}\n"));
    let o = scan(&sb, &r, &["--update-baseline"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stderr(&o).contains("1 finding accepted"), "{}", text(&o));
    let file = std::fs::read_to_string(r.join(".trunkwarden-baseline.json")).unwrap();
    assert!(file.contains("\"rule\": \"github-pat\""), "{file}");
    assert!(!file.contains(TOKEN), "the baseline holds the whole secret");

    let o = scan(&sb, &r, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Moving the secret to another line keeps it accepted; a new secret is reported alone.
    write(&r, "old.env", &format!("# moved\n\nGH={TOKEN}\n"));
    write(&r, "new.env", &format!("AWS={AWS}\n"));
    let o = scan(&sb, &r, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(found(&o), vec![pair("new.env", "aws-access-key-id")]);
    let o = scan(&sb, &r, &["--format", "json", "--no-baseline"]);
    assert_eq!(found(&o).len(), 2, "{}", text(&o));

    // The same secret in another file is another finding.
    write(&r, "copy.env", &format!("GH={TOKEN}\n"));
    let o = scan(&sb, &r, &["--format", "json"]);
    assert!(found(&o).contains(&pair("copy.env", "github-pat")));

    // The pre-commit hook honours the work tree's baseline and allowlists (on a branch: the
    // trunk takes no commits).
    sb.ok(&r, &["switch", "-q", "-c", "work"]);
    sb.ok(&r, &["add", "old.env", ".trunkwarden-baseline.json"]);
    let o = sb.tw(&r, &["hook", "pre-commit"], None, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    sb.ok(&r, &["add", "copy.env"]);
    let o = sb.tw(&r, &["hook", "pre-commit"], None, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("copy.env"), "{}", text(&o));

    // A baseline that is not one is an error naming the file, not an empty baseline.
    write(&r, ".trunkwarden-baseline.json", "{\"findings\": 3}");
    let o = scan(&sb, &r, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains(".trunkwarden-baseline.json: not a baseline file (line 1"),
        "{}",
        text(&o)
    );
}

#[test]
fn git_inputs_staged_range_and_history() {
    let sb = Sandbox::new();
    let r = sb.repo("r");
    let start = sb.ok(&r, &["rev-parse", "HEAD"]);
    // A secret committed and removed again: only history and the range still see it.
    write(&r, "conf/app.env", &format!("GH={TOKEN}\nDEBUG=1\n"));
    sb.ok(&r, &["add", "."]);
    sb.ok(&r, &["commit", "-q", "-m", "feat: config"]);
    let leaked = sb.ok(&r, &["rev-parse", "HEAD"]);
    write(&r, "conf/app.env", "GH=${GITHUB_TOKEN}\nDEBUG=1\nMORE=2\n");
    sb.ok(&r, &["commit", "-qam", "fix: no token"]);
    // The same secret in many later versions of one file is one finding.
    write(&r, "pay.md", &format!("v1 {STRIPE}\n"));
    sb.ok(&r, &["add", "."]);
    sb.ok(&r, &["commit", "-q", "-m", "docs: pay"]);
    let pay = sb.ok(&r, &["rev-parse", "HEAD"]);
    for i in 2..5 {
        write(&r, "pay.md", &format!("v{i} {STRIPE}\n"));
        sb.ok(&r, &["commit", "-qam", &format!("docs: pay {i}")]);
    }
    // A branch that is not checked out.
    sb.ok(&r, &["checkout", "-q", "-b", "side"]);
    write(&r, "side.env", &format!("AWS={AWS}\n"));
    sb.ok(&r, &["add", "."]);
    sb.ok(&r, &["commit", "-q", "-m", "feat: side"]);
    sb.ok(&r, &["checkout", "-q", "main"]);

    let o = scan(&sb, &r, &["--format", "json"]);
    assert_eq!(
        found(&o),
        vec![pair("pay.md", "stripe-secret-key")],
        "{}",
        text(&o)
    );

    let o = scan(&sb, &r, &["--history", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        found(&o),
        vec![
            pair("conf/app.env", "github-pat"),
            pair("pay.md", "stripe-secret-key"),
            pair("side.env", "aws-access-key-id"),
        ]
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let commit_of = |path: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .unwrap()["commit"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(commit_of("conf/app.env"), leaked);
    assert_eq!(
        commit_of("pay.md"),
        pay,
        "reported at the commit that added it"
    );
    assert!(!out(&o).contains(TOKEN));

    let range = format!("{start}..main");
    let o = scan(&sb, &r, &["--range", &range, "--format", "json"]);
    // Every commit's added lines: each version of pay.md adds the line again.
    let got = found(&o);
    assert_eq!(
        got.iter().filter(|p| p.0 == "conf/app.env").count(),
        1,
        "{}",
        text(&o)
    );
    assert_eq!(got.iter().filter(|p| p.0 == "pay.md").count(), 4);
    assert!(!got.iter().any(|p| p.0 == "side.env"));
    let o = scan(&sb, &r, &["--range", &format!("{pay}..main")]);
    assert!(!out(&o).contains("conf/app.env"), "{}", text(&o));
    let o = scan(&sb, &r, &["--range", "main...side"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("symmetric ranges"), "{}", text(&o));
    let o = scan(&sb, &r, &["--range", "nope..main"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`nope` is not a commit"),
        "{}",
        text(&o)
    );

    // Staged: what the index adds, not what the work tree holds.
    write(&r, "staged.env", &format!("GH={TOKEN}\n"));
    write(&r, "unstaged.env", &format!("AWS={AWS}\n"));
    sb.ok(&r, &["add", "staged.env"]);
    let o = scan(&sb, &r, &["--staged", "--format", "json"]);
    assert_eq!(
        found(&o),
        vec![pair("staged.env", "github-pat")],
        "{}",
        text(&o)
    );

    // Outside a repository the git inputs say so.
    let o = scan(&sb, &sb.path("home"), &["--history"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not in a git repository"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_broken_allowlist_on_the_server_falls_back_to_every_rule() {
    let sb = Sandbox::new();
    let bare = sb.bare("server.git");
    let r = sb.repo("r");
    write(
        &r,
        ".trunkwarden.toml",
        "[rules]\ntrunk = \"off\"\n[[secrets.allow]]\nregexes = [\"(broken\"]\n",
    );
    sb.ok(&r, &["add", "."]);
    sb.ok(&r, &["commit", "-q", "-m", "chore: policy"]);
    sb.ok(&r, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let o = sb.tw(
        &r,
        &[
            "hooks",
            "install",
            "--server",
            "--host",
            "bare",
            bare.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    write(&r, "a.env", &format!("GH={TOKEN}\n"));
    sb.ok(&r, &["add", "."]);
    sb.ok(&r, &["commit", "-q", "-m", "feat: a"]);
    let o = sb.git(&r, &["push", bare.to_str().unwrap(), "main"]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = stderr(&o);
    assert!(err.contains("GitHub personal access token"), "{err}");
    assert!(
        err.contains("regexes `(broken`: error: unclosed group;"),
        "{err}"
    );
    assert!(
        err.contains("scanning with every built-in rule and no allowlist"),
        "{err}"
    );
}
