//! The simulated scheduler and kubelet: binds pods to nodes that match their
//! `nodeSelector` and required node affinity, "pulls" images by resolving
//! them for the node's platform with the pod's `imagePullSecrets` (honouring
//! `imagePullPolicy` with a per-node image cache), and reports container states: running, `ErrImagePull`, or
//! `CrashLoopBackOff` for images on the crash list. Job pods run to
//! completion.
//!
//! Owns pod status. It must not create or delete pods.

use std::time::{Duration, Instant};

use futures::FutureExt as _;

use serde_json::{Value, json};

use super::{Controllers, NodeSpec, def, pod_terminal};
use crate::images::{ImagePullError, PulledImage};
use crate::selector::LabelSelector;
use crate::store::{UpdateMode, ns_name};
use crate::util::{get_path, i64_at, now_rfc3339, str_at};

/// How often a crash-looping container restarts.
const CRASH_PERIOD: Duration = Duration::from_millis(500);

/// The Node object for a node spec.
pub fn node_object(n: &NodeSpec, index: usize) -> Value {
    let now = now_rfc3339();
    let mut annotations = json!({});
    if let Some(v) = &n.variant {
        annotations["testbed.freshet.dev/platform-variant"] = json!(v);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": n.name,
            "labels": {
                "kubernetes.io/arch": n.arch,
                "kubernetes.io/os": n.os,
                "kubernetes.io/hostname": n.name,
                "beta.kubernetes.io/arch": n.arch,
                "beta.kubernetes.io/os": n.os,
            },
            "annotations": annotations,
        },
        "spec": {"podCIDR": format!("10.244.{index}.0/24")},
        "status": {
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "addresses": [{"type": "InternalIP", "address": format!("172.18.0.{}", index + 2)},
                {"type": "Hostname", "address": n.name}],
            "nodeInfo": {
                "architecture": n.arch,
                "operatingSystem": n.os,
                "kubeletVersion": format!("v1.{}.0", crate::discovery::KUBE_MINOR),
                "containerRuntimeVersion": "containerd://1.7.0",
                "kernelVersion": "6.1.0", "osImage": "freshet test bed",
                "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": "",
            },
        },
    })
}

