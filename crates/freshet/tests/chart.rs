//! The Helm chart `charts/freshet`, with real Helm (its Go SDK through the PyPI
//! package helm-python-sdk): it lints clean and renders both modes, its RBAC is the
//! same as deploy/'s, `values.schema.json` refuses bad values, and the rendered
//! manifests apply to the API test bed with the real kubectl, where the built binary,
//! run as the chart's ServiceAccount, refreshes (a private registry through the
//! chart's pull-secret Role; the controller holding the chart's Lease) and may do
//! nothing more.
//!
//! The test bed stores Services and PodDisruptionBudgets, so the controller mode's
//! whole rendering applies except the ServiceMonitor (its CRD is not served), which
//! is checked as rendered.

mod chart_support;

use std::collections::BTreeMap;
use std::process::Stdio;

use chart_support::*;
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_testbed::kubectl::kubectl;
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use freshet_testbed::wait::wait_for;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

const NOT_SERVED: &[&str] = &["ServiceMonitor"];

fn controller_values() -> Value {
    json!({"mode": "controller", "metrics": {"serviceMonitor": {"enabled": true}}})
}

#[test]
fn the_chart_lints_clean_and_renders_both_modes_with_real_helm() {
    for values in [json!({}), controller_values()] {
        let report = lint(&values);
        let serious: Vec<&Value> = report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["severity"].as_u64() >= Some(2))
            .collect();
        assert!(serious.is_empty(), "{values}: {report}");
        assert_eq!(report["errors"], json!([]), "{values}: {report}");
    }

    let cron = render(&json!({})).unwrap();
    assert_eq!(
        cron.kinds(),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ConfigMap",
            "CronJob",
            "Role",
            "RoleBinding",
            "ServiceAccount"
        ]
    );
    let cj = cron.get("CronJob", "freshet");
    assert_eq!(cj["spec"]["schedule"], "*/15 * * * *");
    assert_eq!(cj["metadata"]["annotations"]["freshet.io/policy"], "never");
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert!(c["image"].as_str().unwrap().starts_with(&format!(
        "ghcr.io/freshet/freshet:{}@sha256:",
        env!("CARGO_PKG_VERSION")
    )));
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..3], ["run", "--once", "--interval=15m"]);
    assert!(args.contains(&"--config=/etc/freshet/freshet.yaml"));
    assert!(
        c.get("livenessProbe").is_none(),
        "a Job has no server to probe"
    );
    assert_eq!(pod["serviceAccountName"], "freshet");
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["nodeSelector"]["kubernetes.io/arch"], "amd64");
    let config = cron.get("ConfigMap", "freshet-config");
    assert_eq!(config["data"]["freshet.yaml"], "threshold: 3\nversion: 1\n");
    assert!(
        cron.notes.contains("create job --from=cronjob/freshet"),
        "{}",
        cron.notes
    );
    assert!(cron.notes.contains("It reads no Secret"), "{}", cron.notes);

    let ctl = render(&controller_values()).unwrap();
    assert_eq!(
        ctl.kinds(),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
    );
    let d = ctl.get("Deployment", "freshet");
    assert_eq!(d["spec"]["replicas"], 2);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(!args.contains(&"--once"));
    for want in [
        "--metrics-addr=0.0.0.0:9090",
        "--lease-name=freshet",
        "--interval=1m",
    ] {
        assert!(args.contains(&want), "{want} in {args:?}");
    }
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["resources"]["limits"]["memory"], "256Mi");
    let pdb = ctl.get("PodDisruptionBudget", "freshet");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        d["spec"]["selector"]["matchLabels"]
    );
    let svc = ctl.get("Service", "freshet-metrics");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(
        svc["spec"]["selector"],
        d["spec"]["selector"]["matchLabels"]
    );
    let sm = ctl.get("ServiceMonitor", "freshet");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert!(ctl.notes.contains("get lease freshet"), "{}", ctl.notes);
    let single = render(&json!({"mode": "controller", "controller": {"replicas": 1}})).unwrap();
    assert!(
        !single.kinds().contains(&"PodDisruptionBudget".to_owned()),
        "one replica: a budget would only block node drains"
    );
    let off = render(&json!({"mode": "controller"})).unwrap();
    assert!(
        !off.kinds().contains(&"ServiceMonitor".to_owned()),
        "off by default"
    );
}

