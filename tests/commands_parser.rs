//! The comment-command parser on hostile input, and the `help` reply as a reviewed snapshot.

mod support;

use proptest::prelude::*;
use trunkwarden::commands::{self, DEFAULT_PREFIX};

#[test]
fn help_is_a_reviewed_snapshot() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/commands/help.md");
    let fresh = commands::help(DEFAULT_PREFIX);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let kept = std::fs::read_to_string(&path).expect("snapshot (UPDATE_SNAPSHOTS=1 writes it)");
    assert_eq!(
        kept, fresh,
        "the command set changed: review and UPDATE_SNAPSHOTS=1"
    );
}

fn markdownish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("@trunkwarden ".to_owned()),
        Just("@TRUNKWARDEN: ".to_owned()),
        Just("claim ".to_owned()),
        Just("merge cancel".to_owned()),
        Just("used 1.5K".to_owned()),
        Just("```".to_owned()),
        Just("`".to_owned()),
        Just("> ".to_owned()),
        Just("[".to_owned()),
        Just("](".to_owned()),
        Just("<div>".to_owned()),
        Just("<!--".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("    ".to_owned()),
        Just("| a |\n|---|".to_owned()),
        Just("# ".to_owned()),
        "\\PC{0,12}",
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(support::cases(512)))]

    #[test]
    fn no_comment_panics_the_parser(md in markdownish(), prev in markdownish()) {
        let found = commands::find(&md, DEFAULT_PREFIX);
        prop_assert!(found.len() <= 20);
        for f in &found {
            // Every problem renders as a message; every command knows its declaration.
            match &f.parsed {
                Ok(c) => prop_assert!(!c.spec().name.is_empty()),
                Err(p) => prop_assert!(!p.to_string().is_empty()),
            }
        }
        let gained = commands::gained(&md, Some(&prev), DEFAULT_PREFIX);
        prop_assert!(gained.len() <= found.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = commands::find(&text, DEFAULT_PREFIX);
        let _ = commands::parse(&text);
    }
}
