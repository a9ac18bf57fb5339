//! `plan` and `apply` over real files.
//!
//! Owns walking the given paths (skipping `.git` and honouring `.gitignore` through the
//! `ignore` crate), reading files, loading `freshet.yaml` from the repository root,
//! fetching facts through a [`FactSource`] with a per-run cache, and writing planned edits
//! atomically. Every file that can be read is planned; every problem is reported with its
//! file and line, and a file that fails to parse is left untouched.
//!
//! Must not decide updates (that is `freshet_core::files`) or run git.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use freshet_core::files::{self, Config, Edit, PlanError, Step, Update};
use freshet_core::policy::Facts;
use freshet_core::{Digest, Reference};

use crate::facts::FactSource;
use crate::write::write_atomic;

/// What `plan` and `apply` should do.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--all`: track every reference found, with `freshet.yaml`'s default policy.
    pub all: bool,
    /// The repository root, where `freshet.yaml` lives and against which rule paths are
    /// matched. `None`: the nearest directory above the first path holding `.git` or
    /// `freshet.yaml`, else the current directory.
    pub root: Option<PathBuf>,
}

/// One file's planned edits.
#[derive(Debug, Clone)]
pub struct FilePlan {
    /// The file on disk.
    pub path: PathBuf,
    /// The name used in reports (relative to the root when under it).
    pub display: String,
    /// The text the plan was made from.
    pub original: String,
    /// The edits to make.
    pub edits: Vec<Edit>,
}

/// The result of `plan`: `{"updates": [...], "errors": [...], "warnings": [...]}` in JSON.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PlanReport {
    /// Pending updates: `{file, line, current, new, policy, reason}`.
    pub updates: Vec<Update>,
    /// Errors: `{file, line, message}`; unreadable or unparsable files, bad markers,
    /// references that cannot be edited.
    pub errors: Vec<PlanError>,
    /// References kept for a reason worth knowing (tag list failed, current tag gone…):
    /// `{file, line, message}`.
    pub warnings: Vec<PlanError>,
    /// The files with edits, for [`apply`].
    #[serde(skip)]
    pub files: Vec<FilePlan>,
}

impl PlanReport {
    /// The exit code for `plan`: 1 on any error; with `detailed`, 2 when updates are
    /// pending; otherwise 0.
    pub fn exit_code(&self, detailed: bool) -> i32 {
        if !self.errors.is_empty() {
            1
        } else if detailed && !self.updates.is_empty() {
            2
        } else {
            0
        }
    }
}

/// The result of `apply`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ApplyReport {
    /// Files rewritten, in order.
    pub written: Vec<PathBuf>,
    /// Files that could not be written (left untouched): `{file, line, message}`.
    pub errors: Vec<PlanError>,
}

fn error(file: &str, line: usize, message: impl Into<String>) -> PlanError {
    PlanError {
        file: file.to_owned(),
        line,
        message: message.into(),
    }
}

/// Expands paths into the files freshet reads, sorted and without duplicates. A
/// directory is walked (skipping `.git`, hidden entries and git-ignored files); a file
/// named explicitly is kept even if its format is unknown, so it is reported.
pub fn walk(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<PlanError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_file() {
            out.push(path.clone());
            continue;
        }
        if !path.exists() {
            errors.push(error(
                &path.display().to_string(),
                0,
                "no such file or directory",
            ));
            continue;
        }
        let walker = ignore::WalkBuilder::new(path)
            .require_git(false)
            .filter_entry(|e| e.file_name() != ".git")
            .build();
        for entry in walker {
            match entry {
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => {
                    if files::detect(&e.path().to_string_lossy()).is_some() {
                        out.push(e.into_path());
                    }
                }
                Ok(_) => {}
                Err(e) => errors.push(error(&path.display().to_string(), 0, e.to_string())),
            }
        }
    }
    out.sort();
    out.dedup();
    (out, errors)
}

