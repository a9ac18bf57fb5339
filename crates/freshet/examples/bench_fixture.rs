//! Builds the peer-benchmark fixture (used by `scripts/bench-plan`, not by tests).
//!
//! Starts a real distribution registry, pushes `IMAGES` repositories `bench/appNNN`
//! with tags `1.0.0`, `1.0.1`, `1.1.0`, writes a repository of Kubernetes manifests,
//! Helm values, kustomizations, compose files, Dockerfiles and Terraform under the
//! directory given as the first argument, prints `host=<registry host>` and `ready`
//! on stdout, then keeps the registry up until stdin closes.
//!
//! Usage: `cargo run --example bench_fixture -- DIR`

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;

use freshet_testbed::registry::push::{ImageSpec, Pusher};
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

#[tokio::main]
async fn main() {
    let dir = std::env::args().nth(1).expect("usage: bench_fixture DIR");
    let root = Path::new(&dir);
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry starts");
    let pusher = Pusher::new(&registry).expect("pusher");
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
    println!("host={host}");
    println!("ready");
    // Keep the registry up until the caller closes stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(registry);
}
