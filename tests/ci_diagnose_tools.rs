//! `ci diagnose` on the logs of the real Python and JavaScript tools, each installed from its
//! registry into the sandbox — pytest, unittest, mypy and ruff from PyPI; eslint, tsc and jest
//! from npm — and run on a small project broken the way each one reports.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::diagnose;
use support::git::{Sandbox, text, write};

/// Runs `program args` in `dir` with `path`, registry caches kept outside the sandbox.
fn run(sb: &Sandbox, dir: &Path, path: &str, program: &str, args: &[&str]) -> std::process::Output {
    let mut c = sb.command(program, dir);
    c.args(args).env("PATH", path);
    if let Some(home) = std::env::var_os("HOME") {
        c.env("npm_config_cache", Path::new(&home).join(".npm"));
        c.env("PIP_CACHE_DIR", Path::new(&home).join(".cache/pip"));
    }
    c.output().unwrap()
}

/// What a CI job's log holds for `program args`: stdout and stderr, which must say it failed.
fn failing(sb: &Sandbox, dir: &Path, path: &str, program: &str, args: &[&str]) -> String {
    let out = run(sb, dir, path, program, args);
    assert!(
        !out.status.success(),
        "{program} {args:?} was meant to fail"
    );
    text(&out)
}

fn installed(sb: &Sandbox, dir: &Path, path: &str, program: &str, args: &[&str]) {
    let out = run(sb, dir, path, program, args);
    assert!(out.status.success(), "{program} {args:?}: {}", text(&out));
}

fn path_with(dir: &Path) -> String {
    let mut parts: Vec<PathBuf> = vec![dir.to_owned()];
    parts.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(parts)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn python_tools_from_pypi_are_told_apart() {
    let sb = Sandbox::new();
    let p = sb.path("py");
    let venv = sb.path("venv");
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let path = path_with(&venv.join("bin"));
    std::fs::create_dir_all(&p).unwrap();
    installed(
        &sb,
        &p,
        &path,
        "pip",
        &[
            "install",
            "-q",
            "pytest>=8,<10",
            "mypy>=1,<3",
            "ruff>=0.6,<1",
        ],
    );
    write(
        &p,
        "app.py",
        "import os\n\n\ndef add(a: int, b: int) -> int:\n    return a + b\n\n\ncount: int = \"three\"\n",
    );
    write(
        &p,
        "test_app.py",
        "import unittest\n\nfrom app import add\n\n\ndef test_adds():\n    assert add(1, 1) == 3\n\n\ndef test_passes():\n    assert add(1, 1) == 2\n\n\nclass AddTest(unittest.TestCase):\n    def test_negative(self):\n        self.assertEqual(add(-1, -1), -3)\n",
    );

    let log = failing(&sb, &p, &path, "python", &["-m", "pytest"]);
    let d = diagnose(&log);
    assert_eq!(d["class"], "test", "{d:#}\n{log}");
    let mut f = strings(&d["failing"]);
    f.sort();
    assert_eq!(
        f,
        [
            "test_app.py::AddTest::test_negative",
            "test_app.py::test_adds"
        ],
        "{d:#}\n{log}"
    );

    let log = failing(&sb, &p, &path, "python", &["-m", "unittest", "test_app"]);
    let d = diagnose(&log);
    assert_eq!(d["class"], "test", "{d:#}\n{log}");
    assert!(
        strings(&d["failing"])[0].starts_with("test_negative"),
        "{d:#}\n{log}"
    );

    let log = failing(&sb, &p, &path, "mypy", &["app.py"]);
    let d = diagnose(&log);
    assert_eq!(d["class"], "type", "{d:#}\n{log}");
    assert!(
        strings(&d["errors"])[0].starts_with("app.py:8: error:"),
        "{d:#}\n{log}"
    );

    let log = failing(&sb, &p, &path, "ruff", &["check", "app.py"]);
    let d = diagnose(&log);
    assert_eq!(d["class"], "lint", "{d:#}\n{log}");
    let e = strings(&d["errors"]).join("\n");
    assert!(
        e.contains("F401") && e.contains("app.py:1:8"),
        "{d:#}\n{log}"
    );
}

#[test]
fn javascript_tools_from_npm_are_told_apart() {
    let sb = Sandbox::new();
    let p = sb.path("js");
    std::fs::create_dir_all(&p).unwrap();
    let path = path_with(&p.join("node_modules/.bin"));
    write(
        &p,
        "package.json",
        "{\"name\":\"app\",\"version\":\"1.0.0\",\"private\":true}\n",
    );
    installed(
        &sb,
        &p,
        &path,
        "npm",
        &[
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "-D",
            "eslint@9",
            "typescript@5",
            "jest@29",
        ],
    );
    write(
        &p,
        "eslint.config.mjs",
        "export default [{ files: [\"**/*.js\"], rules: { \"no-unused-vars\": \"error\" } }];\n",
    );
    write(
        &p,
        "sum.js",
        "const unused = 1;\nfunction sum(a, b) { return a + b; }\nmodule.exports = sum;\n",
    );
    write(
        &p,
        "sum.test.js",
        "const sum = require('./sum');\ndescribe('math', () => {\n  test('adds', () => { expect(sum(1, 1)).toBe(3); });\n  test('passes', () => { expect(sum(1, 1)).toBe(2); });\n});\n",
    );
    write(&p, "a.ts", "const n: number = \"one\";\nexport { n };\n");

    let log = failing(&sb, &p, &path, "eslint", &["sum.js"]);
    let d = diagnose(&log);
    assert_eq!(d["class"], "lint", "{d:#}\n{log}");
    assert!(
        strings(&d["errors"])[0].contains("no-unused-vars"),
        "{d:#}\n{log}"
    );

    let log = failing(&sb, &p, &path, "tsc", &["--noEmit", "a.ts"]);
    let d = diagnose(&log);
    assert_eq!(d["class"], "type", "{d:#}\n{log}");
    assert!(strings(&d["errors"])[0].contains("TS2322"), "{d:#}\n{log}");

    let log = failing(&sb, &p, &path, "jest", &["--ci"]);
    let d = diagnose(&log);
    assert_eq!(d["class"], "test", "{d:#}\n{log}");
    assert_eq!(strings(&d["failing"]), ["math › adds"], "{d:#}\n{log}");
}
