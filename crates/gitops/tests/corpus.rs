//! `plan` and `apply` over a corpus of real files (issue 15): 300+ files taken byte for
//! byte from 11 public repositories (see `tests/corpus/SOURCES.md`), against the real
//! distribution registry. Every repository the files reference is mirrored into a
//! local registry (the fact source rewrites `registry/repository` to
//! `127.0.0.1:PORT/registry/repository`), holding the tag written and, for versions,
//! the next patch release.
//!
//! Checks: the references found per format (pinned in `tests/corpus.counts`, written
//! with `FRESHET_BLESS=1`), no failed lookup, no byte changed outside a reference,
//! every edited file still parses, and a plan after the apply is empty.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use freshet_core::files::{self, Config, Found};
use freshet_core::policy::{BuildTime, Version};
use freshet_core::{Digest, Platform, Reference};
use freshet_gitops::{FactError, FactSource, PlanOptions, apply, plan, walk_all};
use freshet_registry::{BuildTimes, Client, ClientOptions, CredentialStore, Want};
use freshet_testbed::registry::builds::push_build;
use freshet_testbed::registry::push::{Platform as PushPlatform, Pusher};
use freshet_testbed::registry::{RegistryOptions, RegistryServer};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The local repository a reference's repository is mirrored to.
fn mirror_repo(reference: &Reference) -> String {
    format!("{}/{}", reference.registry(), reference.repository())
        .to_ascii_lowercase()
        .replace(':', "-")
}

/// Answers through the local registry, with every repository mirrored there.
struct Mirror {
    host: String,
    client: Client,
    builds: BuildTimes,
}

impl Mirror {
    fn map(&self, r: &Reference) -> Result<Reference, FactError> {
        let mut text = format!("{}/{}", self.host, mirror_repo(r));
        if let Some(t) = r.tag() {
            text.push(':');
            text.push_str(t);
        }
        Reference::parse(&text).map_err(|e| FactError::new(e.to_string()))
    }
}

#[async_trait::async_trait]
impl FactSource for Mirror {
    async fn tags(&self, r: &Reference) -> Result<Vec<String>, FactError> {
        let m = self.map(r)?;
        self.client
            .list_tags(&m)
            .await
            .map_err(|e| FactError::new(e.to_string()).with_class(e.class().label()))
    }
    async fn digest(&self, r: &Reference) -> Result<Digest, FactError> {
        let m = self.map(r)?;
        self.client
            .resolve(&m, &Want::default())
            .await
            .map(|x| x.digest)
            .map_err(|e| FactError::new(e.to_string()).with_class(e.class().label()))
    }
    async fn created(&self, r: &Reference, p: &Platform) -> Result<Option<BuildTime>, FactError> {
        let m = self.map(r)?;
        self.builds
            .created(&m, p)
            .await
            .map(Some)
            .map_err(|e| FactError::new(e.to_string()).with_class(e.class().label()))
    }
}

/// The next patch release of a version tag (`1.2.3` → `1.2.4`, `v1.27-alpine` →
/// `v1.28-alpine`): the last number of the release part plus one.
fn next_version(tag: &str) -> Option<String> {
    Version::parse(tag)?;
    let end = tag.find(['-', '+']).unwrap_or(tag.len());
    let release = &tag[..end];
    let last = release
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let n: u64 = release[last..].parse().ok()?;
    Some(format!("{}{}{}", &release[..last], n + 1, &tag[end..]))
}

/// Every found reference of every file, by path.
fn scan_all(root: &Path, config: &Config) -> BTreeMap<String, (String, Vec<Found>)> {
    let walked = walk_all(&[root.to_owned()]);
    let mut out = BTreeMap::new();
    for path in walked.files {
        let name = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let options = config.scan_options(&name);
        if let Ok(found) = files::scan_with(&name, &text, &options) {
            out.insert(name, (text, found));
        }
    }
    out
}

