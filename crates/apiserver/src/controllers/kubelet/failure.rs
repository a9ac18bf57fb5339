//! Failed pulls as a kubelet reports them: `ErrImagePull` with the registry's
//! message, then `ImagePullBackOff` until the next attempt, with their events.
//!
//! Owns the waiting states of containers whose image did not pull. It must not
//! decide when to retry (that is `start`'s back-off clock).

use serde_json::{Value, json};

use super::super::context::Controllers;
use super::super::objects::def;
use super::conditions::pod_conditions;
use super::reference::normalize;
use crate::images::ImagePullError;
use crate::store::{UpdateMode, ns_name};
use crate::util::{get_path, now_rfc3339, str_at};

/// Between pull attempts a real kubelet reports `ImagePullBackOff`; the next
/// failed attempt reports `ErrImagePull` again.
pub(crate) fn back_off_pull(c: &Controllers, pod: &Value) {
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

pub(crate) fn report_pull_failure(c: &Controllers, pod: &Value, ct: &Value, e: &ImagePullError) {
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
        pull_failed_events(c, &p, &image, e);
    }
}

/// The events of a failed pull: `Pulling`, then the failure and `ErrImagePull`.
pub(crate) fn pull_failed_events(c: &Controllers, pod: &Value, image: &str, e: &ImagePullError) {
    c.event(
        pod,
        "Normal",
        "Pulling",
        &format!("Pulling image \"{image}\""),
        "kubelet",
    );
    c.event(
        pod,
        "Warning",
        "Failed",
        &format!("Failed to pull image \"{image}\": {e}"),
        "kubelet",
    );
    c.event(pod, "Warning", "Failed", "Error: ErrImagePull", "kubelet");
}