/// The rules of every Role and ClusterRole, by kind and name (release `freshet`
/// names them as deploy/ does).
fn rules(objects: &[&Value]) -> BTreeMap<String, Value> {
    objects
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("Role" | "ClusterRole")))
        .map(|o| {
            let name = o["metadata"]["name"].as_str().unwrap().to_owned();
            (
                format!("{} {name}", o["kind"].as_str().unwrap()),
                o["rules"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_charts_rbac_has_the_same_rules_as_deploy() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
    let mut deployed = Vec::new();
    for dir in ["overlays/controller", "pull-secrets"] {
        let text = kubectl(&["kustomize", &format!("{root}/{dir}")], None).await;
        deployed.extend(parse_yaml(&text));
    }
    let deployed = rules(&deployed.iter().collect::<Vec<_>>());
    let chart = render(&json!({
        "mode": "controller",
        "pullSecrets": [{"namespace": "team", "secrets": ["regcred"]}],
    }))
    .unwrap();
    let chart = rules(&chart.objects());
    assert_eq!(chart, deployed);
    // What runs is read-only: get, list and watch on pods, replicasets and jobs
    // (with the workloads' role) and on nodes (cluster-wide), and nothing more.
    let read = json!(["get", "list", "watch"]);
    assert_eq!(
        chart["ClusterRole freshet-nodes"],
        json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": read}])
    );
    let workloads = chart["ClusterRole freshet"].as_array().unwrap();
    for (group, resource) in [("", "pods"), ("apps", "replicasets"), ("batch", "jobs")] {
        let rule = json!({"apiGroups": [group], "resources": [resource], "verbs": read});
        assert!(workloads.contains(&rule), "{rule} in {workloads:?}");
    }
    let reads: Vec<&Value> = workloads
        .iter()
        .filter(|r| {
            r["verbs"]
                .as_array()
                .is_some_and(|v| v.contains(&json!("watch")))
        })
        .collect();
    // The controller also watches the four workload kinds (its watched store).
    assert_eq!(reads.len(), 5, "no other watch: {reads:?}");
}

#[test]
fn the_values_schema_refuses_bad_values() {
    let bad = [
        (json!({"mode": "daemon"}), "/mode"),
        (json!({"replicas": 2}), "replicas"),
        (json!({"image": {"digest": "sha256:abc"}}), "/image/digest"),
        (json!({"image": {"tag": "1.0 beta"}}), "/image/tag"),
        (
            json!({"image": {"pullPolicy": "Sometimes"}}),
            "/image/pullPolicy",
        ),
        (
            json!({"controller": {"replicas": "2"}}),
            "/controller/replicas",
        ),
        (
            json!({"controller": {"replicas": 0}}),
            "/controller/replicas",
        ),
        (
            json!({"controller": {"leaseDuration": "15 seconds"}}),
            "/controller/leaseDuration",
        ),
        (json!({"cronjob": {"interval": 15}}), "/cronjob/interval"),
        (json!({"metrics": {"port": 70000}}), "/metrics/port"),
        (json!({"log": {"level": "loud"}}), "/log/level"),
        (json!({"config": {"version": 2}}), "/config/version"),
        (json!({"config": {"threshold": 0}}), "/config/threshold"),
        (json!({"extraArgs": ["run"]}), "/extraArgs/0"),
        (
            json!({"rbac": {"namespaces": ["Team_A"]}}),
            "/rbac/namespaces/0",
        ),
        (
            json!({"pullSecrets": [{"namespace": "team"}]}),
            "/pullSecrets/0",
        ),
        (
            json!({"pullSecrets": [{"namespace": "team", "secrets": []}]}),
            "/pullSecrets/0/secrets",
        ),
        (
            json!({"nodeSelector": {"kubernetes.io/arch": 1}}),
            "/nodeSelector",
        ),
    ];
    for (values, path) in bad {
        let err = render(&values).expect_err(&format!("{values} is refused"));
        assert!(
            err.contains("schema") && err.contains(path),
            "{values}: {err}"
        );
    }
    // And good values of every kind pass.
    render(&json!({
        "mode": "controller",
        "image": {"digest": "", "tag": "0.1.0-rc.1"},
        "controller": {"replicas": 3, "leaseDuration": "1m30s"},
        "rbac": {"namespaces": ["team-a"]},
        "pullSecrets": [{"namespace": "team-a", "secrets": ["regcred", "ghcr.io-pull"]}],
        "config": {"version": 1, "namespaces": ["team-a"], "rules": [{"policy": "digest"}]},
        "extraArgs": ["--max-rps=20"],
    }))
    .expect("good values render");
}

/// A kube client for `kubeconfig` (JSON).
async fn client_for(kubeconfig: Value) -> kube::Client {
    let kc: kube::config::Kubeconfig = serde_json::from_value(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Deployment `web` in `ns` on `image`, enrolled by digest, pulling with `regcred`.
async fn web(client: &kube::Client, ns: &str, image: &str) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "annotations": {"freshet.io/policy": "digest"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"imagePullSecrets": [{"name": "regcred"}],
                         "nodeSelector": {"kubernetes.io/arch": "amd64"},
                         "containers": [{"name": "app", "image": image, "imagePullPolicy": "Always"}]}
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .expect("deployment created");
}

async fn pull_secret(client: &kube::Client, ns: &str, name: &str, host: &str, password: &str) {
    let config = json!({"auths": {host: {"username": "puller", "password": password}}});
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config.to_string()},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret created");
}

/// The test bed with the chart rendered from `values` applied by kubectl (namespace
/// `freshet` created first, as `helm install --create-namespace` does), a basic-auth
/// registry with the api fixture, and namespace `team` holding `regcred`.
struct Bed {
    cluster: TestCluster,
    kubeconfig: String,
    admin: kube::Client,
    sa: kube::Client,
    registry: RegistryServer,
    rendered: Rendered,
    dir: tempfile::TempDir,
}

const PASSWORD: &str = "chart-pull-s3cret";

async fn bed(values: Value) -> Bed {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rendered = render(&values).expect("renders");
    let registry = RegistryServer::start(RegistryOptions::basic().user("puller", PASSWORD))
        .await
        .expect("registry");
    let cluster = TestCluster::start(ClusterOptions::default()).await.unwrap();
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    for ns in ["freshet", "team"] {
        kubectl(
            &["--kubeconfig", &kubeconfig, "create", "namespace", ns],
            None,
        )
        .await;
    }
    let objects = rendered.without(NOT_SERVED);
    kubectl(
        &["--kubeconfig", &kubeconfig, "apply", "-f", "-"],
        Some(&objects),
    )
    .await;
    let admin = client_for(cluster.admin_kubeconfig()).await;
    let host = registry.host();
    pull_secret(&admin, "team", "regcred", &host, PASSWORD).await;
    pull_secret(&admin, "team", "unrelated", &host, PASSWORD).await;
    let sa = client_for(cluster.service_account_kubeconfig("freshet", "freshet")).await;
    Bed {
        cluster,
        kubeconfig,
        admin,
        sa,
        registry,
        rendered,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Bed {
    /// Writes the ServiceAccount's kubeconfig and the chart's config file; returns
    /// their paths.
    fn files(&self) -> (String, String) {
        let kc = self.dir.path().join("sa.kubeconfig");
        self.cluster
            .write_kubeconfig(
                &kc,
                &self
                    .cluster
                    .service_account_kubeconfig("freshet", "freshet"),
            )
            .unwrap();
        let config = self.dir.path().join("freshet.yaml");
        let cm = self.rendered.get("ConfigMap", "freshet-config");
        std::fs::write(&config, cm["data"]["freshet.yaml"].as_str().unwrap()).unwrap();
        (kc.to_str().unwrap().into(), config.to_str().unwrap().into())
    }

    /// The container args of the chart's workload, with the config file at `config`.
    fn args(&self, kind: &str, config: &str) -> Vec<String> {
        let o = self.rendered.get(kind, "freshet");
        let pod = match kind {
            "CronJob" => &o["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => &o["spec"]["template"]["spec"],
        };
        pod["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                a.as_str()
                    .unwrap()
                    .replace("/etc/freshet/freshet.yaml", config)
            })
            .collect()
    }
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(ref s)) if s.code == 403)
}

#[tokio::test]
async fn the_cronjob_chart_applies_and_its_service_account_refreshes_with_pull_secrets_and_no_more()
{
    let b = bed(json!({"pullSecrets": [{"namespace": "team", "secrets": ["regcred"]}]})).await;
    let pusher = Pusher::new(&b.registry).expect("pusher");
    let mut api = fixtures::seed_api(&pusher).await.expect("seed api");
    let image = format!("{}/team/api:stable", b.registry.host());
    web(&b.admin, "team", &image).await;
    // A Job from the chart's CronJob gives freshet a pod to find itself from.
    kubectl(
        &[
            "--kubeconfig",
            &b.kubeconfig,
            "-n",
            "freshet",
            "create",
            "job",
            "--from=cronjob/freshet",
            "manual",
        ],
        None,
    )
    .await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(b.admin.clone(), "freshet");
    let pod = wait_for("the Job's pod", || async {
        pods.list(&ListParams::default().labels("job-name=manual"))
            .await
            .ok()?
            .items
            .into_iter()
            .next()?
            .metadata
            .name
    })
    .await;

    let (kubeconfig, config) = b.files();
    let mut args = b.args("CronJob", &config);
    args.extend(["--kubeconfig".into(), kubeconfig, "--output=json".into()]);
    // The test bed serves from this test's runtime: wait without blocking it.
    let run = async || {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_freshet"))
            .args(&args)
            .env("POD_NAMESPACE", "freshet")
            .env("POD_NAME", &pod)
            .env("HOME", "/nonexistent-home")
            .env_remove("FRESHET_LOG")
            .env_remove("FRESHET_SELF")
            .output()
            .await
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{log}");
        assert!(!log.contains(PASSWORD), "no secret in the log");
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        (report, log)
    };
    let (first, log) = run().await;
    assert!(log.contains("freshet's own workload"), "{log}");
    let w = &first["workloads"][0];
    assert_eq!(
        (w["namespace"].as_str(), w["name"].as_str()),
        (Some("team"), Some("web"))
    );
    assert_eq!(w["status"], "recorded", "{first}");
    assert_eq!(
        w["warnings"],
        json!([]),
        "the pull secret was readable: {first}"
    );
    fixtures::move_tag(&pusher, &mut api, "stable", "2")
        .await
        .unwrap();
    let (second, _) = run().await;
    assert_eq!(second["workloads"][0]["status"], "refreshed", "{second}");

    // And no more than that.
    let deploys: Api<Deployment> = Api::namespaced(b.sa.clone(), "team");
    assert!(
        forbidden(deploys.delete("web", &DeleteParams::default()).await),
        "no delete"
    );
    let secrets: Api<Secret> = Api::namespaced(b.sa.clone(), "team");
    assert!(secrets.get("regcred").await.is_ok());
    assert!(
        forbidden(secrets.get("unrelated").await),
        "only the named secret"
    );
    assert!(
        forbidden(secrets.list(&ListParams::default()).await),
        "no list"
    );
    let own: Api<Secret> = Api::namespaced(b.sa.clone(), "freshet");
    assert!(forbidden(own.list(&ListParams::default()).await));
    let leases: Api<Lease> = Api::namespaced(b.sa.clone(), "freshet");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "freshet"}})).unwrap();
    assert!(
        forbidden(leases.create(&PostParams::default(), &lease).await),
        "a CronJob holds no Lease"
    );
}