fn find_root(paths: &[PathBuf]) -> PathBuf {
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

fn display_name(root: &Path, path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let shown = absolute
        .strip_prefix(root)
        .map(Path::to_owned)
        .unwrap_or_else(|_| path.to_owned());
    shown.to_string_lossy().replace('\\', "/")
}

/// Per-run cache of registry answers.
#[derive(Default)]
struct Cache {
    tags: HashMap<String, Result<Vec<String>, String>>,
    digests: HashMap<(String, String), Result<Digest, String>>,
}

impl Cache {
    async fn tags(
        &mut self,
        source: &dyn FactSource,
        reference: &Reference,
    ) -> Result<Vec<String>, String> {
        let key = reference.name();
        if let Some(hit) = self.tags.get(&key) {
            return hit.clone();
        }
        let answer = source.tags(reference).await.map_err(|e| e.to_string());
        self.tags.insert(key, answer.clone());
        answer
    }

    async fn digest(
        &mut self,
        source: &dyn FactSource,
        reference: &Reference,
        tag: &str,
    ) -> Result<Digest, String> {
        let key = (reference.name(), tag.to_owned());
        if let Some(hit) = self.digests.get(&key) {
            return hit.clone();
        }
        let answer = match reference.with_tag(tag) {
            Ok(tagged) => source.digest(&tagged).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        self.digests.insert(key, answer.clone());
        answer
    }
}

/// Plans updates for every file under `paths`. Never fails as a whole: every problem is
/// an entry in [`PlanReport::errors`], and the files that could be read are planned.
pub async fn plan(paths: &[PathBuf], options: &PlanOptions, source: &dyn FactSource) -> PlanReport {
    let root = options.root.clone().unwrap_or_else(|| find_root(paths));
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let mut report = PlanReport::default();
    let config = match std::fs::read_to_string(root.join("freshet.yaml")) {
        Ok(text) => match Config::parse(&text) {
            Ok(c) => c,
            Err(e) => {
                let line = match &e {
                    files::ConfigError::Syntax { line, .. } => *line,
                    files::ConfigError::Invalid { .. } => 0,
                };
                report
                    .errors
                    .push(error("freshet.yaml", line, e.to_string()));
                return report;
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
        Err(e) => {
            report.errors.push(error("freshet.yaml", 0, e.to_string()));
            return report;
        }
    };
    let (paths, walk_errors) = walk(paths);
    report.errors.extend(walk_errors);
    let mut cache = Cache::default();
    for path in paths {
        let display = display_name(&root, &path);
        let text = match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => {
                    report
                        .errors
                        .push(error(&display, 0, "not UTF-8 text; left untouched"));
                    continue;
                }
            },
            Err(e) => {
                report
                    .errors
                    .push(error(&display, 0, format!("cannot read: {e}")));
                continue;
            }
        };
        let found = match files::scan(&display, &text) {
            Ok(f) => f,
            Err(e) => {
                report
                    .errors
                    .push(error(&display, e.line(), format!("{e}; left untouched")));
                continue;
            }
        };
        let (tracked, errors) = files::track(&display, found, &config, options.all);
        report.errors.extend(errors);
        let mut edits = Vec::new();
        for t in &tracked {
            let needs = t.needs();
            let mut facts = Facts::default();
            if needs.tag_list {
                facts.tags = Some(cache.tags(source, &t.reference).await);
            }
            if let Some(tag) = &needs.digest_of {
                let d = cache.digest(source, &t.reference, tag).await;
                facts.digests.insert(tag.clone(), d);
            }
            // Each NeedDigest adds a digest, so this ends after at most a few rounds.
            for _ in 0..4 {
                match t.step(&text, &facts) {
                    Step::NeedDigest(tag) => {
                        let d = cache.digest(source, &t.reference, &tag).await;
                        facts.digests.insert(tag, d);
                    }
                    Step::Keep { warning } => {
                        if let Some(w) = warning {
                            report.warnings.push(error(&display, t.found.line, w));
                        }
                        break;
                    }
                    Step::Update(u) => {
                        edits.extend(u.edits.iter().cloned());
                        report.updates.push(u);
                        break;
                    }
                    Step::Error(e) => {
                        report.errors.push(e);
                        break;
                    }
                }
            }
        }
        if edits.is_empty() {
            continue;
        }
        // Check the edits now, so `plan` reports what `apply` would refuse.
        if let Err(e) = files::apply_edits(&display, &text, &edits) {
            report.updates.retain(|u| u.file != display);
            report
                .errors
                .push(error(&display, 0, format!("{e}; left untouched")));
            continue;
        }
        report.files.push(FilePlan {
            path,
            display,
            original: text,
            edits,
        });
    }
    report
}

/// Writes every planned file atomically. A file that changed on disk since the plan, or
/// whose edits no longer check out, is reported and left untouched.
pub fn apply(report: &PlanReport) -> ApplyReport {
    let mut out = ApplyReport::default();
    for file in &report.files {
        let current = match std::fs::read_to_string(&file.path) {
            Ok(t) => t,
            Err(e) => {
                out.errors
                    .push(error(&file.display, 0, format!("cannot read: {e}")));
                continue;
            }
        };
        if current != file.original {
            out.errors.push(error(
                &file.display,
                0,
                "changed since it was planned; left untouched, plan again",
            ));
            continue;
        }
        let new = match files::apply_edits(&file.display, &current, &file.edits) {
            Ok(n) => n,
            Err(e) => {
                out.errors
                    .push(error(&file.display, 0, format!("{e}; left untouched")));
                continue;
            }
        };
        match write_atomic(&file.path, new.as_bytes()) {
            Ok(()) => out.written.push(file.path.clone()),
            Err(e) => out.errors.push(error(&file.display, 0, e.to_string())),
        }
    }
    out
}
