//! `plan` and `apply` over real files.
//!
//! Owns reading the files [`walk_all`] finds, loading `freshet.yaml` from the repository
//! root, fetching facts through a [`FactSource`] with a per-run [`Cache`], and writing
//! planned edits atomically. Every file that can be read is planned; every problem is
//! reported with its file and line, and a file that fails to parse is left untouched.
//! A registry lookup that fails is an error naming its class, file, line and reference:
//! a plan never reports "nothing pending" for references it could not check.
//!
//! Must not decide updates (that is `freshet_core::files`) or run git.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use freshet_core::files::{self, Config, Edit, PlanError, ScanOptions, Step, Tracked, Update};

use crate::cache::{Asked, Cache, Wanted};
use crate::facts::FactSource;
use crate::walk::{Skipped, chart_writes_hex_sha, display_name, find_root, walk_all};
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
    /// The scan options the plan used, so the write re-checks the same way.
    pub options: ScanOptions,
}

/// The result of `plan`: `{"updates": [...], "errors": [...]}` in JSON. Warnings are
/// not part of that contract; the command line prints them on stderr.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PlanReport {
    /// Pending updates: `{file, line, current, new, policy, reason}`.
    pub updates: Vec<Update>,
    /// Errors: `{file, line, message}`, plus `class` and `reference` for a failed
    /// registry lookup; unreadable or unparsable files, bad markers, references that
    /// cannot be edited or checked.
    pub errors: Vec<PlanError>,
    /// Files set aside: `{file, reason}` (Helm chart templates).
    pub skipped: Vec<Skipped>,
    /// What the run cost the registries (`{"requests": …, …}`), when the source
    /// counts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<serde_json::Value>,
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
    PlanError::new(file, line, message)
}

/// How many rounds of questions a reference may ask (a tag list, then build times, a
/// digest after its decision, and one to re-check a pin).
const MAX_ROUNDS: usize = 5;

/// One file that scanned cleanly, with its tracked references.
struct Scanned {
    path: PathBuf,
    display: String,
    text: String,
    options: ScanOptions,
    tracked: Vec<Tracked>,
}

/// Where one tracked reference stands while planning.
struct Pending {
    /// Index into the scanned files, and into that file's tracked references.
    file: usize,
    index: usize,
    /// What it asked for so far.
    asked: Asked,
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
    let walked = walk_all(paths);
    report.errors.extend(walked.errors);
    report.skipped = walked
        .skipped
        .iter()
        .map(|p| Skipped {
            file: display_name(&root, p),
            reason:
                "a Helm chart template (templates/ beside Chart.yaml): rendered by Helm, not edited"
                    .into(),
        })
        .collect();
    let scanned = read_and_track(&root, walked.files, &config, options.all, &mut report);
    let outcomes = decide_all(&scanned, source).await;
    collect(scanned, outcomes, &mut report);
    report.cost = source.requests();
    report
}

