//! Test support for the Helm chart: real Helm (its Go SDK, through the PyPI package
//! helm-python-sdk in the venv `scripts/setup` makes) renders, lints and parses, via
//! `helm.py` beside this file. Rendered objects come back as JSON, ready for
//! `kubectl apply -f -`.
//!
//! It must not judge the chart: the tests do.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// The chart under test.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/freshet")
}

/// The venv's python: `$FRESHET_HELM_VENV/bin/python`, default
/// `~/.cache/freshet/helm-venv` (where `scripts/setup` installs helm-python-sdk).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("FRESHET_HELM_VENV").map_or_else(
        || Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/freshet/helm-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup (it installs helm-python-sdk in a venv)",
        python.display()
    );
    python
}

/// Sends one request to helm.py; returns its answer.
pub fn helm(request: &Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chart_support/helm.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("request");
    let out = child.wait_with_output().expect("helm.py finishes");
    assert!(
        out.status.success(),
        "helm.py {request}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON answer")
}

/// What the chart renders to.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Template path to its objects.
    pub templates: BTreeMap<String, Vec<Value>>,
    /// NOTES.txt.
    pub notes: String,
}

impl Rendered {
    /// Every object, in template order.
    pub fn objects(&self) -> Vec<&Value> {
        self.templates.values().flatten().collect()
    }

    /// The kinds rendered, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .objects()
            .iter()
            .map(|o| o["kind"].as_str().unwrap_or("").to_owned())
            .collect();
        kinds.sort();
        kinds
    }

    /// The object of `kind` named `name` (panics when there is none).
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.objects()
            .into_iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", self.kinds()))
    }

    /// The objects whose kind is not in `skip`, as a stream of JSON objects for
    /// `kubectl apply -f -`.
    pub fn without(&self, skip: &[&str]) -> String {
        self.objects()
            .into_iter()
            .filter(|o| !skip.contains(&o["kind"].as_str().unwrap_or("")))
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Renders the chart as release `freshet` in namespace `freshet` with `values`;
/// `Err` carries Helm's message (a schema violation, a template error).
pub fn render(values: &Value) -> Result<Rendered, String> {
    let answer = helm(&json!({
        "op": "render", "chart": chart_dir(), "values": values,
        "name": "freshet", "namespace": "freshet",
    }));
    if let Some(e) = answer["error"].as_str() {
        return Err(e.to_owned());
    }
    let templates = serde_json::from_value(answer["templates"].clone()).expect("templates");
    Ok(Rendered {
        templates,
        notes: answer["notes"].as_str().unwrap_or("").to_owned(),
    })
}

/// Helm's strict lint report for `values`.
pub fn lint(values: &Value) -> Value {
    helm(&json!({"op": "lint", "chart": chart_dir(), "values": values}))
}

/// Parses multi-document YAML with Helm's reader.
pub fn parse_yaml(text: &str) -> Vec<Value> {
    serde_json::from_value(helm(&json!({"op": "parse", "yaml": text}))).expect("documents")
}
