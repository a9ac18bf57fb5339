//! Starting a pod's containers once every pull is over: the container
//! statuses (running, completed init containers, `CrashLoopBackOff`, or
//! `ErrImagePull` for a container whose pull failed while the others start),
//! pod IPs and the `Pulled`/`Created`/`Started` events (`Pulled` says "already
//! present on machine" for a cached image); `ContainerCreating` while pulls
//! run; and noticing a running pod whose spec names a new image.
//!
//! Owns the transition of a pod to running. It must not schedule pods.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::super::context::{Controllers, NodeSpec};
use super::super::objects::def;
use super::conditions::pod_conditions;
use super::failure::{back_off_pull, pull_failed_events, report_pull_failure};
use super::node::update_node_images;
use super::pull::{crashes, forget_pulls, pod_pull_secrets, pull};
use super::reference::normalize;
use crate::images::ImagePullError;
use crate::store::{UpdateMode, ns_name};
use crate::util::{get_path, i64_at, now_rfc3339, str_at};

pub(crate) struct Pulled {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) digest: String,
    pub(crate) crash: bool,
    /// Taken from the node's image cache (`IfNotPresent`/`Never`), not pulled.
    pub(crate) cached: bool,
    /// Already running from an earlier pass (its pod waits on another
    /// container's pull): its status is kept and it is not started again.
    pub(crate) kept: Option<Value>,
    /// Its pull failed: it waits in `ErrImagePull` while the others start.
    pub(crate) failed: Option<ImagePullError>,
}

/// A container of a `Pending` pod that already runs its spec's image.
fn running_status(pod: &Value, ct: &Value) -> Option<Value> {
    if str_at(pod, "status.phase") != "Pending" {
        return None;
    }
    let (repo, suffix) = normalize(str_at(ct, "image"));
    pod.pointer("/status/containerStatuses")
        .and_then(Value::as_array)?
        .iter()
        .find(|s| str_at(s, "name") == str_at(ct, "name"))
        .filter(|s| {
            s.pointer("/state/running").is_some() && str_at(s, "image") == format!("{repo}{suffix}")
        })
        .cloned()
}

fn set_backoff(c: &mut Controllers, uid: &str, key: (&'static str, String, String)) {
    forget_pulls(c, uid);
    let backoff = c
        .kubelet
        .pull_backoff
        .get(uid)
        .map_or(Duration::from_millis(500), |(_, b)| {
            (*b * 2).min(Duration::from_secs(10))
        });
    c.kubelet
        .pull_backoff
        .insert(uid.to_string(), (Instant::now() + backoff, backoff));
    c.queue.add_after(key, backoff);
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
    let mut waiting = Vec::new();
    for (i, ct) in containers.iter().enumerate() {
        let image = str_at(ct, "image").to_string();
        let cname = str_at(ct, "name").to_string();
        if i >= init_count
            && let Some(status) = running_status(pod, ct)
        {
            pulled.push(Pulled {
                name: cname,
                image,
                digest: String::new(),
                crash: false,
                cached: true,
                kept: Some(status),
                failed: None,
            });
            continue;
        }
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
            None => waiting.push(image),
            Some(Ok(p)) => {
                let crash = crashes(c, &image, &p);
                pulled.push(Pulled {
                    name: cname,
                    image,
                    digest: p.digest,
                    crash,
                    cached,
                    kept: None,
                    failed: None,
                });
            }
            // An init container that cannot pull holds the whole pod.
            Some(Err(e)) if i < init_count => {
                set_backoff(c, &uid, key);
                report_pull_failure(c, pod, ct, &e);
                return;
            }
            // Another container's failure does not stop this pod's others.
            Some(Err(e)) => pulled.push(Pulled {
                name: cname,
                image,
                digest: String::new(),
                crash: false,
                cached: false,
                kept: None,
                failed: Some(e),
            }),
        }
    }
    if !waiting.is_empty() {
        // A pull runs in its own task: look again at the next tick.
        c.queue.add_after(key, Duration::ZERO);
        if pod.pointer("/status/containerStatuses").is_none() {
            creating(c, pod, &waiting);
        }
        return;
    }
    if pulled.iter().any(|p| p.failed.is_some()) {
        set_backoff(c, &uid, key);
    } else {
        forget_pulls(c, &uid);
        c.kubelet.pull_backoff.remove(&uid);
    }
    write_started(c, pod, &pulled, init_count);
    update_node_images(c, node);
}

