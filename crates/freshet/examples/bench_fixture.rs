//! Builds the peer-benchmark fixture (used by `scripts/bench-plan`, not by tests).
//!
//! Starts a real distribution registry, pushes `IMAGES` repositories `bench/appNNN`
//! with tags `1.0.0`, `1.0.1`, `1.1.0`, writes a repository of Kubernetes manifests,
//! Helm values, kustomizations, compose files, Dockerfiles and Terraform under the
//! directory given as the first argument, prints `host=<registry host>` and `ready`
//! on stdout, then keeps the registry up until stdin closes.
//!
//! With `newest-build` as the second argument it builds the `newest-build` case
//! instead: `SHA_IMAGES` repositories `bench/shaNNN`, each with `SHA_TAGS` tags named by
//! 8-character git SHAs whose order says nothing about their build times, and a
//! Kubernetes manifest per image with a `newest-build` marker.
//!
//! While it runs, each line `count NAME` on stdin makes it print
//! `count NAME requests=… heads=… gets=… blobs=… tag_lists=…` (the registry's access
//! log since the previous count) on stdout, so the caller can compare the requests two
//! tools sent to the same registry.
//!
//! Usage: `cargo run --example bench_fixture -- DIR [newest-build]`

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::Path;

use freshet_testbed::registry::builds::push_build;
use freshet_testbed::registry::push::{ImageSpec, Platform, Pusher};
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use futures::stream::{self, StreamExt as _};

const IMAGES: usize = 200;
const TAGS: &[&str] = &["1.0.0", "1.0.1", "1.1.0"];

fn image(host: &str, i: usize) -> String {
    format!("{host}/bench/app{:03}", i % IMAGES)
}

/// The current tag of reference number `n`: two in three have an update pending.
fn current(n: usize) -> &'static str {
    TAGS[n % TAGS.len()]
}

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn generate(root: &Path, host: &str) -> (usize, usize) {
    let mut files = 0;
    let mut refs = 0;
    let mut n = 0;
    let mut next = || {
        n += 1;
        (image(host, n * 7), current(n))
    };
    // Kubernetes manifests: a Deployment and a CronJob per file, 4 containers.
    for f in 0..250 {
        let mut text = String::new();
        let (a, at) = next();
        let (b, bt) = next();
        let (c, ct) = next();
        let (d, dt) = next();
        writeln!(text, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{f}\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          image: {a}:{at}\n        - name: b\n          image: \"{b}:{bt}\"\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: job{f}\nspec:\n  schedule: \"@daily\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - name: c\n              image: {c}:{ct}\n            - name: d\n              image: '{d}:{dt}'").unwrap();
        write(root, &format!("k8s/team{}/app{f}.yaml", f % 10), &text);
        files += 1;
        refs += 4;
    }
    // docker-compose files, 4 services.
    for f in 0..100 {
        let mut text = String::from("services:\n");
        for s in 0..4 {
            let (i, t) = next();
            writeln!(text, "  svc{s}:\n    image: {i}:{t}").unwrap();
        }
        write(root, &format!("compose/stack{f}/docker-compose.yml"), &text);
        files += 1;
        refs += 4;
    }
    // Dockerfiles, 2 stages.
    for f in 0..60 {
        let (a, at) = next();
        let (b, bt) = next();
        let text = format!(
            "FROM --platform=$BUILDPLATFORM {a}:{at} AS build\nRUN true\nFROM {b}:{bt}\nCOPY --from=build /x /x\n"
        );
        write(root, &format!("docker/svc{f}/Dockerfile"), &text);
        files += 1;
        refs += 2;
    }
    // Helm values with split repository/tag pairs.
    for f in 0..60 {
        let mut text = String::new();
        for s in 0..4 {
            let (i, t) = next();
            writeln!(text, "svc{s}:\n  image:\n    repository: {i}\n    tag: \"{t}\"\n    pullPolicy: IfNotPresent").unwrap();
        }
        write(root, &format!("charts/chart{f}/values.yaml"), &text);
        files += 1;
        refs += 4;
    }
    // kustomizations.
    for f in 0..40 {
        let mut text = String::from(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n",
        );
        for s in 0..4 {
            let (i, t) = next();
            writeln!(text, "  - name: app{s}\n    newName: {i}\n    newTag: {t}").unwrap();
        }
        write(root, &format!("overlays/env{f}/kustomization.yaml"), &text);
        files += 1;
        refs += 4;
    }
    // Terraform: a kubernetes_deployment container, a variable default, and an ECS
    // task definition in jsonencode (which Renovate does not read).
    for f in 0..40 {
        let (a, at) = next();
        let (b, bt) = next();
        let (c, ct) = next();
        let (d, dt) = next();
        let text = format!(
            "variable \"app_image\" {{\n  default = \"{a}:{at}\"\n}}\n\nresource \"kubernetes_deployment\" \"app{f}\" {{\n  spec {{\n    template {{\n      spec {{\n        container {{\n          name  = \"app\"\n          image = \"{b}:{bt}\"\n        }}\n      }}\n    }}\n  }}\n}}\n\nresource \"aws_ecs_task_definition\" \"t{f}\" {{\n  family = \"t{f}\"\n  container_definitions = jsonencode([\n    {{ name = \"c\", image = \"{c}:{ct}\" }},\n    {{ name = \"d\", image = \"{d}:{dt}\" }},\n  ])\n}}\n"
        );
        write(root, &format!("terraform/mod{f}/main.tf"), &text);
        files += 1;
        refs += 4;
    }
    (files, refs)
}