/// The text with every reference's region replaced by a placeholder.
fn masked(text: &str, found: &[Found]) -> String {
    let mut out = String::new();
    let mut at = 0;
    for f in found {
        if f.region.start < at {
            continue;
        }
        out.push_str(&text[at..f.region.start]);
        out.push_str("\u{0}REF\u{0}");
        at = f.region.end.max(f.region.start);
    }
    out.push_str(&text[at..]);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_and_apply_over_real_repositories() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("corpus");
    copy_dir(&corpus(), &root);
    let config = Config::default();
    let before = scan_all(&root, &config);
    assert!(before.len() >= 200, "{} files scanned", before.len());

    // References found per format.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut repos_per_kind: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, (_, found)) in &before {
        for f in found {
            let kind = format!("{:?}", f.kind);
            *counts.entry(kind.clone()).or_default() += 1;
            repos_per_kind
                .entry(kind)
                .or_default()
                .insert(name.split('/').next().unwrap().to_owned());
            if let Ok(r) = Reference::parse(&f.image) {
                let tags = wanted.entry(mirror_repo(&r)).or_default();
                if let Some(t) = r.tag_or_latest() {
                    tags.insert(t.to_owned());
                    tags.extend(next_version(t));
                }
            }
        }
    }
    let mut table = String::new();
    for (kind, n) in &counts {
        table.push_str(&format!(
            "{kind}: {n} in {} repositories\n",
            repos_per_kind[kind].len()
        ));
    }
    let counts_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus.counts");
    if std::env::var_os("FRESHET_BLESS").is_some() {
        std::fs::write(&counts_path, &table).unwrap();
    } else {
        assert_eq!(
            std::fs::read_to_string(&counts_path).unwrap_or_default(),
            table,
            "references found per format changed; run with FRESHET_BLESS=1 if intended"
        );
    }

    // Mirror every referenced repository into a local registry.
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry starts");
    let pusher = Pusher::new(&registry).expect("pusher");
    let amd64 = PushPlatform::linux_amd64();
    for (repo, tags) in &wanted {
        for tag in tags {
            push_build(
                &pusher,
                repo,
                tag,
                "2026-01-01T00:00:00Z",
                std::slice::from_ref(&amd64),
            )
            .await
            .unwrap_or_else(|e| panic!("push {repo}:{tag}: {e}"));
        }
    }
    let client = Client::new(CredentialStore::anonymous(), ClientOptions::default()).unwrap();
    let source = Mirror {
        host: registry.host(),
        builds: BuildTimes::new(client.clone()),
        client,
    };
    let options = PlanOptions {
        all: true,
        root: Some(root.clone()),
    };
    let report = plan(std::slice::from_ref(&root), &options, &source).await;
    let lookups: Vec<_> = report.errors.iter().filter(|e| e.class.is_some()).collect();
    assert!(lookups.is_empty(), "failed lookups: {lookups:#?}");
    assert!(
        report.updates.len() >= 100,
        "{} updates, errors: {:#?}",
        report.updates.len(),
        report.errors
    );
    eprintln!(
        "corpus: {} files, {} updates in {} files, {} errors (unparsable files, bad values), {} chart templates skipped",
        before.len(),
        report.updates.len(),
        report.files.len(),
        report.errors.len(),
        report.skipped.len()
    );
    let applied = apply(&report);
    assert!(applied.errors.is_empty(), "{:#?}", applied.errors);
    assert_eq!(applied.written.len(), report.files.len());

    // No byte changed outside a reference, and every edited file still parses.
    let after = scan_all(&root, &config);
    for file in &report.files {
        let (old_text, old_found) = &before[&file.display];
        let (new_text, new_found) = after
            .get(&file.display)
            .unwrap_or_else(|| panic!("{} no longer parses", file.display));
        assert_ne!(old_text, new_text, "{}", file.display);
        assert_eq!(
            masked(old_text, old_found),
            masked(new_text, new_found),
            "{}: bytes changed outside references",
            file.display
        );
        if matches!(
            files::detect(&file.display),
            Some(files::FileFormat::Yaml | files::FileFormat::Kustomization)
        ) {
            for doc in new_text.split("\n---") {
                let _: serde_json::Value = serde_saphyr::from_str(doc)
                    .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display));
            }
        }
    }

    // A plan after the apply is empty.
    let again = plan(std::slice::from_ref(&root), &options, &source).await;
    let pending: Vec<_> = again
        .updates
        .iter()
        .map(|u| format!("{}:{} {} -> {}", u.file, u.line, u.current, u.new))
        .collect();
    assert!(pending.is_empty(), "{pending:#?}");
}
