//! Starting a pod's containers once every image is pulled: the container
//! statuses (running, completed init containers, or `CrashLoopBackOff`), pod IPs
//! and the `Pulled`/`Created`/`Started` events; `ContainerCreating` while pulls
//! run; and noticing a running pod whose spec names a new image.
//!
//! Owns the transition of a pod to running. It must not schedule pods.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::super::context::{Controllers, NodeSpec};
use super::super::objects::def;
use super::conditions::pod_conditions;
use super::failure::{back_off_pull, report_pull_failure};
use super::node::update_node_images;
use super::pull::{crashes, forget_pulls, pod_pull_secrets, pull};
use super::reference::normalize;
use crate::store::{UpdateMode, ns_name};
use crate::util::{get_path, i64_at, now_rfc3339, str_at};

pub(crate) struct Pulled {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) digest: String,
    pub(crate) crash: bool,
    /// Taken from the node's image cache (`IfNotPresent`/`Never`), not pulled.
    pub(crate) cached: bool,
}

pub(crate) fn start(c: &mut Controllers, pod: &Value, node: &NodeSpec) {
    let (ns, name) = ns_name(pod);
    let uid = str_at(pod, "metadata.uid").to_string();
    let key = ("pods", ns.clone(), name.clone());
    if let Some((when, _)) = c.kubelet.pull_backoff.get(&uid)
        && Instant::now() < *when
    {
        let wait = when.saturating_duration_since(Instant::now());
        c.queue.add_after(key, wait);
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
        let cached = policy != "Always"
            && c.kubelet
                .image_cache
                .contains_key(&(node.name.clone(), image.clone()));
        match pull(c, &uid, node, &image, &policy, &pull_secrets) {
            None => waiting = true,
            Some(Ok(p)) => {
                let crash = crashes(c, &image, &p);
                pulled.push(Pulled {
                    name: str_at(ct, "name").to_string(),
                    image,
                    digest: p.digest,
                    crash,
                    cached,
                });
            }
            Some(Err(e)) => {
                forget_pulls(c, &uid);
                let backoff = c
                    .kubelet
                    .pull_backoff
                    .get(&uid)
                    .map_or(Duration::from_millis(500), |(_, b)| {
                        (*b * 2).min(Duration::from_secs(10))
                    });
                c.kubelet
                    .pull_backoff
                    .insert(uid.clone(), (Instant::now() + backoff, backoff));
                c.queue.add_after(key, backoff);
                report_pull_failure(c, pod, ct, &e);
                return;
            }
        }
    }
    if waiting {
        // A pull runs in its own task: look again at the next tick.
        c.queue.add_after(key, Duration::ZERO);
        if pod.pointer("/status/containerStatuses").is_none() {
            creating(c, pod);
        }
        return;
    }
    forget_pulls(c, &uid);
    c.kubelet.pull_backoff.remove(&uid);
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
    let ip = c.kubelet.next_ip;
    c.kubelet.next_ip += 1;
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
                &if pl.cached {
                    format!(
                        "Container image \"{}\" already present on machine",
                        pl.image
                    )
                } else {
                    format!("Successfully pulled image \"{}\"", pl.image)
                },
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
        c.kubelet.crash_clock.insert(uid, Instant::now());
    }
    update_node_images(c, node);
}

/// Whether a running pod's spec names an image its containers do not run
/// (`kubectl set image pod/x`): the kubelet restarts them with the new one.
pub(crate) fn image_changed(pod: &Value) -> bool {
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
pub(crate) fn creating(c: &Controllers, pod: &Value) {
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
