//! Checks requests against a forge's published API description: the GitHub OpenAPI document,
//! the Gitea and Forgejo Swagger documents in the forge corpus, and for GitLab (which publishes
//! none there) a transcription of its REST documentation for the endpoints the bot uses.
//!
//! The descriptions live in `api-descriptions/` (verbatim, compressed, digest-checked).
//!
//! A request passes when its method and path match an operation, its path parameters fit the
//! template (integers where integers are declared), its query keys are declared parameters, and
//! its JSON body has the required fields, no undeclared ones, and the declared types and enums.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Value, json};

/// One published description.
pub struct Spec {
    doc: Value,
    /// `components/schemas` (OpenAPI 3) or `definitions` (Swagger 2) live under this pointer.
    swagger2: bool,
}

/// Reads a description from `api-descriptions/`, checking it is the published file.
fn published(file: &str, sha256: &str) -> Value {
    use sha2::Digest;
    use std::io::Read;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("api-descriptions")
        .join(file);
    let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut json)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let digest = hex::encode(sha2::Sha256::digest(&json));
    assert_eq!(
        digest,
        sha256,
        "{} is not the published description",
        path.display()
    );
    serde_json::from_slice(&json).expect("API description parses")
}

/// The description for a forge kind (`github`, `gitea`, `forgejo`, `gitlab`), loaded once.
pub fn spec(kind: &str) -> &'static Spec {
    static GITHUB: OnceLock<Spec> = OnceLock::new();
    static GITEA: OnceLock<Spec> = OnceLock::new();
    static FORGEJO: OnceLock<Spec> = OnceLock::new();
    static GITLAB: OnceLock<Spec> = OnceLock::new();
    match kind {
        "github" => GITHUB.get_or_init(|| Spec {
            doc: published(
                "github.api.github.com.json.gz",
                "829b4bebb19a53133289f7b0bc819f4f1118115821db2ca9f25e9ee995a7da2a",
            ),
            swagger2: false,
        }),
        "gitea" => GITEA.get_or_init(|| Spec {
            doc: published(
                "gitea.swagger.v1.json.gz",
                "9029288ab6645a316cc225ee5f53f597482c58aecd0ee985acb98d1c13ecd9b3",
            ),
            swagger2: true,
        }),
        "forgejo" => FORGEJO.get_or_init(|| Spec {
            doc: published(
                "forgejo.swagger.v1.json.gz",
                "fe7b5f952d860dfe2b0d423b66762d5d6df1ea06655c34228316c485a0ce999e",
            ),
            swagger2: true,
        }),
        "gitlab" => GITLAB.get_or_init(|| Spec {
            doc: gitlab_docs(),
            swagger2: true,
        }),
        other => panic!("no API description for {other}"),
    }
}

