//! A write-ahead record of one `apply --commit`, so that a run killed between writing
//! files and committing them is finished by the next run.
//!
//! Owns the record `freshet-apply.journal` in the git directory (`git rev-parse
//! --git-path`): the commit message and, for each file about to be written, its path
//! and new bytes. [`Git::journal_begin`] writes it atomically before the first file
//! is written; [`Git::journal_end`] removes it once the commit is made;
//! [`Git::journal_recover`], run before planning, commits the recorded files whose
//! bytes are exactly the recorded new bytes and still differ from `HEAD`, then
//! removes the record. A file edited by hand since is never taken.
//!
//! Must not decide what to write; must not commit anything it did not record.

use std::io::Write as _;
use std::path::PathBuf;

use base64::Engine as _;

use crate::git::{Git, GitError};

/// The first line of a record.
const MAGIC: &str = "freshet-apply-journal v1";

/// The largest record read back.
const MAX_BYTES: u64 = 256 << 20;

/// The note added to a commit made from a record.
const RECOVERED: &str = "\n(committed by freshet when finishing an interrupted run; updates it lists that are not in this commit follow in the next one)\n";

impl Git {
    async fn journal_path(&self) -> Result<PathBuf, GitError> {
        let out = self
            .run_checked(&[
                "rev-parse",
                "--path-format=absolute",
                "--git-path",
                "freshet-apply.journal",
            ])
            .await?;
        Ok(PathBuf::from(out.trim()))
    }

    /// Records `files` (path, new bytes) and `message` before any of them is written.
    pub async fn journal_begin(
        &self,
        files: &[(PathBuf, Vec<u8>)],
        message: &str,
    ) -> Result<(), GitError> {
        let path = self.journal_path().await?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut text = format!("{MAGIC}\n{}\n", b64.encode(message));
        for (file, bytes) in files {
            let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
            text.push_str(&format!(
                "{}\t{}\n",
                b64.encode(absolute.as_os_str().as_encoded_bytes()),
                b64.encode(bytes)
            ));
        }
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let mut temp = tempfile::Builder::new()
            .prefix(".freshet-journal-")
            .tempfile_in(dir)
            .map_err(GitError::Journal)?;
        temp.write_all(text.as_bytes()).map_err(GitError::Journal)?;
        temp.as_file().sync_all().map_err(GitError::Journal)?;
        temp.persist(&path)
            .map_err(|e| GitError::Journal(e.error))?;
        Ok(())
    }

    /// Removes the record (after the commit, or when nothing was written).
    pub async fn journal_end(&self) -> Result<(), GitError> {
        match std::fs::remove_file(self.journal_path().await?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(GitError::Journal(e)),
            _ => Ok(()),
        }
    }

    /// Finishes an interrupted run: commits the recorded files whose bytes are exactly
    /// the recorded new bytes and that differ from `HEAD`, with the recorded message and
    /// a note; then removes the record. Returns the commit made, if any. An unreadable
    /// record is removed with a warning.
    pub async fn journal_recover(&self) -> Result<Option<String>, GitError> {
        let path = self.journal_path().await?;
        let text = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(GitError::Journal(e)),
            Ok(m) if m.len() > MAX_BYTES => None,
            Ok(_) => std::fs::read_to_string(&path).ok(),
        };
        let Some((message, files)) = text.as_deref().and_then(parse) else {
            tracing::warn!(path = %path.display(), "removing an unreadable apply journal");
            self.journal_end().await?;
            return Ok(None);
        };
        let done: Vec<PathBuf> = files
            .into_iter()
            .filter(|(file, bytes)| std::fs::read(file).is_ok_and(|now| &now == bytes))
            .map(|(file, _)| file)
            .collect();
        let changed = self.dirty(&done).await?;
        let commit = if changed.is_empty() {
            None
        } else {
            Some(
                self.commit(&changed, &format!("{message}{RECOVERED}"))
                    .await?,
            )
        };
        self.journal_end().await?;
        Ok(commit)
    }
}

/// The files of a record: path and new bytes.
type Entries = Vec<(PathBuf, Vec<u8>)>;

/// The message and the entries of a record.
fn parse(text: &str) -> Option<(String, Entries)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let message = String::from_utf8(b64.decode(lines.next()?).ok()?).ok()?;
    let mut files = Vec::new();
    for line in lines {
        let (path, bytes) = line.split_once('\t')?;
        let path = String::from_utf8(b64.decode(path).ok()?).ok()?;
        files.push((PathBuf::from(path), b64.decode(bytes).ok()?));
    }
    Some((message, files))
}
