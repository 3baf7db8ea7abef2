//! The deploy/ artefacts checked by what this machine can run: the systemd unit verified by
//! systemd itself, the compose file and Kubernetes manifests parsed and their references
//! resolved, the example configuration files parsed by the code that reads them.

use std::path::{Path, PathBuf};

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy(rel)).unwrap_or_else(|e| panic!("deploy/{rel}: {e}"))
}

/// Every TRUNKWARDEN_* name in a file, each of which the program must actually read.
fn variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("TRUNKWARDEN_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn source_mentions(name: &str) -> bool {
    // Forge settings are read through one template, TRUNKWARDEN_<FORGE>_<SETTING>.
    let forges = ["GITHUB", "GITEA", "FORGEJO", "GITLAB"];
    let settings = ["TOKEN", "URL", "CLONE_URL"];
    if forges.iter().any(|f| {
        settings
            .iter()
            .any(|s| name == format!("TRUNKWARDEN_{f}_{s}"))
    }) {
        return true;
    }
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read_to_string(&p).is_ok_and(|t| t.contains(name)) {
                return true;
            }
        }
    }
    false
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = read("trunkwarden.service");
    // verify insists the ExecStart binary exists: point it at the one under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trunkwarden.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/trunkwarden",
            env!("CARGO_BIN_EXE_trunkwarden"),
        ),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (apt-get install systemd; scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "warnings: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for must in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=trunkwarden",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(must), "{must}");
    }
    for v in variables(&unit) {
        assert!(
            source_mentions(&v),
            "the unit sets {v}, which nothing reads"
        );
    }
}

#[test]
fn compose_and_kubernetes_parse_and_reference_what_exists() {
    use yaml_rust2::YamlLoader;
    let compose = read("docker-compose.yml");
    let docs = YamlLoader::load_from_str(&compose).expect("compose parses");
    let tw = &docs[0]["services"]["trunkwarden"];
    let context = tw["build"]["context"].as_str().unwrap();
    let dockerfile = tw["build"]["dockerfile"].as_str().unwrap();
    assert!(
        deploy(context).join(dockerfile).is_file(),
        "{context}/{dockerfile}"
    );
    for v in variables(&compose) {
        assert!(source_mentions(&v), "compose sets {v}, which nothing reads");
    }
    let k8s = read("kubernetes/trunkwarden.yaml");
    let docs = YamlLoader::load_from_str(&k8s).expect("manifests parse");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["PersistentVolumeClaim", "Deployment", "Service"]);
    let deployment = &docs[1];
    let claim =
        deployment["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
            .as_str();
    assert_eq!(
        claim,
        docs[0]["metadata"]["name"].as_str(),
        "the volume names the claim"
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        deployment["spec"]["replicas"].as_i64(),
        Some(1),
        "SQLite: one replica"
    );
    for v in variables(&k8s) {
        assert!(
            source_mentions(&v),
            "the manifests set {v}, which nothing reads"
        );
    }
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("USER trunkwarden"));
    // Hardened as a cluster's admission policies expect (restricted Pod Security Standard).
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
    for (kind, what) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "memory"),
    ] {
        assert!(
            container["resources"][kind][what].as_str().is_some(),
            "resources.{kind}.{what}"
        );
    }
    let image = container["image"].as_str().unwrap();
    assert_eq!(
        image,
        format!("trunkwarden:{}", env!("CARGO_PKG_VERSION")),
        "the image is pinned to this release"
    );
}

#[test]
fn the_example_configuration_files_parse_with_every_key() {
    let server = trunkwarden::server::ServerFile::load(&deploy("trunkwarden.toml"))
        .expect("server settings parse");
    assert_eq!(server.server.listen.as_deref(), Some("127.0.0.1:8080"));
    assert!(
        server.queue.workers.is_some() && server.webhook.gitlab_timestamp_tolerance_secs.is_some()
    );
    let policy = trunkwarden::config::RepoPolicy::parse(
        &read("example.trunkwarden.toml"),
        Path::new("example.trunkwarden.toml"),
    )
    .expect("policy parses");
    // The secrets tuning is shown with examples (allowlists, a custom rule), which must build.
    trunkwarden::secrets::Scanner::for_policy(&policy.secrets, None)
        .expect("secrets tuning builds");
    assert_eq!(policy.secrets.allow.len(), 2);
    assert_eq!(policy.secrets.rule.len(), 1);
    let mut rest = policy.clone();
    rest.secrets.allow.clear();
    rest.secrets.rule.clear();
    assert_eq!(
        rest,
        trunkwarden::config::RepoPolicy::default(),
        "everything else shows the defaults"
    );
}

/// Metric names the program registers, as its source names them.
fn registered_metrics() -> std::collections::BTreeSet<String> {
    fn walk(dir: &Path, out: &mut std::collections::BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for (i, _) in text.match_indices("\"trunkwarden_") {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    out.insert(name);
                }
            }
        }
    }
    let mut out = Default::default();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

/// The metric names an expression reads, histogram suffixes taken off.
fn metrics_in(expr: &str) -> Vec<String> {
    expr.match_indices("trunkwarden_")
        .map(|(i, _)| {
            let n: String = expr[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            ["_bucket", "_sum", "_count"]
                .iter()
                .fold(n.clone(), |n, s| n.strip_suffix(s).unwrap_or(&n).to_owned())
        })
        .collect()
}

#[test]
fn alerts_and_the_dashboard_read_metrics_the_program_exports() {
    use yaml_rust2::YamlLoader;
    let known = registered_metrics();
    assert!(
        known.contains("trunkwarden_dead_letters_total"),
        "{known:?}"
    );
    let alerts = YamlLoader::load_from_str(&read("monitoring/alerts.yml")).expect("alerts parse");
    let rules = alerts[0]["groups"][0]["rules"]
        .as_vec()
        .expect("a group of rules");
    let mut exprs: Vec<String> = Vec::new();
    for r in rules {
        assert!(r["alert"].as_str().is_some(), "{r:?}");
        assert!(r["annotations"]["description"].as_str().is_some(), "{r:?}");
        exprs.push(r["expr"].as_str().expect("an expression").to_owned());
    }
    for name in [
        "dead_letters",
        "queue_depth",
        "rate_limit_remaining",
        "processing_seconds",
    ] {
        assert!(exprs.iter().any(|e| e.contains(name)), "no alert on {name}");
    }
    let dash: serde_json::Value =
        serde_json::from_str(&read("monitoring/grafana-dashboard.json")).expect("dashboard parses");
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            exprs.push(t["expr"].as_str().expect("expr").to_owned());
        }
    }
    for e in &exprs {
        for m in metrics_in(e) {
            assert!(known.contains(&m), "{m} (in `{e}`) is not exported");
        }
    }
}
