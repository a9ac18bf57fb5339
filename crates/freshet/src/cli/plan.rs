//! `freshet plan`: which image references in files would change, and why.
//!
//! Owns the command's flags, the [`RegistryFacts`] adapter that answers the planner's
//! registry questions with the registry client, and the report's output. JSON is
//! `{"updates": [{file, line, current, new, policy, reason}], "errors": [{file, line,
//! message, class?, reference?}], "skipped": [{file, reason}], "cost": {requests, …}}`;
//! a registry lookup that failed is an error with its `class` and `reference`. Warnings
//! (a current tag gone from the registry, …) go to stderr.
//!
//! Exit codes: 1 on any error, failed lookups included (an error wins over pending
//! updates); with
//! `--detailed-exitcode`, 2 when updates are pending; otherwise 0. The files that could
//! be read are planned and reported even when others fail.
//!
//! Must not write files: that is `freshet apply`.

use std::path::PathBuf;

use clap::Args;
use freshet_core::policy::BuildTime;
use freshet_core::{Digest, Platform, Reference};
use freshet_gitops::{FactError, FactSource, PlanOptions, PlanReport};
use freshet_registry::{BuildTimes, Client, RegistryError, Want};

use super::output::{OutputFormat, print_json, print_text, table};
use super::progress::Progress;
use super::{Failure, RegistryArgs};

/// Arguments of `freshet plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Track every reference found, with `freshet.yaml`'s defaultPolicy (semver:minor
    /// unless set), not only those with a `freshet:` marker or a matching rule.
    #[arg(long)]
    all: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
    /// Exit 0 when nothing is pending, 2 when updates are pending, 1 on any error.
    #[arg(long)]
    detailed_exitcode: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Files and directories to scan (directories recursively, honouring .gitignore).
    #[arg(value_name = "PATH", default_value = ".")]
    paths: Vec<PathBuf>,
}

/// Answers the planner's questions with the registry client.
#[derive(Debug, Clone)]
pub struct RegistryFacts {
    client: Client,
    builds: BuildTimes,
    progress: Progress,
}

impl RegistryFacts {
    /// Wraps a client; one per run, so its memos dedupe questions.
    pub fn new(client: Client) -> Self {
        RegistryFacts {
            builds: BuildTimes::new(client.clone()),
            client,
            progress: Progress::spinner(false, ""),
        }
    }

    /// The same, ticking `progress` once per registry question.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }
}

/// What the spinner counts.
const QUESTIONS: &str = "registry questions asked";

/// A registry error as a fact error, keeping its class.
fn fact_error(what: String, e: RegistryError) -> FactError {
    FactError::new(format!("{what}: {e}")).with_class(e.class().label())
}

#[async_trait::async_trait]
impl FactSource for RegistryFacts {
    async fn tags(&self, reference: &Reference) -> Result<Vec<String>, FactError> {
        self.progress.tick(QUESTIONS);
        self.client
            .list_tags(reference)
            .await
            .map_err(|e| fact_error(format!("listing tags of {}", reference.name()), e))
    }

    async fn digest(&self, reference: &Reference) -> Result<Digest, FactError> {
        self.progress.tick(QUESTIONS);
        self.client
            .resolve(reference, &Want::default())
            .await
            .map(|r| r.digest)
            .map_err(|e| fact_error(format!("resolving {}", reference.familiar()), e))
    }

    async fn created(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Option<BuildTime>, FactError> {
        self.progress.tick(QUESTIONS);
        match self.builds.created(reference, platform).await {
            Ok(t) => Ok(Some(t)),
            // A tag without an image for this platform is not a candidate.
            Err(RegistryError::NoMatchingPlatform { .. }) => Ok(None),
            Err(e) => Err(fact_error(
                format!(
                    "reading the build time of {} ({platform})",
                    reference.familiar()
                ),
                e,
            )),
        }
    }

    fn requests(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self.client.stats()).ok()
    }
}

/// Runs `freshet plan`.
pub async fn run(args: PlanArgs) -> Result<u8, Failure> {
    let PlanArgs {
        all,
        output,
        detailed_exitcode,
        registry,
        paths,
    } = args;
    let client = registry.client().map_err(Failure::usage)?;
    let progress = Progress::spinner(Progress::wanted(output), "scanning files");
    let source = RegistryFacts::new(client).with_progress(progress.clone());
    let options = PlanOptions { all, root: None };
    let report = freshet_gitops::plan(&paths, &options, &source).await;
    progress.finish();
    print_warnings(&report);
    match output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => print_text(&text_report(&report))?,
    }
    Ok(exit_code(report.exit_code(detailed_exitcode)))
}

/// Converts the report's exit code (0, 1 or 2) to the process's.
pub(super) fn exit_code(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(super::EXIT_FAILURE)
}

/// Prints warnings on stderr, one per line, `file:line: message`.
pub(super) fn print_warnings(report: &PlanReport) {
    for w in &report.warnings {
        super::output::eprint_line(
            "freshet: warning: ",
            &format!("{}:{}: {}", w.file, w.line, w.message),
        );
    }
}

/// The text form: a table of updates, then errors, then a summary line.
pub(super) fn text_report(report: &PlanReport) -> String {
    let mut out = String::new();
    if !report.updates.is_empty() {
        let mut t = table(&["FILE:LINE", "CURRENT", "NEW", "POLICY", "REASON"]);
        for u in &report.updates {
            t.add_row(super::output::row([
                format!("{}:{}", u.file, u.line),
                u.current.clone(),
                u.new.clone(),
                u.policy.clone(),
                u.reason.clone(),
            ]));
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    for e in &report.errors {
        let class = e
            .class
            .as_deref()
            .map(|c| format!("[{c}] "))
            .unwrap_or_default();
        let line = format!("{}:{}: {class}{}", e.file, e.line, e.message);
        out.push_str(&format!("error: {}\n", super::output::field(&line)));
    }
    let lookups = report.errors.iter().filter(|e| e.class.is_some()).count();
    out.push_str(&format!(
        "{} update(s) pending, {} error(s){}{}\n",
        report.updates.len(),
        report.errors.len(),
        if lookups > 0 {
            format!(" ({lookups} failed registry lookup(s))")
        } else {
            String::new()
        },
        if report.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} chart template(s) skipped", report.skipped.len())
        }
    ));
    out
}