/// Normalizes an image reference as containerd reports it: `(repository, tag or digest part)`.
/// `nginx:1.25` → `("docker.io/library/nginx", ":1.25")`.
pub fn normalize(image: &str) -> (String, String) {
    let (name, suffix) = match image.split_once('@') {
        Some((n, d)) => (n.to_string(), format!("@{d}")),
        None => {
            let last_slash = image.rfind('/').map_or(0, |i| i + 1);
            match image[last_slash..].rfind(':') {
                Some(i) => (
                    image[..last_slash + i].to_string(),
                    image[last_slash + i..].to_string(),
                ),
                None => (image.to_string(), ":latest".to_string()),
            }
        }
    };
    let first = name.split('/').next().unwrap_or("");
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let repo = if has_registry {
        name
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    (repo, suffix)
}

fn node_labels(n: &NodeSpec) -> Value {
    node_object(n, 0)["metadata"]["labels"].clone()
}

/// Whether a pod (its `nodeSelector` and required node affinity) fits a node.
pub fn fits_node(pod: &Value, n: &NodeSpec) -> bool {
    let labels = node_labels(n);
    if let Some(sel) = get_path(pod, "spec.nodeSelector").and_then(Value::as_object)
        && sel
            .iter()
            .any(|(k, v)| labels.get(k).and_then(Value::as_str) != v.as_str())
    {
        return false;
    }
    let terms = get_path(
        pod,
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
    )
    .and_then(Value::as_array);
    match terms {
        Some(terms) if !terms.is_empty() => terms.iter().any(|t| {
            let exprs = t.get("matchExpressions").cloned().unwrap_or(json!([]));
            LabelSelector::from_object(&json!({"matchExpressions": exprs}))
                .matches_labels(Some(&labels))
        }),
        _ => true,
    }
}

fn pod_conditions(ready: bool, now: &str) -> Value {
    let r = if ready { "True" } else { "False" };
    let mut conds = vec![
        json!({"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now}),
        json!({"type": "Initialized", "status": "True", "lastTransitionTime": now}),
        json!({"type": "Ready", "status": r, "lastTransitionTime": now}),
        json!({"type": "ContainersReady", "status": r, "lastTransitionTime": now}),
        json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now}),
    ];
    if !ready {
        for i in [2, 3] {
            conds[i]["reason"] = json!("ContainersNotReady");
        }
    }
    json!(conds)
}

/// One kubelet pass over every pod.
pub fn run(c: &mut Controllers) {
    let pods = c.store.list("pods", None).0;
    let live: std::collections::HashSet<&str> =
        pods.iter().map(|p| str_at(p, "metadata.uid")).collect();
    c.pulls.retain(|(uid, _), _| live.contains(uid.as_str()));
    let mut load: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for p in &pods {
        *load
            .entry(str_at(p, "spec.nodeName").to_string())
            .or_default() += 1;
    }
    for pod in pods {
        if pod_terminal(&pod) {
            continue;
        }
        let pod = match schedule(c, pod, &mut load) {
            Some(p) => p,
            None => continue,
        };
        let node_name = str_at(&pod, "spec.nodeName").to_string();
        let Some(node) = c.nodes.iter().find(|n| n.name == node_name).cloned() else {
            continue;
        };
        if get_path(&pod, "status.startTime").is_none()
            || str_at(&pod, "status.phase") == "Pending"
            || image_changed(&pod)
        {
            start(c, &pod, &node);
        } else {
            keep_running(c, &pod);
        }
    }
}

fn schedule(
    c: &mut Controllers,
    pod: Value,
    load: &mut std::collections::HashMap<String, usize>,
) -> Option<Value> {
    if !str_at(&pod, "spec.nodeName").is_empty() {
        return Some(pod);
    }
    let (ns, name) = ns_name(&pod);
    let pod_def = def("", "pods");
    let mut candidates: Vec<&NodeSpec> = c.nodes.iter().filter(|n| fits_node(&pod, n)).collect();
    candidates.sort_by_key(|n| (load.get(&n.name).copied().unwrap_or(0), n.name.clone()));
    match candidates.first() {
        Some(n) => {
            *load.entry(n.name.clone()).or_default() += 1;
            let node = n.name.clone();
            let bound = c.store.modify(pod_def, &ns, &name, UpdateMode::Internal, |o| {
                o["spec"]["nodeName"] = json!(node);
                o["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}]);
            });
            if let Some(p) = &bound {
                c.event(
                    p,
                    "Normal",
                    "Scheduled",
                    &format!("Successfully assigned {ns}/{name} to {}", n.name),
                    "default-scheduler",
                );
            }
            bound
        }
        None => {
            let message = format!(
                "0/{} nodes are available: {} node(s) didn't match Pod's node affinity/selector.",
                c.nodes.len(),
                c.nodes.len()
            );
            let already = pod
                .pointer("/status/conditions/0/reason")
                .and_then(Value::as_str)
                == Some("Unschedulable");
            if !already {
                let updated = c.store.modify(pod_def, &ns, &name, UpdateMode::Status, |o| {
                    o["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                        "reason": "Unschedulable", "message": message, "lastTransitionTime": now_rfc3339()}]);
                });
                if let Some(p) = updated {
                    c.event(
                        &p,
                        "Warning",
                        "FailedScheduling",
                        &message,
                        "default-scheduler",
                    );
                }
            }
            None
        }
    }
}

/// Whether an image is on the crash list: by the reference as written, its
/// normalized form, or either digest (bare or as `repo@digest`).
fn crashes(c: &Controllers, image: &str, pulled: &PulledImage) -> bool {
    let (repo, suffix) = normalize(image);
    c.crash_images.iter().any(|e| {
        e == image
            || *e == format!("{repo}{suffix}")
            || [&pulled.digest, &pulled.platform_digest]
                .iter()
                .any(|d| e == *d || *e == format!("{repo}@{d}"))
    })
}

/// Where the pull of one image for one pod stands.
pub(crate) enum Pull {
    /// The resolver is working on it.
    Running(tokio::task::JoinHandle<Result<PulledImage, ImagePullError>>),
    /// Finished; kept until the pod has all its images.
    Done(Result<PulledImage, ImagePullError>),
}

/// Pulls `image` for pod `uid` on `node`, honouring `policy` and the node's
/// image cache. Pulls run in their own tasks so a slow registry never stalls
/// the controllers: `None` means "still pulling, look again next tick".
fn pull(
    c: &mut Controllers,
    uid: &str,
    node: &NodeSpec,
    image: &str,
    policy: &str,
    pull_secrets: &[(String, Vec<u8>)],
) -> Option<Result<PulledImage, ImagePullError>> {
    let cache_key = (node.name.clone(), image.to_string());
    let cached = c.image_cache.get(&cache_key).cloned();
    match (policy, cached) {
        ("IfNotPresent", Some(d)) | ("Never", Some(d)) => return Some(Ok(d)),
        ("Never", None) => {
            return Some(Err(ImagePullError::Other {
                image: image.into(),
                reason: "image is not present with pull policy of Never (ErrImageNeverPull)".into(),
            }));
        }
        _ => {}
    }
    let key = (uid.to_string(), image.to_string());
    match c.pulls.remove(&key) {
        Some(Pull::Done(result)) => {
            c.pulls.insert(key, Pull::Done(result.clone()));
            Some(result)
        }
        Some(Pull::Running(mut handle)) => {
            if !handle.is_finished() {
                c.pulls.insert(key, Pull::Running(handle));
                return None;
            }
            let result = match (&mut handle).now_or_never() {
                Some(Ok(r)) => r,
                Some(Err(e)) => Err(ImagePullError::Other {
                    image: image.into(),
                    reason: e.to_string(),
                }),
                None => return None,
            };
            if let Ok(p) = &result {
                c.pull_log.push(super::PullRecord {
                    node: node.name.clone(),
                    image: image.to_string(),
                    pulled: p.clone(),
                });
                c.image_cache.insert(cache_key, p.clone());
            }
            c.pulls.insert(key, Pull::Done(result.clone()));
            Some(result)
        }
        None => {
            let resolver = c.resolver.clone();
            let (image, os, arch, variant, secrets) = (
                image.to_string(),
                node.os.clone(),
                node.arch.clone(),
                node.variant.clone(),
                pull_secrets.to_vec(),
            );
            let handle = tokio::spawn(async move {
                resolver
                    .resolve_with_secrets(&image, &os, &arch, variant.as_deref(), &secrets)
                    .await
            });
            c.pulls.insert(key, Pull::Running(handle));
            None
        }
    }
}

/// The pod's `imagePullSecrets` that exist and are of a pull-secret type, as
/// `(namespace/name, .dockerconfigjson or .dockercfg data)`. A missing or unusable
/// secret is skipped (a real kubelet also records a `FailedToRetrieveImagePullSecret`
/// event, which the test bed does not).
fn pod_pull_secrets(c: &Controllers, pod: &Value) -> Vec<(String, Vec<u8>)> {
    use base64::Engine as _;
    let (ns, _) = ns_name(pod);
    let names = get_path(pod, "spec.imagePullSecrets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    names
        .iter()
        .filter_map(|r| {
            let name = r.get("name").and_then(Value::as_str)?;
            let secret = c.store.get("secrets", &ns, name)?;
            let key = match str_at(&secret, "type") {
                "kubernetes.io/dockerconfigjson" => ".dockerconfigjson",
                "kubernetes.io/dockercfg" => ".dockercfg",
                _ => return None,
            };
            let data = match secret
                .pointer(&format!("/data/{key}"))
                .and_then(Value::as_str)
            {
                Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64).ok()?,
                None => secret
                    .pointer(&format!("/stringData/{key}"))
                    .and_then(Value::as_str)?
                    .as_bytes()
                    .to_vec(),
            };
            Some((format!("{ns}/{name}"), data))
        })
        .collect()
}

fn forget_pulls(c: &mut Controllers, uid: &str) {
    c.pulls.retain(|(u, _), _| u != uid);
}

struct Pulled {
    name: String,
    image: String,
    digest: String,
    crash: bool,
}

fn start(c: &mut Controllers, pod: &Value, node: &NodeSpec) {
    let (ns, name) = ns_name(pod);
    let uid = str_at(pod, "metadata.uid").to_string();
    if let Some((when, _)) = c.pull_backoff.get(&uid)
        && Instant::now() < *when
    {
        back_off_pull(c, pod);
        return;
    }
    let containers: Vec<Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| {
            get_path(pod, &format!("spec.{k}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let init_count = get_path(pod, "spec.initContainers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let pull_secrets = pod_pull_secrets(c, pod);
    let mut pulled = Vec::new();
    let mut waiting = false;
    for ct in &containers {
        let image = str_at(ct, "image").to_string();
        let policy = match str_at(ct, "imagePullPolicy") {
            "" => crate::admission::default_pull_policy(&image),
            p => p,
        }
        .to_string();
        match pull(c, &uid, node, &image, &policy, &pull_secrets) {
            None => waiting = true,
            Some(Ok(p)) => {
                let crash = crashes(c, &image, &p);
                pulled.push(Pulled {
                    name: str_at(ct, "name").to_string(),
                    image,
                    digest: p.digest,
                    crash,
                });
            }
            Some(Err(e)) => {
                forget_pulls(c, &uid);
                let backoff = c
                    .pull_backoff
                    .get(&uid)
                    .map_or(Duration::from_millis(500), |(_, b)| {
                        (*b * 2).min(Duration::from_secs(10))
                    });
                c.pull_backoff
                    .insert(uid.clone(), (Instant::now() + backoff, backoff));
                report_pull_failure(c, pod, ct, &e);
                return;
            }
        }
    }
    if waiting {
        if pod.pointer("/status/containerStatuses").is_none() {
            creating(c, pod);
        }
        return;
    }
    forget_pulls(c, &uid);
    c.pull_backoff.remove(&uid);
    let now = now_rfc3339();
    let job_like = str_at(pod, "spec.restartPolicy") != "Always";
    let any_crash = pulled[init_count..].iter().any(|p| p.crash);
    let status_of = |p: &Pulled, init: bool| -> Value {
        let (repo, suffix) = normalize(&p.image);
        let mut s = json!({
            "name": p.name,
            "image": format!("{repo}{suffix}"),
            "imageID": format!("{repo}@{}", p.digest),
            "containerID": format!("containerd://{}", crate::util::random_hex(32)),
            "restartCount": 0,
        });
        if init {
            s["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}});
            s["ready"] = json!(true);
            s["started"] = json!(false);
        } else if p.crash {
            s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
                "message": format!("back-off 10s restarting failed container={} pod={}", p.name, name)}});
            s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}});
            s["ready"] = json!(false);
            s["started"] = json!(false);
            s["restartCount"] = json!(1);
        } else {
            s["state"] = json!({"running": {"startedAt": now}});
            s["ready"] = json!(true);
            s["started"] = json!(true);
        }
        s
    };
    let init_statuses: Vec<Value> = pulled[..init_count]
        .iter()
        .map(|p| status_of(p, true))
        .collect();
    // A container restarted for a new image keeps counting restarts.
    let previous = |container: &str| -> Option<i64> {
        pod.pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|s| str_at(s, "name") == container))
            .filter(|s| !str_at(s, "imageID").is_empty())
            .map(|s| i64_at(s, "restartCount", 0) + 1)
    };
    let statuses: Vec<Value> = pulled[init_count..]
        .iter()
        .map(|p| {
            let mut s = status_of(p, false);
            if let Some(n) = previous(&p.name) {
                s["restartCount"] = json!(i64_at(&s, "restartCount", 0) + n);
            }
            s
        })
        .collect();
    let ip = c.next_ip;
    c.next_ip += 1;
    let node_index = c
        .nodes
        .iter()
        .position(|n| n.name == node.name)
        .unwrap_or(0);
    let ready = !any_crash;
    let updated = c
        .store
        .modify(def("", "pods"), &ns, &name, UpdateMode::Status, |o| {
            let mut st = json!({
                "phase": if job_like && any_crash { "Failed" } else { "Running" },
                "conditions": pod_conditions(ready, &now),
                "hostIP": format!("172.18.0.{}", node_index + 2),
                "hostIPs": [{"ip": format!("172.18.0.{}", node_index + 2)}],
                "podIP": format!("10.244.{node_index}.{ip}"),
                "podIPs": [{"ip": format!("10.244.{node_index}.{ip}")}],
                "startTime": now,
                "qosClass": "BestEffort",
                "containerStatuses": statuses,
            });
            if !init_statuses.is_empty() {
                st["initContainerStatuses"] = json!(init_statuses);
            }
            o["status"] = st;
        });
    if let Some(p) = updated {
        for pl in &pulled {
            c.event(
                &p,
                "Normal",
                "Pulled",
                &format!("Successfully pulled image \"{}\"", pl.image),
                "kubelet",
            );
            c.event(
                &p,
                "Normal",
                "Created",
                &format!("Created container: {}", pl.name),
                "kubelet",
            );
            c.event(
                &p,
                "Normal",
                "Started",
                &format!("Started container {}", pl.name),
                "kubelet",
            );
            if pl.crash {
                c.event(
                    &p,
                    "Warning",
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {} in pod {name}",
                        pl.name
                    ),
                    "kubelet",
                );
            }
        }
        c.crash_clock.insert(uid, Instant::now());
    }
    update_node_images(c, node);
}

