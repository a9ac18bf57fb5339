//! `freshet run` as a controller, as users deploy it: two replicas of the built binary
//! against the API test bed and the real registry. One leads (the Lease names it) and
//! refreshes; the other follows and writes nothing. A failure streak at its threshold
//! leaves the process running, with a Warning Event and metrics. SIGTERM makes the
//! leader release the lease and exit 0, and the follower takes over.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{admin, deploy};
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One replica: `freshet run` with its own identity and metrics port; its log goes
/// to `log` (printed when a wait times out).
fn replica(identity: &str, kubeconfig: &str, port: u16, log: &Path) -> Child {
    controller(
        identity,
        kubeconfig,
        port,
        log,
        &["--lease-namespace", "default", "--lease-duration", "3s"],
    )
}

/// `freshet run` as a controller with `extra` flags.
fn controller(identity: &str, kubeconfig: &str, port: u16, log: &Path, extra: &[&str]) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args([
            "run",
            "--kubeconfig",
            kubeconfig,
            "--interval",
            "1s",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--log",
            "info",
            "--log-format",
            "json",
        ])
        .args(extra)
        .env("POD_NAME", identity)
        .env_remove("POD_NAMESPACE")
        .env_remove("FRESHET_SELF")
        .env_remove("FRESHET_LOG")
        .env("HOME", "/nonexistent-home")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("freshet starts")
}

/// GET /metrics over a plain socket (`None` while the server is not up).
async fn scrape(port: u16) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    body.starts_with("HTTP/1.0 200").then_some(body)
}

/// The value of the first sample whose line starts with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits for `check`, printing both replicas' logs if it never holds.
async fn wait_for<T, F, Fut>(what: &str, logs: &[&Path], check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    freshet_testbed::wait::wait_for_or(
        what,
        || {
            for log in logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                eprintln!("--- {}\n{text}", log.display());
            }
        },
        check,
    )
    .await
}

/// SIGTERM (through nix, not a `kill` binary: procps is not on every fresh machine),
/// then the exit code.
async fn terminate(child: &mut Child) -> Option<i32> {
    let pid = child.id().expect("a running child");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid fits i32")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM sent");
    tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("it stops")
        .unwrap()
        .code()
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("freshet")
        .await
        .ok()??
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

