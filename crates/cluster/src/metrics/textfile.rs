//! The metrics as a file for node-exporter's textfile collector
//! (`run --once --metrics-file PATH`).
//!
//! Owns the conversion from the OpenMetrics text [`super::Metrics::encode`] serves to
//! the Prometheus text format 0.0.4 the collector reads (counters' `# HELP`/`# TYPE`
//! name their `_total` samples; no `# UNIT`, no `# EOF`), and the atomic write: a
//! temporary file in the same directory, then a rename, so the collector never reads
//! half a file. Must not decide what is measured.

use std::io::Write as _;
use std::path::Path;

/// The Prometheus text format 0.0.4 of an OpenMetrics text.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .filter(|name| !name.ends_with("_total"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Writes `text` to `path` atomically (a sibling temporary file, synced, renamed).
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the metrics file path names no file"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = write_then_rename(&tmp, path, text);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(tmp: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::File::create(tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_samples_and_openmetrics_markers_go() {
        let om = "# HELP freshet_passes Refresh passes.\n# TYPE freshet_passes counter\nfreshet_passes_total{outcome=\"ok\"} 1\n# HELP freshet_leader 1 while leading.\n# TYPE freshet_leader gauge\nfreshet_leader 0\n# UNIT freshet_x seconds\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP freshet_passes_total Refresh passes.\n# TYPE freshet_passes_total counter\nfreshet_passes_total{outcome=\"ok\"} 1\n# HELP freshet_leader 1 while leading.\n# TYPE freshet_leader gauge\nfreshet_leader 0\n"
        );
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("freshet-textfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("freshet.prom");
        write_atomically(&path, "a 1\n").unwrap();
        write_atomically(&path, "b 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
