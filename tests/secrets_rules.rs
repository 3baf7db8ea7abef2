//! Every built-in rule finds its examples and ignores its negatives; no output format ever
//! contains a whole secret.

use regex::bytes::Regex;
use trunkwarden::secrets::{Scanner, report};

#[test]
fn the_builtin_rules_compile() {
    let s = Scanner::builtin().unwrap();
    s.check_all().unwrap();
    assert!(s.rules().len() >= 40);
    for r in s.rules() {
        assert!(!r.examples.is_empty(), "{} has no example", r.id);
        assert!(!r.negatives.is_empty(), "{} has no negative", r.id);
        // A built-in rule without a keyword would run over every file.
        assert!(
            r.keywords.iter().any(|k| !k.is_empty()),
            "{} has no keyword",
            r.id
        );
    }
}

#[test]
fn every_rule_finds_its_examples_and_not_its_negatives() {
    let s = Scanner::builtin().unwrap();
    let mut failures = Vec::new();
    for r in s.rules() {
        for e in &r.examples {
            let found = s.scan("example", e.as_bytes());
            if !found.iter().any(|f| f.rule == r.id) {
                failures.push(format!(
                    "{}: missed example {e:?} (found {:?})",
                    r.id,
                    found.iter().map(|f| &f.rule).collect::<Vec<_>>()
                ));
            }
        }
        for n in &r.negatives {
            if s.scan("negative", n.as_bytes())
                .iter()
                .any(|f| f.rule == r.id)
            {
                failures.push(format!("{}: reported negative {n:?}", r.id));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The raw secret an example holds, by the rule's own regex.
fn secret_of(regex: &str, example: &str) -> Vec<u8> {
    let re = Regex::new(regex).unwrap();
    let caps = re.captures(example.as_bytes()).unwrap();
    caps.name("secret").unwrap().as_bytes().to_vec()
}

#[test]
fn no_output_format_contains_a_whole_secret() {
    let s = Scanner::builtin().unwrap();
    for r in s.rules() {
        for e in &r.examples {
            let secret = secret_of(&r.regex, e);
            let found = s.scan("file.txt", e.as_bytes());
            assert!(!found.is_empty());
            for out in [
                report::text(&found),
                report::json(&found),
                report::sarif(&found, s.rules()),
            ] {
                let hay = out.as_bytes();
                assert!(
                    !hay.windows(secret.len()).any(|w| w == secret.as_slice()),
                    "{}: whole secret in output:\n{out}",
                    r.id
                );
                // Not even most of it: a masked form shows at most a quarter at each end.
                let middle = &secret[secret.len() / 4..secret.len() - secret.len() / 4];
                if middle.len() >= 4 {
                    assert!(
                        !hay.windows(middle.len()).any(|w| w == middle),
                        "{}: middle of secret in output",
                        r.id
                    );
                }
            }
        }
    }
}

#[test]
fn checksums_reject_lookalikes_that_other_scanners_report() {
    let s = Scanner::builtin().unwrap();
    let good = "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";
    assert_eq!(s.scan("f", good.as_bytes()).len(), 1);
    // Same shape, one character off: not a real token.
    let bad = "ghp_aWFeOgd23eOp1ARVjVEeNJPXGyijpX1TFLh3";
    assert!(s.scan("f", bad.as_bytes()).is_empty());
}

#[test]
fn inline_allow_markers_and_positions() {
    let s = Scanner::builtin().unwrap();
    let text = "line one\n  key = \"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\"\n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 # trunkwarden:allow\n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 // gitleaks:allow\n";
    let found = s.scan("cfg", text.as_bytes());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].rule.as_str(), found[0].line, found[0].column),
        ("github-pat", 2, 10)
    );
    assert_eq!(found[0].masked, "ghp_…FLh2");
}

#[test]
fn aws_key_id_with_its_secret_on_the_next_line_of_a_define() {
    let s = Scanner::builtin().unwrap();
    let text = "#define AWS_ACCESS_KEY_ID \"AKIAUJZDESGXDUNCFRQE\"\n#define AWS_SECRET_ACCESS_KEY \\\n    \"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\"\n";
    let rules: Vec<String> = s
        .scan("creds.h", text.as_bytes())
        .into_iter()
        .map(|f| f.rule)
        .collect();
    assert_eq!(rules, ["aws-access-key-id", "aws-secret-access-key"]);
}

#[test]
fn binary_content_is_recognised() {
    assert!(Scanner::is_binary(b"\x7fELF\x00\x01"));
    assert!(!Scanner::is_binary(b"plain text"));
}
