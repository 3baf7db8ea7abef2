//! A sandbox for tests that drive the real `git` binary: its own HOME and global config, no
//! system config, and no variable from the caller's git environment.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A GitHub token with a valid checksum; the scanner must find it and never print it whole.
pub const TOKEN: &str = "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";

/// The trunkwarden binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_trunkwarden");

/// An isolated HOME with git configured for tests.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox::within(&std::env::temp_dir())
    }

    /// A sandbox in memory (`/dev/shm`) where the machine has one, for tests that create and
    /// drop many repositories: inode allocation on a busy disk filesystem dominates them.
    pub fn in_memory() -> Sandbox {
        let shm = std::path::Path::new("/dev/shm");
        if shm.is_dir() {
            Sandbox::within(shm)
        } else {
            Sandbox::new()
        }
    }

    fn within(base: &Path) -> Sandbox {
        let dir = tempfile::tempdir_in(base).unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        std::fs::write(
            dir.path().join("home/.gitconfig"),
            "[user]\n\tname = Dev\n\temail = dev@example.test\n[init]\n\tdefaultBranch = main\n\
             [protocol \"file\"]\n\tallow = always\n[advice]\n\tdetachedHead = false\n",
        )
        .unwrap();
        Sandbox { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A command with the sandbox's environment.
    pub fn command(&self, program: impl AsRef<OsStr>, cwd: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        c
    }

    /// Runs git; returns the output whatever the exit status.
    pub fn git(&self, cwd: &Path, args: &[&str]) -> Output {
        self.run(self.command("git", cwd).args(args), None)
    }

    /// Runs git with extra environment.
    pub fn git_env(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command("git", cwd);
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        self.run(&mut c, None)
    }

    /// Runs git and insists it succeeds; returns stdout.
    pub fn ok(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.git(cwd, args);
        assert!(out.status.success(), "git {args:?} failed:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs trunkwarden with optional stdin and extra environment.
    pub fn tw(
        &self,
        cwd: &Path,
        args: &[&str],
        stdin: Option<&[u8]>,
        env: &[(&str, &str)],
    ) -> Output {
        let mut c = self.command(BIN, cwd);
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        self.run(&mut c, stdin)
    }

    fn run(&self, c: &mut Command, stdin: Option<&[u8]>) -> Output {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child = c.spawn().expect("spawn");
        if let Some(bytes) = stdin {
            child.stdin.take().unwrap().write_all(bytes).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// A new working repository with one commit on `main`.
    pub fn repo(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        self.ok(&dir, &["init", "-q"]);
        std::fs::write(dir.join("README.md"), "hello\n").unwrap();
        self.ok(&dir, &["add", "README.md"]);
        self.ok(&dir, &["commit", "-q", "-m", "chore: start"]);
        dir
    }

    /// A bare repository.
    pub fn bare(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        self.ok(
            self.dir.path(),
            &["init", "-q", "--bare", dir.to_str().unwrap()],
        );
        dir
    }
}

/// stdout and stderr together, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes a file, creating parent directories.
pub fn write(dir: &Path, rel: impl AsRef<Path>, content: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}