impl Spec {
    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        let mut v = v;
        for _ in 0..8 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return v;
            };
            let pointer = r.trim_start_matches('#');
            match self.doc.pointer(pointer) {
                Some(t) => v = t,
                None => return v,
            }
        }
        v
    }

    /// Violations of one request; `path` is relative to the API root, still percent-encoded.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        body: Option<&Value>,
    ) -> Vec<String> {
        let label = format!("{method} {path}");
        let Some(paths) = self.doc.get("paths").and_then(Value::as_object) else {
            return vec![format!("{label}: the description has no paths")];
        };
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut best: Option<(usize, &str, &Value)> = None;
        for (template, item) in paths {
            let t: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            if t.len() != segs.len() {
                continue;
            }
            let mut literal = 0;
            let fits = t.iter().zip(&segs).all(|(a, b)| {
                if a.starts_with('{') {
                    !b.is_empty()
                } else {
                    literal += 1;
                    a == b
                }
            });
            if fits && best.is_none_or(|(l, _, _)| literal > l) {
                best = Some((literal, template, item));
            }
        }
        let Some((_, template, item)) = best else {
            return vec![format!("{label}: no such path in the description")];
        };
        let Some(op) = item.get(method.to_ascii_lowercase()) else {
            return vec![format!("{label}: {template} has no {method} operation")];
        };
        let mut out = Vec::new();
        let params: Vec<&Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(
                op.get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            )
            .map(|p| self.resolve(p))
            .collect();
        // Path parameters: integers where the description says so.
        let t: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        for (a, b) in t.iter().zip(&segs) {
            if let Some(name) = a.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let declared = params
                    .iter()
                    .find(|p| p["name"] == name && p["in"] == "path");
                let ty = declared.and_then(|p| p.get("type").or_else(|| p.pointer("/schema/type")));
                if ty.and_then(Value::as_str) == Some("integer") && b.parse::<i64>().is_err() {
                    out.push(format!(
                        "{label}: path parameter {name} must be an integer, got `{b}`"
                    ));
                }
            }
        }
        for pair in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            let key = pair.split('=').next().unwrap_or("");
            if !params
                .iter()
                .any(|p| p["name"] == key && p["in"] == "query")
            {
                out.push(format!("{label}: query parameter `{key}` is not declared"));
            }
        }
        let (schema, required) = if self.swagger2 {
            match params.iter().find(|p| p["in"] == "body") {
                Some(p) => (p.get("schema"), p["required"] == true),
                None => (None, false),
            }
        } else {
            let rb = op.get("requestBody").map(|r| self.resolve(r));
            (
                rb.and_then(|r| r.pointer("/content/application~1json/schema")),
                rb.is_some_and(|r| r["required"] == true),
            )
        };
        match (schema, body) {
            (None, Some(b)) if !b.is_null() => {
                out.push(format!("{label}: the operation takes no body"))
            }
            (Some(_), None) if required => out.push(format!("{label}: a body is required")),
            (Some(s), Some(b)) => self.check_value(&label, "body", s, b, 0, &mut out),
            _ => {}
        }
        out
    }

    fn check_value(
        &self,
        label: &str,
        at: &str,
        schema: &Value,
        v: &Value,
        depth: usize,
        out: &mut Vec<String>,
    ) {
        if depth > 6 {
            return;
        }
        let s = self.resolve(schema);
        for key in ["oneOf", "anyOf"] {
            if let Some(variants) = s.get(key).and_then(Value::as_array) {
                let fits = variants.iter().any(|var| {
                    let mut errs = Vec::new();
                    self.check_value(label, at, var, v, depth + 1, &mut errs);
                    errs.is_empty()
                });
                if !fits {
                    out.push(format!("{label}: {at} fits none of the {key} variants"));
                }
                return;
            }
        }
        if let Some(parts) = s.get("allOf").and_then(Value::as_array) {
            let mut merged = json!({ "type": "object", "properties": {}, "required": [] });
            for p in parts {
                let p = self.resolve(p);
                if let Some(props) = p.get("properties").and_then(Value::as_object) {
                    for (k, x) in props {
                        merged["properties"][k] = x.clone();
                    }
                }
                if let Some(r) = p.get("required").and_then(Value::as_array) {
                    merged["required"]
                        .as_array_mut()
                        .unwrap()
                        .extend(r.iter().cloned());
                }
            }
            return self.check_value(label, at, &merged, v, depth + 1, out);
        }
        if v.is_null() {
            if s["nullable"] != true && s.get("type").is_some() && s["x-nullable"] != true {
                out.push(format!("{label}: {at} must not be null"));
            }
            return;
        }
        let ty = s.get("type").and_then(Value::as_str);
        let ok = match ty {
            Some("string") => v.is_string(),
            Some("integer") => v.is_i64() || v.is_u64(),
            Some("number") => v.is_number(),
            Some("boolean") => v.is_boolean(),
            Some("array") => v.is_array(),
            Some("object") => v.is_object(),
            _ => true,
        };
        if !ok {
            out.push(format!(
                "{label}: {at} must be {}, got {v}",
                ty.unwrap_or("?")
            ));
            return;
        }
        if let (Some(allowed), Some(x)) = (s.get("enum").and_then(Value::as_array), v.as_str())
            && !allowed.iter().any(|a| a == x)
        {
            out.push(format!(
                "{label}: {at} = `{x}` is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
        if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
            for (i, x) in arr.iter().enumerate() {
                self.check_value(label, &format!("{at}[{i}]"), items, x, depth + 1, out);
            }
        }
        if let Some(obj) = v.as_object() {
            let props = s.get("properties").and_then(Value::as_object);
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = r.as_str()
                    && !obj.contains_key(name)
                {
                    out.push(format!("{label}: {at}.{name} is required"));
                }
            }
            let open = s.get("additionalProperties").is_some_and(|a| a != false);
            if let Some(props) = props {
                for (k, x) in obj {
                    match props.get(k) {
                        Some(ps) => {
                            self.check_value(label, &format!("{at}.{k}"), ps, x, depth + 1, out)
                        }
                        None if !open => {
                            out.push(format!("{label}: {at}.{k} is not a declared field"))
                        }
                        None => {}
                    }
                }
            }
        }
    }
}

