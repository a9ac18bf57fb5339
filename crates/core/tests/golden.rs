//! Golden tests for every edit freshet makes to a user's file.
//!
//! Each directory under `tests/golden/` is a case: every file in it (except `*.after`,
//! `freshet.yaml`, `ARGS` and `.gitattributes`) is scanned and planned against a fixed
//! fake registry, edited, and compared byte for byte with `<file>.after`. A file that
//! must not parse has `<file>.error` holding the expected error instead. `ARGS`
//! holding `all` plans as `--all`. Run with `FRESHET_BLESS=1` to write the expected files.

use std::fs;
use std::path::Path;

use freshet_core::Digest;
use freshet_core::files::{Config, Step, apply_edits_with, scan_with, track};
use freshet_core::policy::Facts;

/// The fake registry: repository name (canonical) → tags.
fn tags(name: &str) -> Vec<&'static str> {
    match name {
        "docker.io/library/nginx" => vec![
            "1.25.3",
            "1.25.4",
            "1.25.5",
            "1.26.0",
            "1.26.1",
            "1.27.0-rc.1",
            "1.25.3-alpine",
            "1.25.5-alpine",
            "1.26.1-alpine",
            "latest",
            "1.25",
            "1.26",
        ],
        "docker.io/library/busybox" => vec!["1.36.0", "1.36.1", "1.37.0"],
        "docker.io/library/memcached" => vec!["1.6.38-alpine", "1.6.39-alpine", "1.6.40-alpine"],
        "docker.io/library/postgres" => vec!["15.4", "15.5", "16.1", "17.0-beta1"],
        "docker.io/library/redis" => vec!["latest", "7.2"],
        "docker.io/library/golang" => vec!["1.21.5", "1.21.6", "1.22.0", "1.22.0-alpine"],
        "docker.io/bitnami/redis" => vec!["7.2.4", "7.2.5", "7.4.0"],
        "ghcr.io/acme/api" => vec!["v1.2.3", "v1.2.4", "v1.3.0", "v2.0.0", "v2.1.0-rc.1"],
        "ghcr.io/acme/builds" => vec![
            "main-9",
            "main-10",
            "main-2",
            "feature-99",
            "2024.01.15",
            "2024.02.01",
            "2025.01.01",
        ],
        _ => vec![],
    }
}

/// A digest made from the tag, so golden files are stable and readable.
fn digest(tag: &str) -> Digest {
    let mut hex = String::new();
    while hex.len() < 64 {
        for b in tag.bytes() {
            hex.push_str(&format!("{b:02x}"));
        }
    }
    hex.truncate(64);
    Digest::parse(&format!("sha256:{hex}")).unwrap()
}

fn plan_file(
    file: &str,
    text: &str,
    config: &Config,
    all: bool,
) -> Result<(String, Vec<String>), String> {
    let options = config.scan_options(file);
    let found = scan_with(file, text, &options).map_err(|e| e.to_string())?;
    let (tracked, errors) = track(file, found, config, all);
    let mut log: Vec<String> = errors
        .iter()
        .map(|e| format!("error {}:{}: {}", e.file, e.line, e.message))
        .collect();
    let mut edits = Vec::new();
    for t in &tracked {
        let needs = t.needs();
        let mut facts = Facts::default();
        if needs.tag_list {
            facts.tags = Some(Ok(tags(&t.reference.name())
                .into_iter()
                .map(String::from)
                .collect()));
        }
        if let Some(tag) = needs.digest_of {
            facts.digests.insert(tag.clone(), Ok(digest(&tag)));
        }
        loop {
            match t.step(text, &facts) {
                Step::NeedDigest(tag) => {
                    facts.digests.insert(tag.clone(), Ok(digest(&tag)));
                }
                Step::Keep { warning } => {
                    if let Some(w) = warning {
                        log.push(format!("warning {file}:{}: {w}", t.found.line));
                    }
                    break;
                }
                Step::Update(u) => {
                    // The plan says when it adds a key (a digest key, a newTag).
                    let added = u
                        .reason
                        .rsplit_once("; adds ")
                        .map(|(_, k)| format!(" [adds {k}]"))
                        .unwrap_or_default();
                    log.push(format!(
                        "update {}:{}: {} -> {} ({}){added}",
                        u.file, u.line, u.current, u.new, u.policy
                    ));
                    edits.extend(u.edits);
                    break;
                }
                Step::Error(e) => {
                    log.push(format!("error {}:{}: {}", e.file, e.line, e.message));
                    break;
                }
                Step::NeedBuilds(tags) => {
                    log.push(format!(
                        "builds {file}:{}: {}",
                        t.found.line,
                        tags.join(",")
                    ));
                    break;
                }
            }
        }
    }
    let out = apply_edits_with(file, text, &edits, &options).map_err(|e| e.to_string())?;
    Ok((out, log))
}

/// Every file under a case directory, in subdirectories too.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("FRESHET_BLESS").is_some();
    let mut cases: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "golden cases are missing");
    let mut failures = Vec::new();
    for case in cases {
        let config = match fs::read_to_string(case.join("freshet.yaml")) {
            Ok(text) => Config::parse(&text).unwrap(),
            Err(_) => Config::default(),
        };
        let all = fs::read_to_string(case.join("ARGS")).is_ok_and(|a| a.trim() == "all");
        let mut inputs = files_under(&case);
        inputs.sort();
        for input in inputs {
            // The name relative to the case, `/` separated (CI files are found by path).
            let name = input
                .strip_prefix(&case)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if name.ends_with(".after")
                || name.ends_with(".error")
                || name.ends_with(".log")
                || ["freshet.yaml", "ARGS", ".gitattributes"].contains(&name.as_str())
            {
                continue;
            }
            let text = fs::read_to_string(&input).unwrap();
            let (expected_path, actual) = match plan_file(&name, &text, &config, all) {
                Ok((out, log)) => {
                    // Planning the result again must find nothing to do (idempotence).
                    let (again, _) = plan_file(&name, &out, &config, all).unwrap();
                    if again != out {
                        failures.push(format!("{}: not idempotent", input.display()));
                    }
                    let log_path = case.join(format!("{name}.log"));
                    let log = log.join("\n") + "\n";
                    if bless {
                        fs::write(&log_path, &log).unwrap();
                    } else if fs::read_to_string(&log_path).ok().as_deref() != Some(log.as_str()) {
                        failures.push(format!("{}: log differs:\n{log}", input.display()));
                    }
                    (case.join(format!("{name}.after")), out)
                }
                Err(e) => (case.join(format!("{name}.error")), e + "\n"),
            };
            if bless {
                fs::write(&expected_path, &actual).unwrap();
                continue;
            }
            match fs::read(&expected_path) {
                Ok(expected) if expected == actual.as_bytes() => {}
                Ok(_) => failures.push(format!(
                    "{}: differs from {}:\n{actual}",
                    input.display(),
                    expected_path.display()
                )),
                Err(_) => failures.push(format!(
                    "{}: missing {}; run with FRESHET_BLESS=1",
                    input.display(),
                    expected_path.display()
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
