//! Atomic file writes that never leave the repository.
//!
//! Owns replacing a file's contents so that a reader sees either the old or the new
//! bytes, never a mix: write a temporary file in the same directory, give it the
//! original's permissions, flush it to disk, rename it over the original, then flush the
//! directory.
//!
//! Symbolic links (the rule `apply` follows):
//! - a link whose target, once canonicalised, is a regular file inside the repository
//!   root is edited **at its target**; the link itself stays a link, untouched;
//! - a link pointing outside the root, a dangling link, and a link to a directory are
//!   refused with a message naming the link and its target, and nothing is written;
//! - a file whose directory resolves outside the root (a linked directory on the way)
//!   is refused the same way.
//!
//! (The same rule is stated for users in the README, "File mode".)
//!
//! The rename always lands on the canonical target, so a link is never replaced by a
//! regular file. A temporary file left by a killed run is removed by the next write in
//! its directory ([`sweep_stale_temps`]).
//!
//! Must not decide what to write. Must not write anywhere outside the root it is given.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

/// Why a file could not be written. The original is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The file's (or the root's) metadata could not be read.
    #[error("{path}: cannot read metadata: {source}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is a symbolic link whose target is outside the repository.
    #[error(
        "{path} is a symbolic link to {target}, outside the repository {root}; freshet never writes through a link out of the repository (left untouched)"
    )]
    LinkOutside {
        /// The link.
        path: PathBuf,
        /// Where it resolves.
        target: PathBuf,
        /// The repository root.
        root: PathBuf,
    },
    /// The file is a symbolic link to nothing.
    #[error("{path} is a symbolic link to {target}, which does not exist (left untouched)")]
    DanglingLink {
        /// The link.
        path: PathBuf,
        /// What it names.
        target: PathBuf,
    },
    /// The path (or the link's target) is not a regular file: a directory, a device…
    #[error("{path}: {target} is not a regular file (left untouched)")]
    NotAFile {
        /// The path given.
        path: PathBuf,
        /// What it resolves to.
        target: PathBuf,
    },
    /// A directory on the way to the file is a link that leads outside the repository.
    #[error(
        "{path} resolves to {target}, outside the repository {root}: a directory on the way is a symbolic link; freshet never writes there (left untouched)"
    )]
    DirectoryOutside {
        /// The path given.
        path: PathBuf,
        /// Where it resolves.
        target: PathBuf,
        /// The repository root.
        root: PathBuf,
    },
    /// The temporary file could not be created, written or flushed.
    #[error("{path}: cannot write a temporary file beside it: {source}")]
    Temp {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The rename over the original failed.
    #[error("{path}: cannot replace the file: {source}")]
    Rename {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Where a write to `path` may land inside `root`: the canonical path of the regular file
/// to replace (the link's target for a link inside the root), or why it is refused. Plan
/// can call this to report a refusal before `apply` tries.
pub fn resolve_within(root: &Path, path: &Path) -> Result<PathBuf, WriteError> {
    let metadata_error = |path: &Path| {
        let path = path.to_owned();
        move |source| WriteError::Metadata { path, source }
    };
    let root = std::fs::canonicalize(root).map_err(metadata_error(root))?;
    let meta = std::fs::symlink_metadata(path).map_err(metadata_error(path))?;
    if meta.file_type().is_symlink() {
        let named = std::fs::read_link(path).map_err(metadata_error(path))?;
        let target = match std::fs::canonicalize(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(WriteError::DanglingLink {
                    path: path.to_owned(),
                    target: named,
                });
            }
            Err(e) => return Err(metadata_error(path)(e)),
        };
        if !target.starts_with(&root) {
            return Err(WriteError::LinkOutside {
                path: path.to_owned(),
                target,
                root,
            });
        }
        if !std::fs::metadata(&target).is_ok_and(|m| m.is_file()) {
            return Err(WriteError::NotAFile {
                path: path.to_owned(),
                target,
            });
        }
        return Ok(target);
    }
    if !meta.is_file() {
        return Err(WriteError::NotAFile {
            path: path.to_owned(),
            target: path.to_owned(),
        });
    }
    let target = std::fs::canonicalize(path).map_err(metadata_error(path))?;
    if !target.starts_with(&root) {
        return Err(WriteError::DirectoryOutside {
            path: path.to_owned(),
            target,
            root,
        });
    }
    Ok(target)
}

/// Replaces the contents of `path`, which must resolve inside `root`, with `bytes`
/// atomically, keeping its permissions (see the module documentation for links).
/// Returns the file actually written: `path` canonicalised, or a link's target.
pub fn write_within(root: &Path, path: &Path, bytes: &[u8]) -> Result<PathBuf, WriteError> {
    let target = resolve_within(root, path)?;
    replace(&target, bytes)?;
    Ok(target)
}

/// [`write_within`] with the root inferred from `path`: the outermost directory on
/// `path`'s way (made absolute and normalised without following links) that holds
/// `.git` or `freshet.yaml`; when there is none, the file's own directory. Callers that
/// know the repository root (`apply` does) should pass it to [`write_within`] instead.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_within(&inferred_root(path), path, bytes).map(|_| ())
}

/// The root [`write_atomic`] confines a write to.
fn inferred_root(path: &Path) -> PathBuf {
    let absolute = match std::env::current_dir() {
        Ok(cwd) => cwd.join(path),
        Err(_) => path.to_owned(),
    };
    let mut normal = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            c => normal.push(c),
        }
    }
    let parent = normal.parent().map(Path::to_owned).unwrap_or_default();
    let ancestors: Vec<&Path> = parent.ancestors().collect();
    ancestors
        .into_iter()
        .rev()
        .find(|a| {
            std::fs::symlink_metadata(a.join(".git")).is_ok() || a.join("freshet.yaml").is_file()
        })
        .map(Path::to_owned)
        .unwrap_or(parent)
}

/// Temporary files are named `.freshet-<pid>-<random>.tmp`.
const TEMP_PREFIX: &str = ".freshet-";
const TEMP_SUFFIX: &str = ".tmp";

/// Removes the temporary files a killed freshet left in `dir`: those whose writer's
/// process is gone (checked in `/proc`; where there is no `/proc`, nothing is removed).
/// A live writer's file, and anything not named like a temporary file, is left alone.
pub fn sweep_stale_temps(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten().take(100_000) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMP_PREFIX))
            .filter(|n| n.ends_with(TEMP_SUFFIX))
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Replaces the regular file `target` (canonical) with `bytes`: temporary file beside
/// it, same permissions, flushed, renamed, directory flushed.
fn replace(target: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let metadata = std::fs::metadata(target).map_err(|source| WriteError::Metadata {
        path: target.to_owned(),
        source,
    })?;
    let dir = target.parent().unwrap_or(Path::new("/"));
    let temp_error = |source| WriteError::Temp {
        path: target.to_owned(),
        source,
    };
    sweep_stale_temps(dir);
    let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(temp_error)?;
    temp.write_all(bytes).map_err(temp_error)?;
    temp.as_file()
        .set_permissions(metadata.permissions())
        .map_err(temp_error)?;
    temp.as_file().sync_all().map_err(temp_error)?;
    temp.persist(target).map_err(|e| WriteError::Rename {
        path: target.to_owned(),
        source: e.error,
    })?;
    // Make the rename itself durable; the write has happened either way.
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "cannot flush the directory");
    }
    Ok(())
}