#[tokio::test]
async fn the_controller_chart_applies_and_its_service_account_leads_on_its_lease_in_its_namespaces_only()
 {
    let b = bed(json!({
        "mode": "controller",
        "rbac": {"namespaces": ["team"]},
        "pullSecrets": [{"namespace": "team", "secrets": ["regcred"]}],
        "controller": {"leaseName": "freshet-leader"},
    }))
    .await;
    // The PodDisruptionBudget and the metrics Service applied with the rest.
    for object in ["poddisruptionbudget/freshet", "service/freshet-metrics"] {
        kubectl(
            &[
                "--kubeconfig",
                &b.kubeconfig,
                "-n",
                "freshet",
                "get",
                object,
            ],
            None,
        )
        .await;
    }
    let pusher = Pusher::new(&b.registry).expect("pusher");
    fixtures::seed_api(&pusher).await.expect("seed api");
    let image = format!("{}/team/api:stable", b.registry.host());
    web(&b.admin, "team", &image).await;
    kubectl(
        &[
            "--kubeconfig",
            &b.kubeconfig,
            "create",
            "namespace",
            "elsewhere",
        ],
        None,
    )
    .await;

    let (kubeconfig, config) = b.files();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut args: Vec<String> = b
        .args("Deployment", &config)
        .into_iter()
        .map(|a| {
            if a.starts_with("--metrics-addr=") {
                format!("--metrics-addr=127.0.0.1:{port}")
            } else if a.starts_with("--interval=") {
                "--interval=1s".into()
            } else {
                a
            }
        })
        .collect();
    assert!(args.contains(&"--namespace=team".to_owned()), "{args:?}");
    args.extend(["--kubeconfig".into(), kubeconfig]);
    let log_path = b.dir.path().join("controller.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args(&args)
        .env("POD_NAMESPACE", "freshet")
        .env("POD_NAME", "freshet-0")
        .env("HOME", "/nonexistent-home")
        .env_remove("FRESHET_LOG")
        .env_remove("FRESHET_SELF")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let admin_leases: Api<Lease> = Api::namespaced(b.admin.clone(), "freshet");
    let deploys: Api<Deployment> = Api::namespaced(b.admin.clone(), "team");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    freshet_testbed::wait::wait_for_or(
        "the chart's lease held by freshet-0",
        || eprintln!("{}", log()),
        || async {
            admin_leases
                .get_opt("freshet-leader")
                .await
                .ok()??
                .spec?
                .holder_identity
                .filter(|h| h == "freshet-0")
        },
    )
    .await;
    freshet_testbed::wait::wait_for_or(
        "a pass recording web's baseline",
        || eprintln!("{}", log()),
        || async {
            deploys
                .get("web")
                .await
                .ok()?
                .metadata
                .annotations?
                .get("freshet.io/refreshed")
                .cloned()
        },
    )
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", log());
    assert!(!log().contains(PASSWORD));

    // No more: another Lease, workloads outside rbac.namespaces.
    let other: Lease =
        serde_json::from_value(json!({"metadata": {"name": "someone-else"}})).unwrap();
    admin_leases
        .create(&PostParams::default(), &other)
        .await
        .unwrap();
    let sa_leases: Api<Lease> = Api::namespaced(b.sa.clone(), "freshet");
    assert!(forbidden(sa_leases.get("someone-else").await));
    let elsewhere: Api<Deployment> = Api::namespaced(b.sa.clone(), "elsewhere");
    assert!(forbidden(elsewhere.list(&ListParams::default()).await));
    let everywhere: Api<Deployment> = Api::all(b.sa.clone());
    assert!(
        forbidden(everywhere.list(&ListParams::default()).await),
        "no cluster-wide list"
    );
    let team: Api<Deployment> = Api::namespaced(b.sa.clone(), "team");
    assert!(team.list(&ListParams::default()).await.is_ok());
}
