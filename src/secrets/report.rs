//! Findings for people (text), scripts (JSON) and code-scanning UIs (SARIF 2.1.0).

use std::fmt::Write as _;

use serde_json::json;

use super::{Finding, SecretRule};

/// `path:line:column: rule: description (masked)` per finding.
pub fn text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let _ = writeln!(
            out,
            "{}:{}:{}: {}: {} ({})",
            f.path, f.line, f.column, f.rule, f.description, f.masked
        );
    }
    out
}

/// A JSON array of findings.
pub fn json(findings: &[Finding]) -> String {
    serde_json::to_string_pretty(findings).unwrap_or_else(|_| "[]".into()) + "\n"
}

/// What to do about a leaked secret, for a code-scanning UI's help pane.
fn help(r: &SecretRule) -> serde_json::Value {
    let text = format!(
        "{} found. Treat it as leaked: revoke or rotate it at its provider first, then remove it \
         from the code (and from history, where the repository is public), and load it from the \
         environment or a secret store. If it is not a secret, allow it with `trunkwarden:allow` \
         on its line, an allowlist in .trunkwarden.toml, or the baseline.",
        r.description
    );
    let markdown = format!(
        "**{}** found.\n\n1. **Revoke or rotate it** at its provider — removing it from the code \
         does not make it secret again.\n2. Remove it from the code (and from history, where the \
         repository is public).\n3. Load it from the environment or a secret store.\n\nNot a \
         secret? Add `trunkwarden:allow` to its line, an `[[secrets.allow]]` entry to \
         `.trunkwarden.toml`, or accept it with `trunkwarden scan --update-baseline`.",
        r.description
    );
    json!({ "text": text, "markdown": markdown })
}

/// A path as a SARIF relative URI: `/`-separated, without `./`, percent-encoded.
fn uri(path: &str) -> String {
    let p = super::tuning::normal_path(path).replace('\\', "/");
    p.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A SARIF 2.1.0 log with one run; rules that produced findings are described in the driver,
/// with what to do about them and a severity GitHub code scanning ranks by.
pub fn sarif(findings: &[Finding], rules: &[SecretRule]) -> String {
    let used: Vec<&SecretRule> = rules
        .iter()
        .filter(|r| findings.iter().any(|f| f.rule == r.id))
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            let mut result = json!({
                "ruleId": f.rule,
                "level": "error",
                "message": { "text": format!("{} ({})", f.description, f.masked) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&f.path), "uriBaseId": "%SRCROOT%" },
                        "region": { "startLine": f.line, "startColumn": f.column }
                    }
                }],
                "partialFingerprints": { "trunkwarden/v1": f.fingerprint }
            });
            if let Some(commit) = &f.commit {
                result["properties"] = json!({ "commitSha": commit });
            }
            result
        })
        .collect();
    let log = json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": { "driver": {
                "name": "trunkwarden",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": used.iter().map(|r| json!({
                    "id": r.id,
                    "name": r.id,
                    "shortDescription": { "text": r.description },
                    "fullDescription": { "text": format!("{}: a credential written into the repository.", r.description) },
                    "help": help(r),
                    "defaultConfiguration": { "level": "error" },
                    // GitHub ranks by it: 9.0 and above is critical, as a live credential is.
                    "properties": { "security-severity": "9.0", "tags": ["security", "secret"] },
                })).collect::<Vec<_>>(),
            }},
            "results": results,
        }]
    });
    serde_json::to_string_pretty(&log).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_relative_and_percent_encoded() {
        assert_eq!(uri("./src/my file#1.rs"), "src/my%20file%231.rs");
        assert_eq!(uri("a/b.rs"), "a/b.rs");
    }

    #[test]
    fn rules_carry_help_and_severity_and_results_their_commit() {
        let scanner = super::super::Scanner::builtin().unwrap();
        let mut found = scanner.scan(
            "deploy/app env.sh",
            b"GITHUB_TOKEN=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\n",
        );
        found[0].commit = Some("9f1c2ab".into());
        let v: serde_json::Value = serde_json::from_str(&sarif(&found, scanner.rules())).unwrap();
        let run = &v["runs"][0];
        let rule = &run["tool"]["driver"]["rules"][0];
        assert_eq!(rule["properties"]["security-severity"], "9.0");
        assert!(
            rule["help"]["markdown"]
                .as_str()
                .unwrap()
                .contains("Revoke or rotate")
        );
        assert!(rule["fullDescription"]["text"].is_string());
        let r = &run["results"][0];
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "deploy/app%20env.sh"
        );
        assert_eq!(r["properties"]["commitSha"], "9f1c2ab");
    }
}
