//! Pods that already run: Job pods complete (`Succeeded`), and crash-looping
//! containers restart, their count rising every [`CRASH_PERIOD`].
//!
//! Owns the life of a started pod. It must not pull images.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::super::context::Controllers;
use super::super::objects::def;
use super::conditions::pod_conditions;
use crate::store::{UpdateMode, ns_name};
use crate::util::{i64_at, now_rfc3339, str_at};

/// How often a crash-looping container restarts.
pub(crate) const CRASH_PERIOD: Duration = Duration::from_millis(500);

pub(crate) fn keep_running(c: &mut Controllers, pod: &Value) {
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
    let key = ("pods", ns.clone(), name.clone());
    let since = c.kubelet.crash_clock.get(&uid).map(Instant::elapsed);
    if let Some(since) = since
        && since < CRASH_PERIOD
    {
        c.queue.add_after(key, CRASH_PERIOD - since);
        return;
    }
    c.kubelet.crash_clock.insert(uid, Instant::now());
    c.queue.add_after(key, CRASH_PERIOD);
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
