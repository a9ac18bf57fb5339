//! `plan` and `apply` over real files.
//!
//! Owns walking the given paths (skipping `.git` and honouring `.gitignore` through the
//! `ignore` crate), reading files, loading `freshet.yaml` from the repository root,
//! fetching facts through a [`FactSource`] with a per-run cache, and writing planned edits
//! atomically. Every file that can be read is planned; every problem is reported with its
//! file and line, and a file that fails to parse is left untouched.
//!
//! Must not decide updates (that is `freshet_core::files`) or run git.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use freshet_core::files::{self, Config, Edit, PlanError, Step, Tracked, Update};
use freshet_core::policy::Facts;
use freshet_core::{Digest, Reference};
use futures::stream::{self, StreamExt as _};

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

/// The result of `plan`: `{"updates": [...], "errors": [...]}` in JSON. Warnings are
/// not part of that contract; the command line prints them on stderr.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PlanReport {
    /// Pending updates: `{file, line, current, new, policy, reason}`.
    pub updates: Vec<Update>,
    /// Errors: `{file, line, message}`; unreadable or unparsable files, bad markers,
    /// references that cannot be edited.
    pub errors: Vec<PlanError>,
    /// References kept for a reason worth knowing (tag list failed, current tag gone…):
    /// `{file, line, message}`.
    #[serde(skip)]
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

/// How many registry questions are in flight at once. The registry client applies its
/// own per-registry limits below this.
const FETCH_CONCURRENCY: usize = 64;

/// How many rounds of [`Step::NeedDigest`] a reference may ask for (a policy asks for at
/// most one digest after its decision, plus one to re-check a pin).
const MAX_ROUNDS: usize = 4;

/// Per-run cache of registry answers, filled in batches so every unique question is asked
/// once and the questions of one batch run concurrently.
#[derive(Default)]
struct Cache {
    /// Tag lists by repository name.
    tags: HashMap<String, Result<Vec<String>, String>>,
    /// Digests by (repository name, tag).
    digests: HashMap<(String, String), Result<Digest, String>>,
}

impl Cache {
    /// Fetches every tag list and digest in `wanted` that is not cached yet.
    async fn fill(&mut self, source: &dyn FactSource, wanted: &Wanted) {
        let tag_jobs: Vec<&Reference> = wanted
            .tags
            .iter()
            .filter(|(name, _)| !self.tags.contains_key(*name))
            .map(|(_, r)| r)
            .collect();
        let tag_answers: Vec<(String, Result<Vec<String>, String>)> = stream::iter(tag_jobs)
            .map(|r| async move { (r.name(), source.tags(r).await.map_err(|e| e.to_string())) })
            .buffer_unordered(FETCH_CONCURRENCY)
            .collect()
            .await;
        self.tags.extend(tag_answers);

        let digest_jobs: Vec<(&(String, String), &Reference)> = wanted
            .digests
            .iter()
            .filter(|(key, _)| !self.digests.contains_key(*key))
            .collect();
        let digest_answers: Vec<((String, String), Result<Digest, String>)> =
            stream::iter(digest_jobs)
                .map(|(key, r)| async move {
                    let answer = match r.with_tag(&key.1) {
                        Ok(tagged) => source.digest(&tagged).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    (key.clone(), answer)
                })
                .buffer_unordered(FETCH_CONCURRENCY)
                .collect()
                .await;
        self.digests.extend(digest_answers);
    }

    /// The facts for one reference: its tag list if asked for, and the digests of `tags`.
    fn facts(&self, reference: &Reference, tag_list: bool, tags: &[String]) -> Facts {
        let name = reference.name();
        let mut facts = Facts::default();
        if tag_list {
            facts.tags = self.tags.get(&name).cloned();
        }
        for tag in tags {
            if let Some(d) = self.digests.get(&(name.clone(), tag.clone())) {
                facts.digests.insert(tag.clone(), d.clone());
            }
        }
        facts
    }
}

/// The questions of one batch, deduplicated: a reference to ask with, per repository
/// and per (repository, tag).
#[derive(Default)]
struct Wanted {
    tags: BTreeMap<String, Reference>,
    digests: BTreeMap<(String, String), Reference>,
}

impl Wanted {
    fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.digests.is_empty()
    }
}

/// One file that scanned cleanly, with its tracked references.
struct Scanned {
    path: PathBuf,
    display: String,
    text: String,
    tracked: Vec<Tracked>,
}

/// Where one tracked reference stands while planning.
struct Pending {
    /// Index into the scanned files, and into that file's tracked references.
    file: usize,
    index: usize,
    /// Whether the policy wants the tag list.
    tag_list: bool,
    /// Tags whose digests the planner asked for.
    digest_tags: Vec<String>,
}

