//! Defaulting and validation per kind, applied to create and update requests
//! before they reach the store (what the real API server's registry
//! strategies do).
//!
//! Owns kind-specific defaults (replicas, strategies, `imagePullPolicy`,
//! Job selectors) and the few kind-specific validations freshet's tests depend
//! on, after the generic ones of `validation` (metadata, Events). It must
//! not touch the store or HTTP.

use serde_json::{Value, json};

use crate::resources::ResourceDef;
use crate::selector::LabelSelector;
use crate::status::ApiError;
use crate::util::{ensure_obj, get_path, str_at};

/// The default `imagePullPolicy` for an image reference, as Kubernetes picks it.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_pod_spec(spec: &mut Value, restart: &str) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    m.entry("restartPolicy").or_insert(json!(restart));
    m.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    m.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    m.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    m.entry("securityContext").or_insert(json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                let image = str_at(c, "image").to_string();
                if let Some(cm) = c.as_object_mut() {
                    cm.entry("imagePullPolicy")
                        .or_insert(json!(default_pull_policy(&image)));
                    cm.entry("terminationMessagePath")
                        .or_insert(json!("/dev/termination-log"));
                    cm.entry("terminationMessagePolicy")
                        .or_insert(json!("File"));
                    cm.entry("resources").or_insert(json!({}));
                }
            }
        }
    }
}

fn default_template(obj: &mut Value, path: &str, restart: &str) {
    if let Some(spec) = obj.pointer_mut(path) {
        default_pod_spec(spec, restart);
    }
}

fn validate_template(
    def: &ResourceDef,
    obj: &Value,
    prefix: &str,
    name: &str,
) -> Result<(), ApiError> {
    let spec_path = format!("{prefix}.spec");
    let containers = get_path(obj, &format!("{spec_path}.containers")).and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        return Err(ApiError::invalid(
            def,
            name,
            format!("{spec_path}.containers: Required value"),
        ));
    };
    for (i, c) in containers.iter().enumerate() {
        if str_at(c, "name").is_empty() {
            return Err(ApiError::invalid(
                def,
                name,
                format!("{spec_path}.containers[{i}].name: Required value"),
            ));
        }
        if str_at(c, "image").is_empty() {
            return Err(ApiError::invalid(
                def,
                name,
                format!("{spec_path}.containers[{i}].image: Required value"),
            ));
        }
    }
    Ok(())
}

fn validate_selector(def: &ResourceDef, obj: &Value, name: &str) -> Result<(), ApiError> {
    let Some(sel) = get_path(obj, "spec.selector").filter(|s| s.is_object()) else {
        return Err(ApiError::invalid(
            def,
            name,
            "spec.selector: Required value",
        ));
    };
    let sel = LabelSelector::from_object(sel);
    if sel.is_empty() {
        return Err(ApiError::invalid(
            def,
            name,
            "spec.selector: Invalid value: \"null\": empty selector is invalid for deployment",
        ));
    }
    if !sel.matches_labels(get_path(obj, "spec.template.metadata.labels")) {
        return Err(ApiError::invalid(
            def,
            name,
            "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`",
        ));
    }
    Ok(())
}

