//! freshet's container image (`scripts/image`), built from the binary under test (the
//! debug build, stripped of line tables as the script does: CI does not spend a
//! release build on it; `scripts/image` without `--binary` builds the release one).
//! The layout is checked byte by byte with independent readers (sha256sum, gzip, a
//! USTAR parser), it is reproducible, it holds exactly the runtime files, and its
//! root filesystem runs `freshet --version` and a real `freshet resolve` against the
//! test registry under `chroot` as the non-root user, with an empty environment; the
//! CA bundle it carries is the trust store freshet's TLS reads.

mod image_support;

use std::collections::BTreeSet;
use std::process::Command;

use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use image_support::*;
use serde_json::Value;

/// The files `ldd` says the binary loads (the vDSO aside), without their leading `/`.
fn shared_objects() -> BTreeSet<String> {
    let out = run(Command::new("ldd").arg(env!("CARGO_BIN_EXE_freshet")));
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = l.split(" => ").last()?.split(" (").next()?;
            path.starts_with('/')
                .then(|| path.trim_start_matches('/').to_owned())
        })
        .collect()
}

#[test]
fn the_image_is_a_reproducible_oci_layout_with_labels_a_nonroot_user_and_only_runtime_files() {
    let image = image();
    let layout = read_json(&image.layout.join("oci-layout"));
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let top = read_json(&image.layout.join("index.json"));
    assert_eq!(
        top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        TAG
    );

    let index = image.index();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["platform"])
        .collect();
    assert_eq!(
        platforms,
        [&serde_json::json!({"architecture": "amd64", "os": "linux"})],
        "linux/amd64 only: no other Rust target is installed here"
    );

    let manifest = image.manifest("amd64");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let config = image.json(manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["config"]["User"], format!("{UID}:{UID}"));
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!([format!("/{BIN}")])
    );
    let labels = &config["config"]["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://"))
    );
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap();
    assert!(
        revision.len() >= 40 && revision[..40].chars().all(|c| c.is_ascii_hexdigit()),
        "a commit: {revision}"
    );

    // Layers: gzip, digests that match, diff_ids that match the uncompressed tars,
    // sorted entries owned by 0:0 with one fixed mtime.
    let layers = manifest["layers"].as_array().unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    let mut files = BTreeSet::new();
    let mut compressed = manifest["config"]["size"].as_u64().unwrap();
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let digest = layer["digest"].as_str().unwrap();
        let bytes = image.blob(digest);
        assert_eq!(bytes.len() as u64, layer["size"].as_u64().unwrap());
        compressed += bytes.len() as u64;
        let raw = run(Command::new("sh").arg("-c").arg(format!(
            "gzip -dc {} | sha256sum",
            image.blob_path(digest).display()
        )));
        assert_eq!(
            format!("sha256:{}", raw.split_whitespace().next().unwrap()),
            diff_id.as_str().unwrap()
        );
        let entries = tar_entries(&image.blob_path(digest));
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        assert_eq!(paths, sorted, "entries sorted");
        let mtime = entries[0].mtime;
        for e in &entries {
            assert_eq!((e.uid, e.gid), (0, 0), "{e:?}");
            assert_eq!(e.names, (String::new(), String::new()), "{e:?}");
            assert_eq!(e.mtime, mtime, "one fixed mtime: {e:?}");
            assert!(
                matches!(e.kind, b'0' | b'5'),
                "files and folders only: {e:?}"
            );
            if e.kind == b'0' {
                assert!(matches!(e.mode, 0o644 | 0o755), "{e:?}");
                files.insert(e.path.clone());
            }
        }
    }
    // Exactly the runtime files: the binary, what ldd lists, the CA bundle for
    // rustls-native-certs, the identity files. No shell, no package manager.
    let mut want: BTreeSet<String> = [
        BIN,
        "etc/passwd",
        "etc/group",
        "etc/nsswitch.conf",
        "etc/ssl/certs/ca-certificates.crt",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    want.extend(shared_objects());
    assert_eq!(files, want);
    assert!(files.iter().any(|f| f.contains("ld-linux")), "{files:?}");
    println!("compressed image (debug binary, stripped): {compressed} bytes");

    // Reproducible: the script again, into another folder, gives the same digest.
    let dir = tempfile::tempdir().unwrap();
    let (again, log) = build_with_script(
        std::path::Path::new(env!("CARGO_BIN_EXE_freshet")),
        &dir.path().join("oci"),
        &[],
    );
    assert_eq!(again, image.digest, "{log}");
    assert!(log.contains("linux/amd64"), "the size is reported: {log}");
}

