//! The simulated nodes as API objects: the Node object for a [`NodeSpec`], whether
//! a pod fits a node (`nodeSelector` and required node affinity), and the node's
//! `status.images`.
//!
//! Owns what a node looks like. It must not touch pods.

use serde_json::{Value, json};

use super::super::context::{Controllers, NodeSpec};
use super::super::objects::def;
use super::reference::normalize;
use crate::selector::LabelSelector;
use crate::store::UpdateMode;
use crate::util::{get_path, now_rfc3339};

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

pub(crate) fn node_labels(n: &NodeSpec) -> Value {
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

pub(crate) fn update_node_images(c: &Controllers, node: &NodeSpec) {
    let mut images: Vec<Value> = c
        .kubelet
        .image_cache
        .iter()
        .filter(|((n, _), _)| *n == node.name)
        .map(|((_, image), pulled)| {
            let (repo, suffix) = normalize(image);
            let digest = &pulled.digest;
            // An image pulled as `repo:tag@digest` is known by its digest only.
            let names = if suffix.contains('@') {
                json!([format!("{repo}@{digest}")])
            } else {
                json!([format!("{repo}@{digest}"), format!("{repo}{suffix}")])
            };
            json!({"names": names, "sizeBytes": 1_000_000})
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