/// The status of one container once its pull is over.
fn container_status(p: &Pulled, init: bool, pod_name: &str, now: &str) -> Value {
    if let Some(kept) = &p.kept {
        return kept.clone();
    }
    let (repo, suffix) = normalize(&p.image);
    if let Some(e) = &p.failed {
        return json!({"name": p.name, "image": format!("{repo}{suffix}"), "imageID": "",
            "ready": false, "started": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": e.to_string()}}});
    }
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
            "message": format!("back-off 10s restarting failed container={} pod={pod_name}", p.name)}});
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
}

/// Writes the pod's status once every pull is over, and the events of each
/// container: started (`Pulled`, `Created`, `Started`), or failed to pull.
fn write_started(c: &mut Controllers, pod: &Value, pulled: &[Pulled], init_count: usize) {
    let (ns, name) = ns_name(pod);
    let uid = str_at(pod, "metadata.uid").to_string();
    let now = now_rfc3339();
    let job_like = str_at(pod, "spec.restartPolicy") != "Always";
    let any_crash = pulled[init_count..].iter().any(|p| p.crash);
    let any_failed = pulled.iter().any(|p| p.failed.is_some());
    let init_statuses: Vec<Value> = pulled[..init_count]
        .iter()
        .map(|p| container_status(p, true, &name, &now))
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
            let mut s = container_status(p, false, &name, &now);
            if p.kept.is_none()
                && p.failed.is_none()
                && let Some(n) = previous(&p.name)
            {
                s["restartCount"] = json!(i64_at(&s, "restartCount", 0) + n);
            }
            s
        })
        .collect();
    // A failure already reported keeps its events from repeating.
    let already_failed = |p: &Pulled| {
        let message = p.failed.as_ref().map(ToString::to_string);
        pod.pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|s| {
                    str_at(s, "name") == p.name
                        && s.pointer("/state/waiting/message").and_then(Value::as_str)
                            == message.as_deref()
                })
            })
    };
    let node_index = c
        .nodes
        .iter()
        .position(|n| n.name == str_at(pod, "spec.nodeName"))
        .unwrap_or(0);
    let pod_ip = match str_at(pod, "status.podIP") {
        "" => {
            let ip = c.kubelet.next_ip;
            c.kubelet.next_ip += 1;
            format!("10.244.{node_index}.{ip}")
        }
        known => known.to_string(),
    };
    let ready = !any_crash && !any_failed;
    let phase = if any_failed {
        "Pending"
    } else if job_like && any_crash {
        "Failed"
    } else {
        "Running"
    };
    let started = match str_at(pod, "status.startTime") {
        "" => now.clone(),
        t => t.to_string(),
    };
    let updated = c
        .store
        .modify(def("", "pods"), &ns, &name, UpdateMode::Status, |o| {
            let mut st = json!({
                "phase": phase,
                "conditions": pod_conditions(ready, &now),
                "hostIP": format!("172.18.0.{}", node_index + 2),
                "hostIPs": [{"ip": format!("172.18.0.{}", node_index + 2)}],
                "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}],
                "startTime": started,
                "qosClass": "BestEffort",
                "containerStatuses": statuses,
            });
            if !init_statuses.is_empty() {
                st["initContainerStatuses"] = json!(init_statuses);
            }
            o["status"] = st;
        });
    let Some(p) = updated else {
        return;
    };
    for pl in pulled.iter().filter(|pl| pl.kept.is_none()) {
        if let Some(e) = &pl.failed {
            if !already_failed(pl) {
                pull_failed_events(c, &p, &pl.image, e);
            }
            continue;
        }
        container_events(c, &p, pl, &name);
    }
    c.kubelet.crash_clock.insert(uid, Instant::now());
}

fn container_events(c: &Controllers, p: &Value, pl: &Pulled, pod_name: &str) {
    let pulled_note = if pl.cached {
        format!(
            "Container image \"{}\" already present on machine",
            pl.image
        )
    } else {
        format!("Successfully pulled image \"{}\"", pl.image)
    };
    c.event(p, "Normal", "Pulled", &pulled_note, "kubelet");
    c.event(
        p,
        "Normal",
        "Created",
        &format!("Created container: {}", pl.name),
        "kubelet",
    );
    c.event(
        p,
        "Normal",
        "Started",
        &format!("Started container {}", pl.name),
        "kubelet",
    );
    if pl.crash {
        c.event(
            p,
            "Warning",
            "BackOff",
            &format!(
                "Back-off restarting failed container {} in pod {pod_name}",
                pl.name
            ),
            "kubelet",
        );
    }
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

/// While images are pulled, containers wait in `ContainerCreating`; a
/// `Pulling` event names each image being pulled (not the cached ones).
pub(crate) fn creating(c: &Controllers, pod: &Value, pulling: &[String]) {
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
        for image in pulling {
            c.event(
                &p,
                "Normal",
                "Pulling",
                &format!("Pulling image \"{image}\""),
                "kubelet",
            );
        }
    }
}