const SHA_IMAGES: usize = 50;
const SHA_TAGS: usize = 20;

/// The `n`th SHA-like tag of image `i` (deterministic, unordered).
fn sha_tag(i: usize, n: usize) -> String {
    let x = (i as u64 * 1_000_003 + n as u64 * 7_919).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("{:08x}", x >> 32)
}

/// The `newest-build` case: SHA-tagged builds, one manifest per image.
async fn newest_build(root: &Path, pusher: &Pusher, host: &str) {
    let jobs: Vec<(usize, usize)> = (0..SHA_IMAGES)
        .flat_map(|i| (0..SHA_TAGS).map(move |n| (i, n)))
        .collect();
    let pushed: Vec<_> = stream::iter(jobs)
        .map(|(i, n)| async move {
            // Build n was made on day n: the newest is the last, whatever its name.
            let created = format!("2026-01-{:02}T00:00:00Z", n + 1);
            push_build(
                pusher,
                &format!("bench/sha{i:03}"),
                &sha_tag(i, n),
                &created,
                &[Platform::linux_amd64()],
            )
            .await
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for p in pushed {
        p.expect("push");
    }
    for i in 0..SHA_IMAGES {
        write(
            root,
            &format!("deploy/sha{i:03}.yaml"),
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: sha{i:03}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {host}/bench/sha{i:03}:{} # freshet: policy=newest-build:^[0-9a-f]{{8}}$\n",
                sha_tag(i, 0)
            ),
        );
    }
    eprintln!("bench_fixture: newest-build: {SHA_IMAGES} images x {SHA_TAGS} SHA tags at {host}");
}

/// Prints what the registry served since the last count.
fn count(registry: &RegistryServer, name: &str) {
    let log = registry.access_log();
    registry.clear_access_log();
    let n = |method: &str, part: &str| {
        log.iter()
            .filter(|e| e.method == method && e.path.contains(part))
            .count()
    };
    println!(
        "count {name} requests={} heads={} gets={} blobs={} tag_lists={}",
        log.len(),
        n("HEAD", "/manifests/"),
        n("GET", "/manifests/"),
        n("GET", "/blobs/"),
        n("GET", "/tags/list"),
    );
}

#[tokio::main]
async fn main() {
    let dir = std::env::args().nth(1).expect("usage: bench_fixture DIR");
    let root = Path::new(&dir);
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry starts");
    let pusher = Pusher::new(&registry).expect("pusher");
    if std::env::args().nth(2).as_deref() == Some("newest-build") {
        let host = registry.host();
        newest_build(root, &pusher, &host).await;
        serve(&registry, &host);
        return;
    }
    let jobs: Vec<(usize, &str)> = (0..IMAGES)
        .flat_map(|i| TAGS.iter().map(move |t| (i, *t)))
        .collect();
    let pusher = &pusher;
    let pushed: Vec<_> = stream::iter(jobs)
        .map(|(i, tag)| async move {
            let repo = format!("bench/app{i:03}");
            let spec = ImageSpec::docker_v2(format!("{repo}:{tag}"));
            pusher.push(&repo, tag, &spec).await
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for p in pushed {
        p.expect("push");
    }
    let host = registry.host();
    let (files, refs) = generate(root, &host);
    eprintln!("bench_fixture: {files} files, {refs} references, {IMAGES} images at {host}");
    serve(&registry, &host);
}

/// Says where the registry is, then answers `count NAME` lines until stdin closes.
fn serve(registry: &RegistryServer, host: &str) {
    registry.clear_access_log();
    println!("host={host}");
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(name) = line.strip_prefix("count ") {
            count(registry, name.trim());
        }
    }
}