#[tokio::test]
async fn the_image_runs_freshet_as_nonroot_under_chroot_and_resolves_against_the_registry() {
    let image = image();
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let api = fixtures::seed_api(&pusher).await.expect("seed api");
    let host = registry.host();
    let pushed = push(&image, &format!("{host}/freshet"));
    assert!(pushed.ends_with(&image.digest));

    let dir = tempfile::tempdir().unwrap();
    let root = image.unpack("amd64", dir.path());
    assert!(!root.join("bin/sh").exists() && !root.join("usr/bin").exists());
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd.contains(&format!("nonroot:x:{UID}:{UID}:")),
        "{passwd}"
    );
    assert!(!passwd.contains("/bin/sh") && !passwd.contains("/bin/bash"));

    let bin = format!("/{BIN}");
    let version = output(&mut chroot(&root, &[&bin, "--version"], &[]));
    assert!(version.status.success(), "{version:?}");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("freshet {}", env!("CARGO_PKG_VERSION"))
    );

    // A real resolve from inside the image: the image itself (its index, pushed by
    // skopeo, digests kept) and a fixture, for amd64.
    let own = format!("{host}/freshet:{TAG}");
    let fixture = format!("{host}/team/api:1.0.0");
    let resolved = output(&mut chroot(
        &root,
        &[
            &bin,
            "resolve",
            "--output",
            "json",
            "--platform",
            "linux/amd64",
            &own,
            &fixture,
        ],
        &[("HOME", "/home/nonroot")],
    ));
    let stderr = String::from_utf8_lossy(&resolved.stderr);
    assert!(resolved.status.success(), "{stderr}");
    let json: Value = serde_json::from_slice(&resolved.stdout).expect("JSON");
    assert_eq!(json[0]["digest"], image.digest.as_str(), "{json}");
    let manifest = &image.index()["manifests"][0]["digest"];
    assert_eq!(&json[0]["platform_digest"], manifest, "{json}");
    assert_eq!(json[1]["digest"], api.digest("1.0.0"), "{json}");
}

#[test]
fn deploy_and_the_chart_pin_one_image_by_digest_and_the_pin_step_rewrites_both() {
    let root = repo_root();
    let pinned = pinned_image();
    let cronjob =
        std::fs::read_to_string(root.join("deploy/overlays/cronjob/cronjob.yaml")).unwrap();
    let controller =
        std::fs::read_to_string(root.join("deploy/overlays/controller/deployment.yaml")).unwrap();
    let values = std::fs::read_to_string(root.join("charts/freshet/values.yaml")).unwrap();
    let from_deploy: Vec<String> = [&cronjob, &controller]
        .iter()
        .map(|t| pinned(t).unwrap_or_else(|| panic!("a pinned image in {t}")))
        .collect();
    assert_eq!(from_deploy[0], from_deploy[1]);
    let chart = chart_reference(&values);
    assert_eq!(
        chart, from_deploy[0],
        "deploy/ and the chart pin the same image"
    );
    assert!(chart.starts_with(&format!(
        "ghcr.io/freshet/freshet:{}@sha256:",
        env!("CARGO_PKG_VERSION")
    )));

    // The release step (`scripts/image --pin`) rewrites all three; here on copies.
    let dir = tempfile::tempdir().unwrap();
    let copies: Vec<_> = [
        ("cronjob.yaml", &cronjob),
        ("deployment.yaml", &controller),
        ("values.yaml", &values),
    ]
    .into_iter()
    .map(|(name, text)| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    })
    .collect();
    let digest = format!("sha256:{}", "ab".repeat(32));
    run(Command::new("python3")
        .arg(root.join("scripts/oci_image.py"))
        .args([
            "pin",
            "--repository",
            "registry.example/ops/freshet",
            "--tag",
            "9.9.9",
            "--digest",
            &digest,
        ])
        .args(&copies));
    let want = format!("registry.example/ops/freshet:9.9.9@{digest}");
    for p in &copies[..2] {
        let text = std::fs::read_to_string(p).unwrap();
        assert_eq!(pinned(&text).as_deref(), Some(want.as_str()), "{text}");
    }
    let text = std::fs::read_to_string(&copies[2]).unwrap();
    assert_eq!(chart_reference(&text), want);
    assert_eq!(
        text.lines().count(),
        values.lines().count(),
        "only the values change"
    );
}