/// Plans updates for every file under `paths`. Never fails as a whole: every problem is
/// an entry in [`PlanReport::errors`], and the files that could be read are planned.
///
/// Registry questions are gathered from all files first, deduplicated and asked
/// concurrently, so a repository's tags are listed once however many files use it.
pub async fn plan(paths: &[PathBuf], options: &PlanOptions, source: &dyn FactSource) -> PlanReport {
    let root = options.root.clone().unwrap_or_else(|| find_root(paths));
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let mut report = PlanReport::default();
    let config = match load_config(&root) {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    let (paths, walk_errors) = walk(paths);
    report.errors.extend(walk_errors);

    // 1. Read, scan and track every file.
    let mut scanned: Vec<Scanned> = Vec::new();
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
        scanned.push(Scanned {
            path,
            display,
            text,
            tracked,
        });
    }

    // 2. Decide in rounds: ask every pending reference what it needs, fetch all of it
    //    at once, step again.
    let mut pending: Vec<Pending> = Vec::new();
    let mut wanted = Wanted::default();
    for (file, s) in scanned.iter().enumerate() {
        for (index, t) in s.tracked.iter().enumerate() {
            let needs = t.needs();
            if needs.tag_list {
                wanted
                    .tags
                    .entry(t.reference.name())
                    .or_insert_with(|| t.reference.clone());
            }
            let mut digest_tags = Vec::new();
            if let Some(tag) = needs.digest_of {
                wanted
                    .digests
                    .entry((t.reference.name(), tag.clone()))
                    .or_insert_with(|| t.reference.clone());
                digest_tags.push(tag);
            }
            pending.push(Pending {
                file,
                index,
                tag_list: needs.tag_list,
                digest_tags,
            });
        }
    }
    let mut cache = Cache::default();
    let mut outcomes: BTreeMap<(usize, usize), Step> = BTreeMap::new();
    for round in 0..MAX_ROUNDS {
        if !wanted.is_empty() {
            cache.fill(source, &wanted).await;
        }
        wanted = Wanted::default();
        let mut still = Vec::new();
        for p in pending {
            let s = &scanned[p.file];
            let t = &s.tracked[p.index];
            let facts = cache.facts(&t.reference, p.tag_list, &p.digest_tags);
            match t.step(&s.text, &facts) {
                Step::NeedDigest(tag)
                    if round + 1 < MAX_ROUNDS && !p.digest_tags.contains(&tag) =>
                {
                    wanted
                        .digests
                        .entry((t.reference.name(), tag.clone()))
                        .or_insert_with(|| t.reference.clone());
                    let mut p = p;
                    p.digest_tags.push(tag);
                    still.push(p);
                }
                Step::NeedDigest(tag) => {
                    outcomes.insert(
                        (p.file, p.index),
                        Step::Error(error(
                            &s.display,
                            t.found.line,
                            format!(
                                "the planner asked for the digest of {tag} again; this is a bug"
                            ),
                        )),
                    );
                }
                step => {
                    outcomes.insert((p.file, p.index), step);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
    }

    // 3. Collect the outcomes in file and reference order, and check each file's edits.
    let mut outcomes = outcomes.into_iter().peekable();
    for (file, s) in scanned.into_iter().enumerate() {
        let mut edits: Vec<Edit> = Vec::new();
        let mut updates: Vec<Update> = Vec::new();
        while let Some(((_, index), step)) = outcomes.next_if(|((f, _), _)| *f == file) {
            let line = s.tracked[index].found.line;
            match step {
                Step::Update(u) => {
                    edits.extend(u.edits.iter().cloned());
                    updates.push(u);
                }
                Step::Keep { warning: Some(w) } => report.warnings.push(error(&s.display, line, w)),
                Step::Keep { warning: None } | Step::NeedDigest(_) => {}
                Step::Error(e) => report.errors.push(e),
            }
        }
        if edits.is_empty() {
            continue;
        }
        // Check the edits now, so `plan` reports what `apply` would refuse.
        if let Err(e) = files::apply_edits(&s.display, &s.text, &edits) {
            report
                .errors
                .push(error(&s.display, 0, format!("{e}; left untouched")));
            continue;
        }
        report.updates.extend(updates);
        report.files.push(FilePlan {
            path: s.path,
            display: s.display,
            original: s.text,
            edits,
        });
    }
    report
}

/// Reads and validates `freshet.yaml` at the root; a missing file is the default config.
fn load_config(root: &Path) -> Result<Config, PlanError> {
    match std::fs::read_to_string(root.join("freshet.yaml")) {
        Ok(text) => Config::parse(&text).map_err(|e| {
            let line = match &e {
                files::ConfigError::Syntax { line, .. } => *line,
                files::ConfigError::Invalid { .. } => 0,
            };
            error("freshet.yaml", line, e.to_string())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(error("freshet.yaml", 0, format!("cannot read: {e}"))),
    }
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
