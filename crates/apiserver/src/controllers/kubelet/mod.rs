//! The simulated scheduler and kubelet: binds pods to nodes that match their
//! `nodeSelector` and required node affinity, "pulls" images by resolving
//! them for the node's platform with the pod's `imagePullSecrets` (honouring
//! `imagePullPolicy` with a per-node image cache), and reports container states:
//! running, `ErrImagePull`, or `CrashLoopBackOff` for images on the crash list.
//! Job pods run to completion.
//!
//! Owns pod status, through its submodules: the Node objects and node fit
//! (`node`), image names as containerd reports them (`reference`), pod
//! conditions (`conditions`), scheduling (`schedule`), pulls and the node image
//! cache (`pull`), starting containers (`start`), pull failures and back-off
//! (`failure`) and running pods (`running`). It must not create or delete pods.

mod conditions;
mod failure;
mod node;
mod pull;
mod reference;
mod running;
mod schedule;
mod start;

pub use self::node::{fits_node, node_object};
pub(crate) use self::pull::Pull;
pub use self::reference::normalize;
use self::running::keep_running;
use self::schedule::schedule;
use self::start::{image_changed, start};
use super::{Controllers, pod_terminal};
use crate::util::{get_path, str_at};

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
