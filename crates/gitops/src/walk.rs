//! Which files `plan` reads.
//!
//! Owns expanding the given paths into files: directories are walked recursively,
//! hidden directories included (`.github/workflows`, `.gitlab-ci.yml`) except `.git`,
//! honouring `.gitignore`; the templates of a Helm chart (`templates/` beside a
//! `Chart.yaml`) are set aside as skipped, since they are Go templates, not YAML to edit.
//! Also finds the repository root and the names files are reported by.
//!
//! Must not read file contents, except to learn how a chart writes its digests.

use std::path::{Path, PathBuf};

use freshet_core::files::{self, PlanError};

/// A file set aside, with why: `{file, reason}` in JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The file (relative to the root when under it).
    pub file: String,
    /// Why it was not read.
    pub reason: String,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Walked {
    /// Files to read, sorted, without duplicates.
    pub files: Vec<PathBuf>,
    /// Files set aside (chart templates).
    pub skipped: Vec<PathBuf>,
    /// Paths that could not be walked.
    pub errors: Vec<PlanError>,
}

/// The chart directory a file is a template of: `<chart>/templates/**` with a
/// `<chart>/Chart.yaml`.
pub fn chart_of_template(path: &Path) -> Option<PathBuf> {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d.file_name().is_some_and(|n| n == "templates")
            && let Some(chart) = d.parent()
            && chart.join("Chart.yaml").is_file()
        {
            return Some(chart.to_owned());
        }
        dir = d.parent();
    }
    None
}

/// Expands paths into the files freshet reads. A directory is walked (skipping `.git`
/// and git-ignored files, but not other hidden entries); a file named explicitly is
/// kept even if its format is unknown, so it is reported.
pub fn walk(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<PlanError>) {
    let w = walk_all(paths);
    (w.files, w.errors)
}

/// [`walk`], also returning the chart templates it set aside.
pub fn walk_all(paths: &[PathBuf]) -> Walked {
    let mut out = Walked::default();
    for path in paths {
        if path.is_file() {
            out.files.push(path.clone());
            continue;
        }
        if !path.exists() {
            out.errors.push(PlanError::new(
                &path.display().to_string(),
                0,
                "no such file or directory",
            ));
            continue;
        }
        let walker = ignore::WalkBuilder::new(path)
            .require_git(false)
            .hidden(false)
            .filter_entry(|e| e.file_name() != ".git")
            .build();
        for entry in walker {
            match entry {
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => {
                    if files::detect(&e.path().to_string_lossy()).is_none() {
                        continue;
                    }
                    if chart_of_template(e.path()).is_some() {
                        out.skipped.push(e.into_path());
                    } else {
                        out.files.push(e.into_path());
                    }
                }
                Ok(_) => {}
                Err(e) => out.errors.push(PlanError::new(
                    &path.display().to_string(),
                    0,
                    e.to_string(),
                )),
            }
        }
    }
    out.files.sort();
    out.files.dedup();
    out.skipped.sort();
    out.skipped.dedup();
    out
}

/// The most bytes of one chart template read to learn how the chart writes digests.
const MAX_TEMPLATE_BYTES: u64 = 1 << 20;
/// The most templates read per chart.
const MAX_TEMPLATES: usize = 200;

/// Whether the chart a values file belongs to writes `@sha256:{{ … .sha }}`, so an
/// empty `sha:` key takes bare hex (kube-prometheus-stack) rather than `sha256:…`.
pub fn chart_writes_hex_sha(values: &Path) -> bool {
    let Some(chart) = values.parent() else {
        return false;
    };
    if !chart.join("Chart.yaml").is_file() {
        return false;
    }
    let walker = ignore::WalkBuilder::new(chart.join("templates"))
        .require_git(false)
        .build();
    walker
        .flatten()
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .filter(|e| e.metadata().is_ok_and(|m| m.len() <= MAX_TEMPLATE_BYTES))
        .take(MAX_TEMPLATES)
        .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("@sha256:{{")))
}

/// The nearest directory above the first path holding `.git` or `freshet.yaml`, else
/// the current directory.
pub fn find_root(paths: &[PathBuf]) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let Some(first) = paths.first() else {
        return cwd;
    };
    let start = std::fs::canonicalize(first).unwrap_or_else(|_| cwd.join(first));
    let mut dir = if start.is_dir() {
        Some(start.as_path())
    } else {
        start.parent()
    };
    while let Some(d) = dir {
        if d.join(".git").exists() || d.join("freshet.yaml").is_file() {
            return d.to_owned();
        }
        dir = d.parent();
    }
    cwd
}

/// The name a file is reported by: relative to the root when under it, `/` separated.
pub fn display_name(root: &Path, path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let shown = absolute
        .strip_prefix(root)
        .map(Path::to_owned)
        .unwrap_or_else(|_| path.to_owned());
    shown.to_string_lossy().replace('\\', "/")
}