/// The `image:` of a manifest: `REPO:TAG@sha256:…`.
fn pinned_image() -> impl Fn(&str) -> Option<String> {
    |text: &str| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("image: "))
            .find(|r| r.contains("/freshet:") && r.contains("@sha256:"))
            .map(str::to_owned)
    }
}

/// `repository:tag@digest` from the chart's values.yaml `image:` block.
fn chart_reference(values: &str) -> String {
    let field = |key: &str| {
        values
            .lines()
            .find_map(|l| l.strip_prefix(&format!("  {key}: ")))
            .unwrap_or_else(|| panic!("image.{key} in values.yaml"))
            .trim_matches('"')
            .to_owned()
    };
    format!(
        "{}:{}@{}",
        field("repository"),
        field("tag"),
        field("digest")
    )
}

/// The CA bundle the image carries is the trust store freshet's TLS uses (rustls
/// through rustls-native-certs, as for registries): with the test bed's CA added to
/// `/etc/ssl/certs/ca-certificates.crt`, and no CA in the kubeconfig, `freshet status`
/// reaches the API server over TLS from inside the image; without it, it cannot.
#[tokio::test]
async fn the_image_trusts_the_ca_bundle_it_carries() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let image = image();
    let dir = tempfile::tempdir().unwrap();
    let root = image.unpack("amd64", dir.path());
    let cluster = freshet_apiserver::TestCluster::start(Default::default())
        .await
        .expect("test bed");
    let mut kubeconfig = cluster.admin_kubeconfig();
    kubeconfig["clusters"][0]["cluster"]
        .as_object_mut()
        .unwrap()
        .remove("certificate-authority-data")
        .expect("the test bed's kubeconfig names its CA");
    let path = root.join("tmp/kubeconfig");
    cluster.write_kubeconfig(&path, &kubeconfig).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&path, Some(UID), Some(UID)).unwrap();
    }
    let bin = format!("/{BIN}");
    let args = [
        bin.as_str(),
        "status",
        "--kubeconfig",
        "/tmp/kubeconfig",
        "-o",
        "json",
    ];
    let env = [("HOME", "/home/nonroot")];
    // The test bed serves from this test's runtime: wait without blocking it.
    let status = async || {
        tokio::process::Command::from(chroot(&root, &args, &env))
            .output()
            .await
            .expect("chroot runs")
    };

    let untrusted = status().await;
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        !untrusted.status.success(),
        "the CA is not in the bundle yet"
    );
    assert!(
        stderr.contains("certificate") || stderr.contains("UnknownIssuer"),
        "{stderr}"
    );

    let bundle = root.join("etc/ssl/certs/ca-certificates.crt");
    let mut text = std::fs::read_to_string(&bundle).unwrap();
    text.push_str(cluster.ca_pem().expect("TLS"));
    std::fs::write(&bundle, text).unwrap();
    let trusted = status().await;
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&trusted.stdout).unwrap(),
        serde_json::json!([])
    );
}
