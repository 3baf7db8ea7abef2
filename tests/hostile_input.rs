//! Hostile input never panics: the secret scanner on arbitrary bytes and on keyword-salted
//! noise, and every forge's normalizer on arbitrary bodies and on payloads with fields of the
//! wrong type.

mod support;

use proptest::prelude::*;
use serde_json::{Value, json};
use support::cases;
use trunkwarden::secrets::Scanner;
use trunkwarden::webhook::{ForgeKind, normalize};

fn scanner() -> &'static Scanner {
    static S: std::sync::OnceLock<Scanner> = std::sync::OnceLock::new();
    S.get_or_init(|| Scanner::builtin().unwrap())
}

const EVENTS: [(ForgeKind, &str); 16] = [
    (ForgeKind::Github, "push"),
    (ForgeKind::Github, "pull_request"),
    (ForgeKind::Github, "issue_comment"),
    (ForgeKind::Github, "status"),
    (ForgeKind::Github, "check_run"),
    (ForgeKind::Github, "check_suite"),
    (ForgeKind::Github, "workflow_run"),
    (ForgeKind::Github, "ping"),
    (ForgeKind::Gitea, "push"),
    (ForgeKind::Gitea, "pull_request"),
    (ForgeKind::Gitea, "issue_comment"),
    (ForgeKind::Gitea, "status"),
    (ForgeKind::Gitlab, "Merge Request Hook"),
    (ForgeKind::Gitlab, "Note Hook"),
    (ForgeKind::Gitlab, "Pipeline Hook"),
    (ForgeKind::Gitlab, "Job Hook"),
];

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z0-9 _#-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "action",
                    "ref",
                    "before",
                    "after",
                    "sender",
                    "repository",
                    "full_name",
                    "id",
                    "login",
                    "pull_request",
                    "number",
                    "head",
                    "base",
                    "sha",
                    "merged",
                    "issue",
                    "comment",
                    "body",
                    "state",
                    "context",
                    "object_attributes",
                    "project",
                    "path_with_namespace",
                    "user",
                    "iid",
                    "noteable_type",
                    "status",
                ]),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    #[test]
    fn scanner_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = scanner().scan("fuzz", &bytes);
    }

    #[test]
    fn scanner_survives_keyword_salted_noise(
        parts in prop::collection::vec(prop_oneof![
            Just("ghp_".to_owned()), Just("AKIA".to_owned()), Just("-----BEGIN".to_owned()),
            Just("PRIVATE KEY-----".to_owned()), Just("postgres://".to_owned()), Just("password=\"".to_owned()),
            Just("eyJ".to_owned()), Just("npm_".to_owned()), Just("\n".to_owned()), Just("\"".to_owned()),
            "[A-Za-z0-9+/=:@._-]{0,40}",
        ], 0..60)
    ) {
        let text = parts.concat();
        for f in scanner().scan("fuzz", text.as_bytes()) {
            prop_assert!(f.line >= 1 && f.column >= 1);
            prop_assert!(f.offset < text.len());
        }
    }

    #[test]
    fn normalizers_survive_arbitrary_bodies(bytes in prop::collection::vec(any::<u8>(), 0..512), which in 0usize..16) {
        let (forge, event) = EVENTS[which];
        let _ = normalize(forge, event, None, &bytes);
        let _ = normalize(forge, event, Some("application/x-www-form-urlencoded"), &bytes);
    }

    #[test]
    fn normalizers_survive_wrongly_typed_payloads(v in any_json(), which in 0usize..16) {
        let (forge, event) = EVENTS[which];
        let body = serde_json::to_vec(&v).unwrap();
        let _ = normalize(forge, event, Some("application/json"), &body);
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(normalize(ForgeKind::Github, "push", None, body.as_bytes()).is_err());
}
