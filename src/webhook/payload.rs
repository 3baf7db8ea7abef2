//! Parsing only the parts of a payload the normalizers read.
//!
//! A forge payload is mostly objects the bot never looks at: a GitHub push's `repository` alone
//! is 70% of it. Building a whole `serde_json::Value` of it took a fifth of the server's CPU at
//! full load. This parser keeps the paths a forge's normalizer reads and skips everything else
//! without allocating; the result is still a `Value`, so the normalizers do not change. The
//! whole document is still checked to be JSON.
//!
//! In debug builds every path a normalizer reads is checked against the kept ones, so a
//! normalizer that reads a new field fails its fixture tests until the field is listed here.

use std::fmt;
use std::sync::LazyLock;

use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// What the GitHub-shaped normalizers (GitHub, Gitea, Forgejo) read. A path that ends at an
/// object or array keeps all of it; `list.#` keeps only how long `list` is (its objects read as
/// empty), which is all a push's commit count needs of commits that can number in the hundreds.
const GITHUB_PATHS: &[&str] = &[
    "action",
    "after",
    "before",
    "changes.body.from",
    "comment.body",
    "comment.id",
    "comment.user.id",
    "comment.user.login",
    "comment.user.username",
    "commits.#",
    "context",
    "created",
    "deleted",
    "description",
    "forced",
    "hook_id",
    "installation.id",
    "issue.number",
    "issue.pull_request",
    "pull_request.base.ref",
    "pull_request.base.sha",
    "pull_request.body",
    "pull_request.head.ref",
    "pull_request.head.sha",
    "pull_request.merge_commit_sha",
    "pull_request.merged",
    "pull_request.number",
    "pull_request.title",
    "pull_request.user.id",
    "pull_request.user.login",
    "pull_request.user.username",
    "ref",
    "repositories",
    "repositories_added",
    "repositories_removed",
    "repository.full_name",
    "repository.id",
    "sender.id",
    "sender.login",
    "sender.username",
    "sha",
    "state",
    "target_url",
    "total_commits",
    "workflow.name",
    "workflow_run.conclusion",
    "workflow_run.head_sha",
    "workflow_run.html_url",
    "workflow_run.name",
    "workflow_run.path",
    "workflow_run.status",
    "workflow_run.workflow_id",
];

/// The fields of `check_run` and `check_suite` the normalizer reads under either name.
const CHECK_FIELDS: &[&str] = &[
    "after",
    "app.name",
    "app.slug",
    "conclusion",
    "details_url",
    "head_sha",
    "html_url",
    "name",
    "output.title",
    "pull_requests",
    "status",
];

/// What the GitLab normalizer reads.
const GITLAB_PATHS: &[&str] = &[
    "after",
    "before",
    "build_id",
    "build_name",
    "build_stage",
    "build_status",
    "changes.description",
    "changes.title",
    "issue.iid",
    "merge_request.iid",
    "object_attributes.action",
    "object_attributes.author_id",
    "object_attributes.description",
    "object_attributes.id",
    "object_attributes.iid",
    "object_attributes.last_commit.id",
    "object_attributes.merge_commit_sha",
    "object_attributes.name",
    "object_attributes.note",
    "object_attributes.noteable_type",
    "object_attributes.oldrev",
    "object_attributes.sha",
    "object_attributes.source_branch",
    "object_attributes.state",
    "object_attributes.status",
    "object_attributes.system",
    "object_attributes.target_branch",
    "object_attributes.title",
    "object_attributes.url",
    "project.id",
    "project.path_with_namespace",
    "project.web_url",
    "project_id",
    "ref",
    "repository.homepage",
    "sha",
    "total_commits_count",
    "user.id",
    "user.username",
    "user_id",
    "user_username",
];

/// The kept part of a document: named children, or the whole value when there are none.
#[derive(Debug, Default)]
pub struct Fields {
    children: Vec<(String, Fields)>,
}

/// What GitHub, Gitea and Forgejo payloads keep.
pub static GITHUB: LazyLock<Fields> = LazyLock::new(|| {
    let checks = ["check_run", "check_suite"]
        .into_iter()
        .flat_map(|kind| CHECK_FIELDS.iter().map(move |f| format!("{kind}.{f}")));
    Fields::from_paths(GITHUB_PATHS.iter().map(|p| p.to_string()).chain(checks))
});

/// What GitLab payloads keep.
pub static GITLAB: LazyLock<Fields> = LazyLock::new(|| Fields::from_paths(GITLAB_PATHS));

impl Fields {
    fn from_paths(paths: impl IntoIterator<Item = impl AsRef<str>>) -> Fields {
        let mut root = Fields::default();
        for path in paths {
            let mut node = &mut root;
            for key in path.as_ref().split('.') {
                let i = match node.children.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        node.children.push((key.to_owned(), Fields::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[i].1;
            }
        }
        root
    }

    fn child(&self, key: &str) -> Option<&Fields> {
        self.children
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, f)| f)
    }