/// The simulated validating admission webhook of the test bed (a policy engine
/// refusing images): `Err` when a container of `obj`'s pod (or pod template,
/// or a CronJob's job template) names an image containing one of `denied`.
/// Denied as a webhook without its own status code is: 400.
pub fn deny_images(obj: &Value, denied: &[String]) -> Result<(), ApiError> {
    if denied.is_empty() {
        return Ok(());
    }
    let specs = [
        "/spec",
        "/spec/template/spec",
        "/spec/jobTemplate/spec/template/spec",
    ];
    for spec in specs {
        for list in ["containers", "initContainers"] {
            let containers = obj
                .pointer(&format!("{spec}/{list}"))
                .and_then(Value::as_array);
            for c in containers.into_iter().flatten() {
                let image = str_at(c, "image");
                if denied
                    .iter()
                    .any(|d| !d.is_empty() && image.contains(d.as_str()))
                {
                    return Err(ApiError::BadRequest(format!(
                        "admission webhook \"images.testbed.freshet.io\" denied the request: image {image:?} is not allowed"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Applies defaults and validation to an object about to be created or
/// replaced. `uid` is the uid the object will have (for Job selectors).
pub fn admit(def: &ResourceDef, obj: &mut Value, creating: bool) -> Result<(), ApiError> {
    let name = str_at(obj, "metadata.name").to_string();
    let mut causes = crate::validation::object_meta(def, obj, creating);
    if def.storage == "events" {
        causes.extend(crate::validation::event(def, obj));
    }
    if !causes.is_empty() {
        // A real server names the internal kind: `Event`, even through events.k8s.io.
        let native = ResourceDef::by_storage(def.storage);
        return Err(ApiError::invalid_causes(native, &name, causes));
    }
    match (def.group, def.kind) {
        ("", "Namespace") => {
            ensure_obj(obj, "metadata.labels")
                .insert("kubernetes.io/metadata.name".into(), json!(name));
            ensure_obj(obj, "spec")
                .entry("finalizers")
                .or_insert(json!(["kubernetes"]));
            if creating {
                obj["status"] = json!({"phase": "Active"});
            }
        }
        ("", "Pod") => {
            validate_template(def, obj, "", &name)
                .map_err(|_| ApiError::invalid(def, &name, "spec.containers: Required value"))?;
            default_template(obj, "/spec", "Always");
            if creating {
                obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            }
        }
        ("apps", "Deployment") => {
            validate_selector(def, obj, &name)?;
            validate_template(def, obj, "spec.template", &name)?;
            let spec = ensure_obj(obj, "spec");
            spec.entry("replicas").or_insert(json!(1));
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("progressDeadlineSeconds").or_insert(json!(600));
            let strategy = spec.entry("strategy").or_insert(json!({}));
            if !strategy.is_object() {
                *strategy = json!({});
            }
            let s = strategy.as_object_mut().expect("object");
            s.entry("type").or_insert(json!("RollingUpdate"));
            if s.get("type") == Some(&json!("RollingUpdate")) {
                let ru = s.entry("rollingUpdate").or_insert(json!({}));
                if let Some(ru) = ru.as_object_mut() {
                    ru.entry("maxSurge").or_insert(json!("25%"));
                    ru.entry("maxUnavailable").or_insert(json!("25%"));
                }
            }
            default_template(obj, "/spec/template/spec", "Always");
        }
        ("apps", "ReplicaSet") => {
            validate_selector(def, obj, &name)?;
            ensure_obj(obj, "spec")
                .entry("replicas")
                .or_insert(json!(1));
            default_template(obj, "/spec/template/spec", "Always");
        }
        ("apps", "StatefulSet") => {
            validate_selector(def, obj, &name)?;
            validate_template(def, obj, "spec.template", &name)?;
            let spec = ensure_obj(obj, "spec");
            spec.entry("replicas").or_insert(json!(1));
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("podManagementPolicy")
                .or_insert(json!("OrderedReady"));
            spec.entry("updateStrategy")
                .or_insert(json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
            default_template(obj, "/spec/template/spec", "Always");
        }
        ("apps", "DaemonSet") => {
            validate_selector(def, obj, &name)?;
            validate_template(def, obj, "spec.template", &name)?;
            let spec = ensure_obj(obj, "spec");
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("updateStrategy").or_insert(
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            default_template(obj, "/spec/template/spec", "Always");
        }
        ("batch", "Job") => {
            validate_template(def, obj, "spec.template", &name)?;
            let uid = str_at(obj, "metadata.uid").to_string();
            let manual =
                get_path(obj, "spec.manualSelector").and_then(Value::as_bool) == Some(true);
            let spec = ensure_obj(obj, "spec");
            spec.entry("parallelism").or_insert(json!(1));
            spec.entry("completions").or_insert(json!(1));
            spec.entry("backoffLimit").or_insert(json!(6));
            spec.entry("completionMode").or_insert(json!("NonIndexed"));
            spec.entry("suspend").or_insert(json!(false));
            if creating && !manual && !uid.is_empty() {
                spec.insert(
                    "selector".into(),
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
                );
                let labels = ensure_obj(obj, "spec.template.metadata.labels");
                labels.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
                labels.insert("controller-uid".into(), json!(uid));
                labels.insert("batch.kubernetes.io/job-name".into(), json!(name));
                labels.insert("job-name".into(), json!(name));
            }
            default_template(obj, "/spec/template/spec", "Never");
        }
        ("batch", "CronJob") => {
            if str_at(obj, "spec.schedule").is_empty() {
                return Err(ApiError::invalid(
                    def,
                    &name,
                    "spec.schedule: Required value",
                ));
            }
            validate_template(def, obj, "spec.jobTemplate.spec.template", &name)?;
            let spec = ensure_obj(obj, "spec");
            spec.entry("concurrencyPolicy").or_insert(json!("Allow"));
            spec.entry("suspend").or_insert(json!(false));
            spec.entry("successfulJobsHistoryLimit").or_insert(json!(3));
            spec.entry("failedJobsHistoryLimit").or_insert(json!(1));
            default_template(obj, "/spec/jobTemplate/spec/template/spec", "Never");
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults_like_kubernetes() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("localhost:5000/app", "Always"),
            ("localhost:5000/app:v1", "IfNotPresent"),
            ("app@sha256:abc", "IfNotPresent"),
        ] {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn deployment_without_selector_is_invalid() {
        let def = ResourceDef::find("apps", "v1", "deployments").unwrap();
        let mut obj = json!({"metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}});
        let err = admit(def, &mut obj, true).unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(
            err.to_status()["message"],
            "Deployment.apps \"x\" is invalid: spec.selector: Required value"
        );
    }

    #[test]
    fn the_simulated_webhook_denies_listed_images_in_pods_templates_and_job_templates() {
        let denied = vec!["@sha256:bad".to_owned()];
        let c = |image: &str| json!([{"name": "a", "image": image}]);
        for obj in [
            json!({"spec": {"containers": c("r/x:1@sha256:bad")}}),
            json!({"spec": {"template": {"spec": {"initContainers": c("r/x@sha256:bad")}}}}),
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": c("r/x:1@sha256:bad")}}}}}}),
        ] {
            let err = deny_images(&obj, &denied).unwrap_err();
            assert_eq!(err.code(), 400, "{obj}");
            assert!(err.to_string().contains("denied the request"), "{err}");
        }
        let fine = json!({"spec": {"template": {"spec": {"containers": c("r/x:1")}}}});
        deny_images(&fine, &denied).unwrap();
        deny_images(&json!({"spec": {"containers": c("r/x:1@sha256:bad")}}), &[]).unwrap();
    }
}