/// Whether a running pod's spec names an image its containers do not run
/// (`kubectl set image pod/x`): the kubelet restarts them with the new one.
fn image_changed(pod: &Value) -> bool {
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    get_path(pod, "spec.containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|ct| {
            let (repo, suffix) = normalize(str_at(ct, "image"));
            statuses
                .and_then(|cs| cs.iter().find(|s| str_at(s, "name") == str_at(ct, "name")))
                .is_some_and(|s| str_at(s, "image") != format!("{repo}{suffix}"))
        })
}

/// While images are pulled, containers wait in `ContainerCreating`.
fn creating(c: &Controllers, pod: &Value) {
    let (ns, name) = ns_name(pod);
    let statuses: Vec<Value> = get_path(pod, "spec.containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|ct| {
            let (repo, suffix) = normalize(str_at(ct, "image"));
            json!({"name": str_at(ct, "name"), "image": format!("{repo}{suffix}"), "imageID": "",
                "ready": false, "started": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}})
        })
        .collect();
    let now = now_rfc3339();
    let updated = c
        .store
        .modify(def("", "pods"), &ns, &name, UpdateMode::Status, |o| {
            o["status"]["conditions"] = pod_conditions(false, &now);
            o["status"]["containerStatuses"] = json!(statuses);
        });
    if let Some(p) = updated {
        for ct in get_path(pod, "spec.containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            c.event(
                &p,
                "Normal",
                "Pulling",
                &format!("Pulling image \"{}\"", str_at(ct, "image")),
                "kubelet",
            );
        }
    }
}