#[tokio::test]
async fn two_replicas_one_leader_refreshes_escalates_without_exiting_and_hands_over_on_sigterm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let mut api_fx = fixtures::seed_api(&pusher).await.unwrap();
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = TestCluster::start(ClusterOptions::default()).await.unwrap();
    let client = admin(&cluster).await;
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    deploy(
        &client,
        "app",
        &image,
        json!({"freshet.io/policy": "digest"}),
    )
    .await;
    // A registry nobody listens on: the streak reaches threshold 1 on the first pass.
    let dead = format!("127.0.0.1:{}/team/gone:1", free_port());
    deploy(
        &client,
        "broken",
        &dead,
        json!({"freshet.io/policy": "digest", "freshet.io/failure-threshold": "1"}),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let logs = [log_a.as_path(), log_b.as_path()];
    let (port_a, port_b) = (free_port(), free_port());
    let a = replica("replica-a", &kubeconfig, port_a, &log_a);
    let b = replica("replica-b", &kubeconfig, port_b, &log_b);
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let first = wait_for("a leader", &logs, || holder(&leases)).await;
    let (mut leader, leader_port, _follower, follower_port, follower_name) = if first == "replica-a"
    {
        (a, port_a, b, port_b, "replica-b")
    } else {
        assert_eq!(first, "replica-b");
        (b, port_b, a, port_a, "replica-a")
    };

    // The leader records the baseline, then restarts `app` when the tag moves.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    wait_for("the baseline", &logs, || {
        let deploys = deploys.clone();
        async move {
            let d = deploys.get("app").await.ok()?;
            d.metadata
                .annotations?
                .contains_key("freshet.io/refreshed")
                .then_some(())
        }
    })
    .await;
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let restarted = wait_for("the restart", &logs, || {
        let deploys = deploys.clone();
        async move {
            let d = deploys.get("app").await.ok()?;
            d.spec
                .template
                .metadata?
                .annotations?
                .get("kubectl.kubernetes.io/restartedAt")
                .cloned()
        }
    })
    .await;
    assert!(!restarted.is_empty());

    // The streak at its threshold: a Warning Event, metrics, and the process lives on.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    wait_for("the Warning Event on broken", &logs, || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.involved_object.name.as_deref() == Some("broken")
                        && e.type_.as_deref() == Some("Warning")
                        && e.reason.as_deref() == Some("ImageRefreshFailed")
                })
        }
    })
    .await;
    let metrics = wait_for("the leader's metrics", &logs, || async {
        let m = scrape(leader_port).await?;
        (sample(&m, "freshet_escalated_workloads ") == Some(1.0)
            && sample(&m, "freshet_writes_total ").is_some_and(|v| v >= 2.0))
        .then_some(m)
    })
    .await;
    assert_eq!(sample(&metrics, "freshet_leader "), Some(1.0), "{metrics}");
    assert!(
        sample(&metrics, "freshet_passes_total{outcome=\"escalated\"}").is_some_and(|v| v >= 1.0),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("freshet_failure_streak{")
                && l.contains("name=\"broken\"")
                && l.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|v| v >= 1.0)),
        "{metrics}"
    );
    assert!(
        leader.try_wait().unwrap().is_none(),
        "the leader keeps running"
    );
    let follower = scrape(follower_port).await.expect("follower metrics");
    assert_eq!(
        sample(&follower, "freshet_leader "),
        Some(0.0),
        "{follower}"
    );
    assert_eq!(
        sample(&follower, "freshet_writes_total "),
        Some(0.0),
        "a follower writes nothing: {follower}"
    );

    // SIGTERM: the leader releases the lease and exits 0; the follower takes over.
    assert_eq!(terminate(&mut leader).await, Some(0), "a clean stop");
    let next = wait_for("the follower to lead", &logs, || async {
        holder(&leases).await.filter(|h| h == follower_name)
    })
    .await;
    assert_eq!(next, follower_name);
    let pass_time = |port: u16| async move {
        let m = scrape(port).await?;
        (sample(&m, "freshet_leader ") == Some(1.0))
            .then(|| sample(&m, "freshet_last_pass_timestamp_seconds "))
            .flatten()
            .filter(|t| *t > 0.0)
    };
    let first_pass = wait_for("the new leader's first pass", &logs, || {
        pass_time(follower_port)
    })
    .await;
    // Everything is current: the new leader's passes leave `app` alone.
    let before = deploys.get("app").await.unwrap().metadata.resource_version;
    wait_for("another pass", &logs, || async {
        pass_time(follower_port).await.filter(|t| *t > first_pass)
    })
    .await;
    let after = deploys.get("app").await.unwrap().metadata.resource_version;
    assert_eq!(
        before, after,
        "a pass with nothing new writes nothing to app"
    );
}

/// Regression: `--no-leader-election` logged "the leader election task ended" and
/// exited 0 before its first pass. A single replica runs passes until SIGTERM.
#[tokio::test]
async fn without_leader_election_one_replica_runs_passes_until_sigterm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let mut api_fx = fixtures::seed_api(&pusher).await.unwrap();
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = TestCluster::start(ClusterOptions::default()).await.unwrap();
    let client = admin(&cluster).await;
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    deploy(
        &client,
        "app",
        &image,
        json!({"freshet.io/policy": "digest"}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("single.log");
    let logs = [log.as_path()];
    let port = free_port();
    let mut single = controller("single", &kubeconfig, port, &log, &["--no-leader-election"]);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    wait_for("the baseline", &logs, || {
        let deploys = deploys.clone();
        async move {
            let d = deploys.get("app").await.ok()?;
            d.metadata
                .annotations?
                .contains_key("freshet.io/refreshed")
                .then_some(())
        }
    })
    .await;
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    wait_for("the restart by a later pass", &logs, || {
        let deploys = deploys.clone();
        async move {
            let d = deploys.get("app").await.ok()?;
            d.spec
                .template
                .metadata?
                .annotations?
                .get("kubectl.kubernetes.io/restartedAt")
                .cloned()
        }
    })
    .await;
    let metrics = wait_for("metrics of several passes", &logs, || async {
        let m = scrape(port).await?;
        (sample(&m, "freshet_passes_total{outcome=\"ok\"}").is_some_and(|v| v >= 2.0)).then_some(m)
    })
    .await;
    assert_eq!(sample(&metrics, "freshet_leader "), Some(1.0), "{metrics}");
    assert!(single.try_wait().unwrap().is_none(), "it keeps running");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    assert_eq!(holder(&leases).await, None, "no lease is taken");
    assert_eq!(terminate(&mut single).await, Some(0), "a clean stop");
}
