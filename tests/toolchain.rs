//! The declared toolchain is the true one: no locked dependency needs a newer Rust than
//! `rust-version` says, and the container's builder image is not older than it — else
//! `cargo build --locked` fails on a Rust the project claims to support.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `1.94`, `1.94.0` → (1, 94, 0).
fn version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.trim().split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

fn declared() -> (u64, u64, u64) {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let manifest: toml::Value = toml::from_str(&text).unwrap();
    let v = manifest["package"]["rust-version"]
        .as_str()
        .expect("rust-version is declared");
    version(v).expect("rust-version is a version")
}

#[test]
fn no_locked_dependency_needs_a_newer_rust_than_declared() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The dependencies built here: offline, only they are sure to be in the registry cache (a
    // fresh machine has no Android or Windows crates).
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let info = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let host = String::from_utf8_lossy(&info.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc names its host");
    let out = Command::new(cargo)
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .args(["--filter-platform", &host])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = declared();
    let newer: Vec<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let needs = version(p["rust_version"].as_str()?)?;
            (needs > ours).then(|| format!("{} {} needs {needs:?}", p["name"], p["version"]))
        })
        .collect();
    assert!(
        newer.is_empty(),
        "rust-version {ours:?} is older than the lockfile needs: {newer:#?}"
    );
}

#[test]
fn the_container_builds_with_the_declared_rust_or_newer() {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let image = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("FROM rust:"))
        .expect("the builder stage is a rust image");
    let tag = image.split(['-', ' ']).next().unwrap_or_default();
    let builder = version(tag).expect("the builder image is pinned to a version");
    assert!(
        builder >= declared(),
        "the builder image rust:{tag} is older than rust-version {:?}",
        declared()
    );
}

#[test]
fn the_container_context_leaves_out_build_output_and_history() {
    let text = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for entry in ["target/", ".git/"] {
        assert!(text.lines().any(|l| l.trim() == entry), "{entry} is sent");
    }
}