/// Between pull attempts a real kubelet reports `ImagePullBackOff`; the next
/// failed attempt reports `ErrImagePull` again.
fn back_off_pull(c: &Controllers, pod: &Value) {
    let (ns, name) = ns_name(pod);
    let failing: Vec<(String, String)> = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter(|s| {
                    s.pointer("/state/waiting/reason").and_then(Value::as_str)
                        == Some("ErrImagePull")
                })
                .map(|s| {
                    (
                        str_at(s, "name").to_string(),
                        str_at(s, "state.waiting.message").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if failing.is_empty() {
        return;
    }
    let image_of = |container: &str| -> String {
        get_path(pod, "spec.containers")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|ct| str_at(ct, "name") == container))
            .map(|ct| str_at(ct, "image").to_string())
            .unwrap_or_default()
    };
    let updated = c.store.modify(def("", "pods"), &ns, &name, UpdateMode::Status, |o| {
        if let Some(cs) = o.pointer_mut("/status/containerStatuses").and_then(Value::as_array_mut) {
            for s in cs {
                let cname = str_at(s, "name").to_string();
                if let Some((_, message)) = failing.iter().find(|(n, _)| *n == cname) {
                    s["state"] = json!({"waiting": {"reason": "ImagePullBackOff",
                        "message": format!("Back-off pulling image \"{}\": ErrImagePull: {message}", image_of(&cname))}});
                }
            }
        }
    });
    if let Some(p) = updated {
        for (cname, _) in &failing {
            c.event(
                &p,
                "Normal",
                "BackOff",
                &format!("Back-off pulling image \"{}\"", image_of(cname)),
                "kubelet",
            );
            c.event(
                &p,
                "Warning",
                "Failed",
                "Error: ImagePullBackOff",
                "kubelet",
            );
        }
    }
}

fn report_pull_failure(c: &Controllers, pod: &Value, ct: &Value, e: &ImagePullError) {
    let (ns, name) = ns_name(pod);
    let image = str_at(ct, "image").to_string();
    let cname = str_at(ct, "name").to_string();
    let message = e.to_string();
    let already = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|s| {
                s.pointer("/state/waiting/message").and_then(Value::as_str)
                    == Some(message.as_str())
            })
        });
    if already {
        return;
    }
    let statuses: Vec<Value> = get_path(pod, "spec.containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|ct2| {
            let (repo, suffix) = normalize(str_at(ct2, "image"));
            let waiting = if str_at(ct2, "name") == cname {
                json!({"reason": "ErrImagePull", "message": message})
            } else {
                json!({"reason": "PodInitializing"})
            };
            json!({"name": str_at(ct2, "name"), "image": format!("{repo}{suffix}"), "imageID": "",
                "ready": false, "started": false, "restartCount": 0, "state": {"waiting": waiting}})
        })
        .collect();
    let now = now_rfc3339();
    let updated = c
        .store
        .modify(def("", "pods"), &ns, &name, UpdateMode::Status, |o| {
            o["status"]["phase"] = json!("Pending");
            o["status"]["conditions"] = pod_conditions(false, &now);
            o["status"]["containerStatuses"] = json!(statuses);
        });
    if let Some(p) = updated {
        c.event(
            &p,
            "Normal",
            "Pulling",
            &format!("Pulling image \"{image}\""),
            "kubelet",
        );
        c.event(
            &p,
            "Warning",
            "Failed",
            &format!("Failed to pull image \"{image}\": {message}"),
            "kubelet",
        );
        c.event(&p, "Warning", "Failed", "Error: ErrImagePull", "kubelet");
    }
}

