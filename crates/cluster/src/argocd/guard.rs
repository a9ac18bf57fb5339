//! The guard rail for workloads Argo CD manages: a workload enrolled for a direct
//! patch that carries Argo CD's tracking annotation or label gets a warning in the
//! report and a Warning Event naming the Application to enrol instead, since Argo
//! CD's self-heal reverts a direct patch.
//!
//! Owns asking the core's [`managed_by_argo`] with the Applications the pass read,
//! and sending the Event. The workload is still refreshed as enrolled (the user may
//! have turned self-heal off); the warning says what will happen. Must not decide:
//! whether Argo CD manages it and the wording are the core's.

use freshet_core::argocd::guard::{Workload, managed_by_argo};
use kube::runtime::events::EventType;

use super::Read;
use crate::errors::error_chain;
use crate::events::{self, Regarding};
use crate::pass::Refresher;
use crate::workloads::{ReadWorkload, api_version, kind_name};

impl Refresher {
    /// The warning for an enrolled workload Argo CD manages (with its Event, unless
    /// this is a dry run); `None` when Argo CD does not manage it.
    pub(crate) async fn argocd_guard(&self, w: &ReadWorkload, read: &Read) -> Option<String> {
        let group = api_version(w.workload.kind)
            .split_once('/')
            .map_or("", |(g, _)| g);
        let subject = Workload {
            group,
            kind: kind_name(w.workload.kind),
            namespace: &w.workload.namespace,
            name: &w.workload.name,
            labels: &w.labels,
            annotations: &w.workload.annotations,
        };
        let managed = managed_by_argo(&subject, |app| read.knows(app))?;
        let warning = managed.warning(&subject).to_string();
        tracing::warn!(
            kind = subject.kind, namespace = subject.namespace, name = subject.name,
            application = %managed.application, "{warning}"
        );
        if !self.options().dry_run {
            let regarding = Regarding {
                kind: w.workload.kind,
                namespace: &w.workload.namespace,
                name: &w.workload.name,
                uid: w.uid.as_deref(),
            };
            if let Err(e) = self
                .writer()
                .events()
                .publish(
                    &regarding,
                    EventType::Warning,
                    events::ARGO_MANAGED,
                    &warning,
                )
                .await
            {
                tracing::warn!(error = %error_chain(&e), "event not recorded");
            }
        }
        Some(warning)
    }
}