/// Reads, scans and tracks every file.
fn read_and_track(
    root: &Path,
    paths: Vec<PathBuf>,
    config: &Config,
    all: bool,
    report: &mut PlanReport,
) -> Vec<Scanned> {
    let mut scanned = Vec::new();
    let mut hex_charts: BTreeMap<PathBuf, bool> = BTreeMap::new();
    for path in paths {
        let display = display_name(root, &path);
        let text = match crate::read::read_bounded(&path) {
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
        let mut scan_options = config.scan_options(&display);
        if text.contains("sha:") {
            let chart = path.parent().map(Path::to_owned).unwrap_or_default();
            scan_options.sha_hex = *hex_charts
                .entry(chart)
                .or_insert_with(|| chart_writes_hex_sha(&path));
        }
        let found = match files::scan_with(&display, &text, &scan_options) {
            Ok(f) => f,
            Err(e) => {
                report.errors.push(error(
                    &display,
                    e.line(),
                    format!("{}; left untouched", e.detail()),
                ));
                continue;
            }
        };
        let (tracked, errors) = files::track(&display, found, config, all);
        report.errors.extend(errors);
        scanned.push(Scanned {
            path,
            display,
            text,
            options: scan_options,
            tracked,
        });
    }
    scanned
}

/// The outcome of one tracked reference, and the failed lookup behind it, if any.
type Outcome = (Step, Option<crate::facts::FactError>);

/// Decides in rounds: asks every pending reference what it needs, fetches all of it at
/// once, steps again.
async fn decide_all(
    scanned: &[Scanned],
    source: &dyn FactSource,
) -> BTreeMap<(usize, usize), Outcome> {
    let mut pending: Vec<Pending> = Vec::new();
    let mut wanted = Wanted::default();
    for (file, s) in scanned.iter().enumerate() {
        for (index, t) in s.tracked.iter().enumerate() {
            let needs = t.needs();
            let mut asked = Asked {
                tag_list: needs.tag_list,
                ..Asked::default()
            };
            if needs.tag_list {
                wanted.tag_list(&t.reference);
            }
            if let Some(tag) = needs.digest_of {
                wanted.digest(&t.reference, &tag);
                asked.digest_tags.push(tag);
            }
            pending.push(Pending { file, index, asked });
        }
    }
    let mut cache = Cache::default();
    let mut outcomes = BTreeMap::new();
    for round in 0..MAX_ROUNDS {
        if !wanted.is_empty() {
            cache.fill(source, &wanted).await;
        }
        wanted = Wanted::default();
        let mut still = Vec::new();
        for mut p in pending {
            let s = &scanned[p.file];
            let t = &s.tracked[p.index];
            let platform = t.build_platform();
            let facts = cache.facts(&t.reference, &p.asked);
            let builds = cache.builds(&t.reference, &p.asked, &platform);
            let last = round + 1 == MAX_ROUNDS;
            match t.step_with(&s.text, &facts, &builds) {
                Step::NeedDigest(tag) if !last && !p.asked.digest_tags.contains(&tag) => {
                    wanted.digest(&t.reference, &tag);
                    p.asked.digest_tags.push(tag);
                    still.push(p);
                }
                Step::NeedBuilds(tags) if !last && p.asked.build_tags.is_empty() => {
                    for tag in &tags {
                        wanted.build(&t.reference, tag, &platform);
                    }
                    p.asked.build_tags = tags;
                    still.push(p);
                }
                Step::NeedDigest(_) | Step::NeedBuilds(_) => {
                    let bug = Step::Error(error(
                        &s.display,
                        t.found.line,
                        "the planner asked for the same facts again; this is a bug",
                    ));
                    outcomes.insert((p.file, p.index), (bug, None));
                }
                step => {
                    let failed = cache.failure(&t.reference, &p.asked, &platform);
                    outcomes.insert((p.file, p.index), (step, failed));
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
    }
    outcomes
}

/// Collects the outcomes in file and reference order, and checks each file's edits.
fn collect(
    scanned: Vec<Scanned>,
    outcomes: BTreeMap<(usize, usize), Outcome>,
    report: &mut PlanReport,
) {
    let mut outcomes = outcomes.into_iter().peekable();
    for (file, s) in scanned.into_iter().enumerate() {
        let mut edits: Vec<Edit> = Vec::new();
        let mut updates: Vec<Update> = Vec::new();
        while let Some(((_, index), (step, failed))) = outcomes.next_if(|((f, _), _)| *f == file) {
            let t = &s.tracked[index];
            let line = t.found.line;
            let lookup_failed = failed.is_some();
            if let Some(failed) = failed {
                // A lookup that failed is an error, never a silent "nothing pending".
                let mut e = error(
                    &s.display,
                    line,
                    format!("{failed}; {} was not checked", t.found.image),
                );
                e.class = Some(failed.class.clone().unwrap_or_else(|| "lookup".into()));
                e.reference = Some(t.reference.to_string());
                report.errors.push(e);
            }
            match step {
                Step::Update(u) => {
                    edits.extend(u.edits.iter().cloned());
                    updates.push(u);
                }
                // The error above already says why it was kept.
                Step::Keep { warning: Some(_) } if lookup_failed => {}
                Step::Keep { warning: Some(w) } => report.warnings.push(error(&s.display, line, w)),
                Step::Keep { warning: None } | Step::NeedDigest(_) | Step::NeedBuilds(_) => {}
                Step::Error(e) => report.errors.push(e),
            }
        }
        if edits.is_empty() {
            continue;
        }
        // Check the edits now, so `plan` reports what `apply` would refuse.
        if let Err(e) = files::apply_edits_with(&s.display, &s.text, &edits, &s.options) {
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
            options: s.options,
        });
    }
}

/// Reads and validates `freshet.yaml` at the root; a missing file is the default config.
fn load_config(root: &Path) -> Result<Config, PlanError> {
    match crate::read::read_text_bounded(&root.join("freshet.yaml")) {
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
        let current = match crate::read::read_text_bounded(&file.path) {
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
        let new = match files::apply_edits_with(&file.display, &current, &file.edits, &file.options)
        {
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
