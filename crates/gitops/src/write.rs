//! Atomic file writes.
//!
//! Owns replacing a file's contents so that a reader sees either the old or the new
//! bytes, never a mix: write a temporary file in the same directory, copy the original's
//! permissions, flush it to disk, then rename it over the original.
//!
//! Must not decide what to write.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why a file could not be written. The original is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The original's metadata could not be read.
    #[error("{path}: cannot read metadata: {source}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
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

/// Replaces `path`'s contents with `bytes` atomically, keeping its permissions.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let metadata = std::fs::metadata(path).map_err(|source| WriteError::Metadata {
        path: path.to_owned(),
        source,
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp_error = |source| WriteError::Temp {
        path: path.to_owned(),
        source,
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".freshet-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(temp_error)?;
    temp.write_all(bytes).map_err(temp_error)?;
    temp.as_file()
        .set_permissions(metadata.permissions())
        .map_err(temp_error)?;
    temp.as_file().sync_all().map_err(temp_error)?;
    temp.persist(path).map_err(|e| WriteError::Rename {
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(())
}
