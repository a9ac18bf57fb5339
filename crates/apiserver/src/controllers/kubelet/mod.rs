//! The simulated scheduler and kubelet: binds pods to nodes that match their
//! `nodeSelector` and required node affinity, "pulls" images by resolving
//! them for the node's platform with the pod's `imagePullSecrets` (honouring
//! `imagePullPolicy` with a per-node image cache), and reports container states:
//! running, `ErrImagePull`, or `CrashLoopBackOff` for images on the crash list.
//! Job pods run to completion.
//!
//! Owns pod status, through its submodules: the Node objects and node fit
//! (`node`), image names as containerd reports them (`reference`), pod
//! conditions (`conditions`), scheduling (`schedule`), pulls (`pull`),
//! starting containers (`start`), pull failures and back-off (`failure`),
//! running pods (`running`) and the kubelets' memory (`state`). Each pod is
//! reconciled when it changes or when a timer it set is due (a pull in flight,
//! a back-off, a crash-loop restart). It must not create or delete pods.

mod conditions;
mod failure;
mod node;
mod pull;
mod reference;
mod running;
mod schedule;
mod start;
pub(crate) mod state;

pub use self::node::{fits_node, node_object};
pub use self::reference::normalize;
use self::running::keep_running;
use self::schedule::schedule;
use self::start::{image_changed, start};
use serde_json::Value;

use super::context::Controllers;
use super::objects::pod_terminal;
use crate::util::{get_path, str_at};

/// One kubelet step for one pod: schedule it if unbound, then start its
/// containers (or restart them for a new image) or keep it running.
pub fn reconcile_pod(c: &mut Controllers, pod: &Value) {
    if pod_terminal(pod) {
        return;
    }
    let Some(pod) = schedule(c, pod.clone()) else {
        return;
    };
    let node_name = str_at(&pod, "spec.nodeName").to_string();
    let Some(node) = c.nodes.iter().find(|n| n.name == node_name).cloned() else {
        return;
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