    /// Whether reading `path` (dot-separated) sees what the full document holds there.
    pub fn keeps(&self, path: &str) -> bool {
        let mut node = self;
        for key in path.split('.') {
            if node.children.is_empty() {
                return true;
            }
            match node.child(key) {
                Some(next) => node = next,
                None => return false,
            }
        }
        true
    }

    /// Parses a JSON document, keeping only these fields.
    pub fn parse(&self, json: &[u8]) -> Result<Value, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let v = Keep(self).deserialize(&mut de)?;
        de.end()?;
        Ok(v)
    }
}

/// Deserializes one value, keeping only `Fields`.
struct Keep<'f>(&'f Fields);

impl<'de> DeserializeSeed<'de> for Keep<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.children.is_empty() {
            serde::Deserialize::deserialize(d)
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Keep<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    /// The fields apply to each element, as a path reads through an array.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Keep(self.0))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(kept) = map.next_key_seed(Key(self.0))? {
            match kept {
                Some((key, fields)) => {
                    let v = map.next_value_seed(Keep(fields))?;
                    out.insert(key.to_owned(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Reads an object key without allocating; answers the kept child it names, if any.
struct Key<'f>(&'f Fields);

impl<'de, 'f> DeserializeSeed<'de> for Key<'f> {
    type Value = Option<(&'f str, &'f Fields)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'f> Visitor<'_> for Key<'f> {
    type Value = Option<(&'f str, &'f Fields)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(self
            .0
            .children
            .iter()
            .find(|(k, _)| *k == s)
            .map(|(k, f)| (k.as_str(), f)))
    }
}

#[cfg(debug_assertions)]
thread_local! {
    static READING: std::cell::Cell<Option<&'static Fields>> = const { std::cell::Cell::new(None) };
}

/// Marks the fields a normalizer on this thread reads from, until the guard drops (debug builds).
pub struct Reading(());

impl Reading {
    /// Starts checking reads against `fields`.
    pub fn start(_fields: &'static Fields) -> Reading {
        #[cfg(debug_assertions)]
        READING.with(|r| r.set(Some(_fields)));
        Reading(())
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        READING.with(|r| r.set(None));
    }
}

/// Fails a debug build when a normalizer reads a path this module does not keep.
pub fn check_read(_path: &str) {
    #[cfg(debug_assertions)]
    if let Some(fields) = READING.with(std::cell::Cell::get) {
        assert!(
            fields.keeps(_path),
            "a normalizer reads `{_path}`, which src/webhook/payload.rs does not keep"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_list_keeps_its_length_and_none_of_its_objects() {
        let f = Fields::from_paths(["commits.#"]);
        let v = f
            .parse(br#"{"commits":[{"id":"a","author":{"name":"x"}},{"id":"b"}],"n":1}"#)
            .unwrap();
        assert_eq!(v, serde_json::json!({"commits":[{},{}]}));
        assert!(f.keeps("commits") && !f.keeps("commits.id"));
    }

    #[test]
    fn keeps_listed_paths_and_drops_the_rest() {
        let f = Fields::from_paths(["a.b", "c", "list.id"]);
        let v = f
            .parse(br#"{"a":{"b":1,"x":[1,2]},"c":{"deep":[{"k":"v"}]},"d":"gone","list":[{"id":1,"n":2},{"id":2}]}"#)
            .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a":{"b":1},"c":{"deep":[{"k":"v"}]},"list":[{"id":1},{"id":2}]})
        );
        assert!(f.keeps("a.b") && f.keeps("c.deep.k") && f.keeps("list.id"));
        assert!(!f.keeps("a.x") && !f.keeps("d"));
    }

    #[test]
    fn skipped_parts_must_still_be_json() {
        let f = Fields::from_paths(["a"]);
        for bad in [
            &br#"{"a":1,"b":[1,}"#[..],
            br#"{"a":1,"b":"\q"}"#,
            br#"{"a":1} trailing"#,
            br#"{"a":1,"b":"#,
        ] {
            assert!(f.parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        // Hostile nesting neither overflows the stack when skipped nor parses when kept.
        let nest = |key: &str| {
            format!(
                "{{\"{key}\":{}{}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
        };
        assert!(f.parse(nest("b").as_bytes()).is_ok());
        assert!(f.parse(nest("a").as_bytes()).is_err());
    }

    #[test]
    fn escaped_keys_and_duplicates_read_as_in_a_full_parse() {
        let f = Fields::from_paths(["ref", "n"]);
        let json = br#"{"r\u0065f":"main","n":1,"n":2}"#;
        let full: Value = serde_json::from_slice(json).unwrap();
        assert_eq!(f.parse(json).unwrap(), full);
    }
}
