//! Progress on a terminal for long work (`plan`, `apply`, `run --once`): a spinner
//! on stderr saying what is being done, how many registry questions were asked and
//! for how long.
//!
//! Owns when progress shows: only when both stdout and stderr are terminals and the
//! output is text ([`Progress::wanted`]); otherwise every method does nothing, so
//! piped or JSON output never carries a progress byte. Must not print anything else.

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use freshet_cluster::{PassObserver, PassReport};
use indicatif::{ProgressBar, ProgressStyle};

use super::output::OutputFormat;

/// A spinner, or nothing. Clones share the spinner.
#[derive(Debug, Clone)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// Whether progress may show: text output, stdout and stderr both terminals.
    pub fn wanted(output: OutputFormat) -> bool {
        matches!(output, OutputFormat::Text)
            && std::io::stdout().is_terminal()
            && std::io::stderr().is_terminal()
    }

    /// A spinner saying `message` when `enabled`, else nothing.
    pub fn spinner(enabled: bool, message: &str) -> Progress {
        if !enabled {
            return Progress(None);
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
            bar.set_style(style);
        }
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(bar))
    }

    /// Says what is being done now.
    pub fn message(&self, message: String) {
        if let Some(bar) = &self.0 {
            bar.set_message(message);
        }
    }

    /// Counts one unit of work (a registry question) under `what`.
    pub fn tick(&self, what: &str) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
            bar.set_message(format!("{what}: {}", bar.position()));
        }
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }

    /// A pass observer that says how many repositories the pass asks about.
    pub fn observer(&self) -> Arc<dyn PassObserver> {
        Arc::new(PassProgress(self.clone()))
    }
}

struct PassProgress(Progress);

impl PassObserver for PassProgress {
    fn tracked(&self, repositories: &BTreeSet<String>) {
        self.0.message(format!(
            "asking registries about {} repositories",
            repositories.len()
        ));
    }

    fn report(&self, _report: &PassReport) {
        self.0.message("writing the report".into());
    }
}
