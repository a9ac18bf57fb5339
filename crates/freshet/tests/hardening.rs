//! Issue 16 defects, end to end through the built binary: API calls bounded by
//! `--api-timeout`, a kubeconfig `exec` plugin's output never printed, API server
//! error bodies escaped on the terminal, and enrolled workloads with an invalid image
//! or a `freshet.io/containers` naming no container reported as such.

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{admin, deploy};
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The longest a single freshet run may take in these tests before it counts as
/// hung (a bound, not a timing assertion).
const HUNG: Duration = Duration::from_secs(120);

async fn freshet(args: &[&str]) -> Output {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args(args)
        .env_remove("FRESHET_LOG")
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .env_remove("FRESHET_SELF")
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent-home")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(HUNG, child)
        .await
        .expect("freshet hung")
        .expect("run freshet")
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kubeconfig(dir: &Path, server: &str, user: Value) -> String {
    let path = dir.join("kubeconfig");
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
        "current-context": "c"
    });
    std::fs::write(&path, serde_json::to_vec(&kc).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A TCP server that accepts connections and never answers; stops with the test.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (format!("http://{addr}"), task)
}

/// An HTTP server answering every request with `status` and `body` (JSON).
async fn answering_server(status: u16, body: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 {status} Oops\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn run_once_against_a_silent_api_server_fails_within_the_api_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (server, task) = silent_server().await;
    let kc = kubeconfig(dir.path(), &server, json!({"token": "x"}));
    for cmd in [&["run", "--once"][..], &["status"]] {
        let out =
            freshet(&[cmd, &["--kubeconfig", kc.as_str(), "--api-timeout", "2s"]].concat()).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("did not answer within 2s") && stderr.contains(&server),
            "the message states the real timeout and the server: {stderr}"
        );
        assert!(!stderr.contains("0ns"), "{stderr}");
    }
    task.abort();
}

#[tokio::test]
async fn exec_plugin_stderr_with_its_token_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("get-token");
    let mut f = std::fs::File::create(&plugin).unwrap();
    writeln!(
        f,
        "#!/bin/sh\necho '{{\"status\": {{\"token\": \"sentinel-exec-stdout\"}}}}'\necho 'token=sentinel-exec-stderr \x1b[2J' >&2\nexit 1"
    )
    .unwrap();
    drop(f);
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (server, task) = silent_server().await;
    let user = json!({"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": plugin.to_str().unwrap(),
        "args": ["--secret-arg=sentinel-exec-arg"],
        "interactiveMode": "Never"
    }});
    let kc = kubeconfig(dir.path(), &server, user);
    for log in ["warn", "debug"] {
        for format in ["text", "json"] {
            let out = freshet(&[
                "run",
                "--once",
                "--kubeconfig",
                &kc,
                "--api-timeout",
                "5s",
                "-o",
                "json",
                "--log",
                log,
                "--log-format",
                format,
            ])
            .await;
            assert_ne!(out.status.code(), Some(0), "{}", text(&out));
            let all = text(&out);
            assert!(!all.contains("sentinel-exec"), "{all}");
            assert!(!all.contains('\x1b'), "{all}");
            assert!(all.contains("exec plugin"), "{all}");
        }
    }
    task.abort();
}

#[tokio::test]
async fn api_server_error_bodies_are_escaped_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let message = "denied \x1b[2J\x07\nFAKE-LINE: all good\r\u{9b}31m\u{202e}";
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "reason": "InternalError", "code": 500
    })
    .to_string();
    let (server, task) = answering_server(500, body).await;
    let kc = kubeconfig(dir.path(), &server, json!({"token": "x"}));
    for extra in [
        &[][..],
        &["--log", "debug"],
        &["--log", "debug", "--log-format", "json"],
    ] {
        let out =
            freshet(&[&["run", "--once", "--kubeconfig", kc.as_str()][..], extra].concat()).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for raw in ['\x1b', '\x07', '\r', '\u{9b}', '\u{202e}'] {
            assert!(
                !stderr.contains(raw),
                "{raw:?} reached the terminal: {stderr:?}"
            );
        }
        assert!(
            !stderr.lines().any(|l| l.starts_with("FAKE-LINE")),
            "a forged line: {stderr}"
        );
        assert!(
            stderr.contains("FAKE-LINE"),
            "the text is kept, escaped: {stderr}"
        );
    }
    task.abort();
}

#[tokio::test]
async fn workloads_with_an_invalid_image_or_no_such_container_are_reported_not_current() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    fixtures::seed_api(&pusher).await.unwrap();
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = TestCluster::start(ClusterOptions::default()).await.unwrap();
    let client = admin(&cluster).await;
    let kc = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    deploy(
        &client,
        "typo",
        &image,
        json!({"freshet.io/policy": "digest", "freshet.io/containers": "ap"}),
    )
    .await;
    deploy(
        &client,
        "bad-image",
        "Bad/UPPER:1",
        json!({"freshet.io/policy": "digest"}),
    )
    .await;
    deploy(
        &client,
        "fine",
        &image,
        json!({"freshet.io/policy": "digest"}),
    )
    .await;

    let out = freshet(&["run", "--once", "--kubeconfig", &kc, "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let by_name = |n: &str| {
        report["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} in {report}"))
    };
    let typo = by_name("typo");
    assert_eq!(typo["status"], "failed", "{typo}");
    assert!(
        typo["error"]
            .as_str()
            .unwrap()
            .contains("names no container"),
        "{typo}"
    );
    let bad = by_name("bad-image");
    assert_eq!(bad["status"], "failed", "{bad}");
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("not a valid image reference"),
        "{bad}"
    );
    assert_eq!(
        by_name("fine")["status"],
        "recorded",
        "unrelated workloads go on"
    );

    let out = freshet(&["status", "--kubeconfig", &kc, "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    for n in ["typo", "bad-image"] {
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap_or_else(|| panic!("{n} in status: {rows}"));
        assert!(
            row["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid enrollment"),
            "{row}"
        );
    }
}