/// GitLab REST v4, transcribed from docs.gitlab.com (api/merge_requests.md, notes.md,
/// issues.md, commits.md, members.md, projects.md, project_webhooks.md, group_webhooks.md,
/// protected_branches.md, users.md, jobs.md) for exactly the endpoints the adapter calls, in the
/// Swagger 2 shape the checker reads. GitLab also takes these fields as form or query
/// parameters; the bot always sends JSON.
fn gitlab_docs() -> Value {
    fn op(body: Option<Value>, query: &[&str]) -> Value {
        let mut params: Vec<Value> = query
            .iter()
            .map(|q| json!({ "name": q, "in": "query", "type": "string" }))
            .collect();
        params.push(json!({ "name": "id", "in": "path", "type": "string" }));
        params.push(json!({ "name": "iid", "in": "path", "type": "integer" }));
        params.push(json!({ "name": "note_id", "in": "path", "type": "integer" }));
        params.push(json!({ "name": "hook_id", "in": "path", "type": "integer" }));
        params.push(json!({ "name": "user_id", "in": "path", "type": "integer" }));
        params.push(json!({ "name": "job_id", "in": "path", "type": "integer" }));
        if let Some(schema) = body {
            params
                .push(json!({ "name": "body", "in": "body", "required": true, "schema": schema }));
        }
        json!({ "parameters": params })
    }
    fn obj(required: &[&str], props: &[(&str, &str)]) -> Value {
        let mut p = serde_json::Map::new();
        for (k, t) in props {
            p.insert((*k).into(), json!({ "type": t }));
        }
        json!({ "type": "object", "required": required, "properties": p })
    }
    let paging = ["per_page", "page"];
    let note = obj(&["body"], &[("body", "string"), ("internal", "boolean")]);
    let hook = obj(
        &["url"],
        &[
            ("url", "string"),
            ("token", "string"),
            ("push_events", "boolean"),
            ("merge_requests_events", "boolean"),
            ("note_events", "boolean"),
            ("pipeline_events", "boolean"),
            ("job_events", "boolean"),
            ("issues_events", "boolean"),
            ("enable_ssl_verification", "boolean"),
            ("push_events_branch_filter", "string"),
        ],
    );
    let mut status = obj(
        &["state"],
        &[
            ("state", "string"),
            ("ref", "string"),
            ("name", "string"),
            ("context", "string"),
            ("target_url", "string"),
            ("description", "string"),
            ("coverage", "number"),
            ("pipeline_id", "integer"),
        ],
    );
    status["properties"]["state"]["enum"] = json!([
        "pending", "running", "success", "failed", "canceled", "skipped"
    ]);
    let mut issue_edit = obj(
        &[],
        &[
            ("state_event", "string"),
            ("title", "string"),
            ("description", "string"),
        ],
    );
    issue_edit["properties"]["state_event"]["enum"] = json!(["close", "reopen"]);
    let merge = obj(
        &[],
        &[
            ("merge_commit_message", "string"),
            ("squash_commit_message", "string"),
            ("squash", "boolean"),
            ("should_remove_source_branch", "boolean"),
            ("auto_merge", "boolean"),
            ("sha", "string"),
        ],
    );
    let mut project = obj(
        &[],
        &[
            ("merge_method", "string"),
            ("squash_option", "string"),
            ("autoclose_referenced_issues", "boolean"),
            ("only_allow_merge_if_pipeline_succeeds", "boolean"),
        ],
    );
    project["properties"]["merge_method"]["enum"] = json!(["merge", "rebase_merge", "ff"]);
    project["properties"]["squash_option"]["enum"] =
        json!(["never", "always", "default_on", "default_off"]);
    let mut protect = obj(
        &["name"],
        &[
            ("name", "string"),
            ("push_access_level", "integer"),
            ("merge_access_level", "integer"),
            ("unprotect_access_level", "integer"),
            ("allow_force_push", "boolean"),
            ("allowed_to_push", "array"),
            ("allowed_to_merge", "array"),
            ("code_owner_approval_required", "boolean"),
        ],
    );
    protect["properties"]["allowed_to_push"]["items"] = obj(
        &[],
        &[
            ("user_id", "integer"),
            ("group_id", "integer"),
            ("access_level", "integer"),
            ("deploy_key_id", "integer"),
        ],
    );
    json!({
        "swagger": "2.0",
        "basePath": "/api/v4",
        "paths": {
            "/user": { "get": op(None, &[]) },
            "/projects/{id}": { "get": op(None, &[]), "put": op(Some(project), &[]) },
            "/projects/{id}/merge_requests": { "get": op(None, &["state", "per_page", "page"]) },
            "/projects/{id}/merge_requests/{iid}": { "get": op(None, &[]) },
            "/projects/{id}/merge_requests/{iid}/merge": { "put": op(Some(merge), &[]) },
            "/projects/{id}/merge_requests/{iid}/notes": { "get": op(None, &paging), "post": op(Some(note.clone()), &[]) },
            "/projects/{id}/merge_requests/{iid}/notes/{note_id}": { "put": op(Some(note.clone()), &[]), "delete": op(None, &[]) },
            "/projects/{id}/issues/{iid}": { "get": op(None, &[]), "put": op(Some(issue_edit), &[]) },
            "/projects/{id}/issues/{iid}/notes": { "get": op(None, &paging), "post": op(Some(note.clone()), &[]) },
            "/projects/{id}/issues/{iid}/notes/{note_id}": { "put": op(Some(note), &[]), "delete": op(None, &[]) },
            "/projects/{id}/repository/commits/{sha}/statuses": { "get": op(None, &["ref", "stage", "name", "pipeline_id", "all", "per_page", "page"]) },
            "/projects/{id}/statuses/{sha}": { "post": op(Some(status), &[]) },
            "/projects/{id}/jobs/{job_id}/trace": { "get": op(None, &[]) },
            "/projects/{id}/members/all/{user_id}": { "get": op(None, &[]) },
            "/projects/{id}/hooks": { "get": op(None, &paging), "post": op(Some(hook.clone()), &[]) },
            "/projects/{id}/hooks/{hook_id}": { "put": op(Some(hook.clone()), &[]) },
            "/groups/{id}/hooks": { "get": op(None, &paging), "post": op(Some(hook.clone()), &[]) },
            "/groups/{id}/hooks/{hook_id}": { "put": op(Some(hook), &[]) },
            "/projects/{id}/protected_branches": { "post": op(Some(protect), &[]) },
            "/projects/{id}/protected_branches/{name}": { "get": op(None, &[]), "delete": op(None, &[]) },
        }
    })
}