fn keep_running(c: &mut Controllers, pod: &Value) {
    let (ns, name) = ns_name(pod);
    let uid = str_at(pod, "metadata.uid").to_string();
    let job_like = str_at(pod, "spec.restartPolicy") != "Always";
    if job_like && str_at(pod, "status.phase") == "Running" {
        let now = now_rfc3339();
        c.store.modify(def("", "pods"), &ns, &name, UpdateMode::Status, |o| {
            o["status"]["phase"] = json!("Succeeded");
            o["status"]["conditions"] = pod_conditions(false, &now);
            if let Some(cs) = o.pointer_mut("/status/containerStatuses").and_then(Value::as_array_mut) {
                for s in cs {
                    s["ready"] = json!(false);
                    s["started"] = json!(false);
                    s["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}});
                }
            }
        });
        return;
    }
    let crashing = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|s| {
                s.pointer("/state/waiting/reason").and_then(Value::as_str)
                    == Some("CrashLoopBackOff")
            })
        });
    if !crashing {
        return;
    }
    let due = c
        .crash_clock
        .get(&uid)
        .is_none_or(|t| t.elapsed() >= CRASH_PERIOD);
    if !due {
        return;
    }
    c.crash_clock.insert(uid, Instant::now());
    c.store
        .modify(def("", "pods"), &ns, &name, UpdateMode::Status, |o| {
            if let Some(cs) = o
                .pointer_mut("/status/containerStatuses")
                .and_then(Value::as_array_mut)
            {
                for s in cs {
                    if s.pointer("/state/waiting/reason").and_then(Value::as_str)
                        == Some("CrashLoopBackOff")
                    {
                        let n = i64_at(s, "restartCount", 0) + 1;
                        s["restartCount"] = json!(n);
                    }
                }
            }
        });
}

