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

/// A SARIF 2.1.0 log with one run; rules that produced findings are described in the driver.
pub fn sarif(findings: &[Finding], rules: &[SecretRule]) -> String {
    let used: Vec<&SecretRule> = rules
        .iter()
        .filter(|r| findings.iter().any(|f| f.rule == r.id))
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.rule,
                "level": "error",
                "message": { "text": format!("{} ({})", f.description, f.masked) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": f.path },
                        "region": { "startLine": f.line, "startColumn": f.column }
                    }
                }],
                "partialFingerprints": { "trunkwarden/v1": f.fingerprint }
            })
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
                    "shortDescription": { "text": r.description },
                })).collect::<Vec<_>>(),
            }},
            "results": results,
        }]
    });
    serde_json::to_string_pretty(&log).unwrap_or_default() + "\n"
}
