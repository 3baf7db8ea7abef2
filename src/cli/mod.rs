//! Subcommand implementations: argument handling and output only; the logic lives in the library.

pub mod ci;
pub mod deliveries;
pub mod forge;
pub mod github_app;
pub mod hook;
pub mod replay;
pub mod scan;
pub mod serve;
pub mod tasks;

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Output format for machine-read results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Writes a command's whole output at once; a closed pipe (`| head`) is not an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// Serializes a value as pretty JSON followed by a newline.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(value).context("cannot serialize output")?;
    s.push('\n');
    Ok(s)
}

/// Replaces a file's content through a temporary file and a rename, so a crash never leaves it
/// half written.
pub fn write_atomically(path: &Path, content: &str) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir
        .unwrap_or(Path::new("."))
        .join(format!(".{name}.trunkwarden-{}", std::process::id()));
    std::fs::write(&tmp, content).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        // Keep the original permissions; failing to copy them is not worth losing the update.
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {}", path.display())
    })
}