fn update_node_images(c: &Controllers, node: &NodeSpec) {
    let mut images: Vec<Value> = c
        .image_cache
        .iter()
        .filter(|((n, _), _)| *n == node.name)
        .map(|((_, image), pulled)| {
            let (repo, suffix) = normalize(image);
            let digest = &pulled.digest;
            json!({"names": [format!("{repo}@{digest}"), format!("{repo}{suffix}")], "sizeBytes": 1_000_000})
        })
        .collect();
    images.sort_by_key(|v| v.to_string());
    c.store.modify(
        def("", "nodes"),
        "",
        &node.name,
        UpdateMode::Internal,
        |o| {
            o["status"]["images"] = json!(images);
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        for (image, repo, suffix) in [
            ("nginx", "docker.io/library/nginx", ":latest"),
            ("nginx:1.25", "docker.io/library/nginx", ":1.25"),
            ("bitnami/redis:7", "docker.io/bitnami/redis", ":7"),
            ("localhost:5000/app:v1", "localhost:5000/app", ":v1"),
            ("localhost:5000/app", "localhost:5000/app", ":latest"),
            ("ghcr.io/o/app@sha256:ab", "ghcr.io/o/app", "@sha256:ab"),
        ] {
            assert_eq!(
                normalize(image),
                (repo.to_string(), suffix.to_string()),
                "{image}"
            );
        }
    }

    #[test]
    fn node_selector_and_affinity_pick_nodes() {
        let amd = NodeSpec::linux("a", "amd64");
        let arm = NodeSpec::linux("b", "arm64");
        let sel = json!({"spec": {"nodeSelector": {"kubernetes.io/arch": "arm64"}}});
        assert!(!fits_node(&sel, &amd));
        assert!(fits_node(&sel, &arm));
        let aff = json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}}}});
        assert!(fits_node(&aff, &amd));
        assert!(!fits_node(&aff, &arm));
    }
}
