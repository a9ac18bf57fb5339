//! Decoding the Kubernetes protobuf bodies that kubectl's typed clients send
//! (`kubectl create namespace|configmap|secret|serviceaccount|deployment|job|
//! cronjob|role|rolebinding|clusterrole|clusterrolebinding`) into the JSON
//! the rest of the test bed works on.
//!
//! Owns the `k8s\0` envelope (`runtime.Unknown`), the protobuf wire format
//! and a table of field numbers for the messages those commands send. Fields
//! outside the table are dropped, and zero values of non-pointer fields are
//! dropped as Go's `omitempty` would. It must not know about HTTP or the
//! store; responses are always JSON.

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// A protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with the `k8s\0` magic.
    #[error("the body is not a Kubernetes protobuf envelope")]
    NoEnvelope,
    /// The wire data is malformed.
    #[error("malformed protobuf: {0}")]
    Malformed(&'static str),
    /// The kind is not one the test bed decodes.
    #[error("the test bed does not decode protobuf for {0}; send JSON")]
    UnsupportedKind(String),
}

/// How one field's value becomes JSON.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// A string; `""` is dropped.
    Str,
    /// An integer; `0` is dropped (non-pointer field).
    Int,
    /// An integer pointer field: always kept.
    OptInt,
    /// A bool; `false` is dropped.
    Bool,
    /// A bool pointer field: always kept.
    OptBool,
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>` (base64 in JSON).
    MapBytes,
    /// `intstr.IntOrString`.
    IntOrString,
    /// A nested message.
    Msg(&'static str),
}

/// (field number, JSON name, type, repeated).
type Field = (u64, &'static str, Ty, bool);

const OBJECT_META: &[Field] = &[
    (1, "name", Ty::Str, false),
    (2, "generateName", Ty::Str, false),
    (3, "namespace", Ty::Str, false),
    (5, "uid", Ty::Str, false),
    (6, "resourceVersion", Ty::Str, false),
    (11, "labels", Ty::MapStr, false),
    (12, "annotations", Ty::MapStr, false),
    (13, "ownerReferences", Ty::Msg("OwnerReference"), true),
    (14, "finalizers", Ty::Str, true),
];

const POD_SPEC: &[Field] = &[
    (2, "containers", Ty::Msg("Container"), true),
    (3, "restartPolicy", Ty::Str, false),
    (4, "terminationGracePeriodSeconds", Ty::OptInt, false),
    (5, "activeDeadlineSeconds", Ty::OptInt, false),
    (6, "dnsPolicy", Ty::Str, false),
    (7, "nodeSelector", Ty::MapStr, false),
    (8, "serviceAccountName", Ty::Str, false),
    (10, "nodeName", Ty::Str, false),
    (
        15,
        "imagePullSecrets",
        Ty::Msg("LocalObjectReference"),
        true,
    ),
    (19, "schedulerName", Ty::Str, false),
    (20, "initContainers", Ty::Msg("Container"), true),
];

const CONTAINER: &[Field] = &[
    (1, "name", Ty::Str, false),
    (2, "image", Ty::Str, false),
    (3, "command", Ty::Str, true),
    (4, "args", Ty::Str, true),
    (5, "workingDir", Ty::Str, false),
    (6, "ports", Ty::Msg("ContainerPort"), true),
    (7, "env", Ty::Msg("EnvVar"), true),
    (13, "terminationMessagePath", Ty::Str, false),
    (14, "imagePullPolicy", Ty::Str, false),
    (20, "terminationMessagePolicy", Ty::Str, false),
];

const JOB_SPEC: &[Field] = &[
    (1, "parallelism", Ty::OptInt, false),
    (2, "completions", Ty::OptInt, false),
    (3, "activeDeadlineSeconds", Ty::OptInt, false),
    (4, "selector", Ty::Msg("LabelSelector"), false),
    (5, "manualSelector", Ty::OptBool, false),
    (6, "template", Ty::Msg("PodTemplateSpec"), false),
    (7, "backoffLimit", Ty::OptInt, false),
    (8, "ttlSecondsAfterFinished", Ty::OptInt, false),
    (9, "completionMode", Ty::Str, false),
    (10, "suspend", Ty::OptBool, false),
];

const POLICY_RULE: &[Field] = &[
    (1, "verbs", Ty::Str, true),
    (2, "apiGroups", Ty::Str, true),
    (3, "resources", Ty::Str, true),
    (4, "resourceNames", Ty::Str, true),
    (5, "nonResourceURLs", Ty::Str, true),
];

const BINDING: &[Field] = &[
    (1, "metadata", Ty::Msg("ObjectMeta"), false),
    (2, "subjects", Ty::Msg("Subject"), true),
    (3, "roleRef", Ty::Msg("RoleRef"), false),
];

/// The fields of a message, by message name (kinds use their kind name).
fn fields(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "ObjectMeta" => OBJECT_META,
        "OwnerReference" => &[
            (1, "kind", Ty::Str, false),
            (3, "name", Ty::Str, false),
            (4, "uid", Ty::Str, false),
            (5, "apiVersion", Ty::Str, false),
            (6, "controller", Ty::OptBool, false),
            (7, "blockOwnerDeletion", Ty::OptBool, false),
        ],
        "LabelSelector" => &[
            (1, "matchLabels", Ty::MapStr, false),
            (
                2,
                "matchExpressions",
                Ty::Msg("LabelSelectorRequirement"),
                true,
            ),
        ],
        "LabelSelectorRequirement" => &[
            (1, "key", Ty::Str, false),
            (2, "operator", Ty::Str, false),
            (3, "values", Ty::Str, true),
        ],
        "LocalObjectReference" => &[(1, "name", Ty::Str, false)],
        "ObjectReference" => &[
            (1, "kind", Ty::Str, false),
            (2, "namespace", Ty::Str, false),
            (3, "name", Ty::Str, false),
            (4, "uid", Ty::Str, false),
            (5, "apiVersion", Ty::Str, false),
            (6, "resourceVersion", Ty::Str, false),
            (7, "fieldPath", Ty::Str, false),
        ],
        "Namespace" => &[
            (1, "metadata", Ty::Msg("ObjectMeta"), false),
            (2, "spec", Ty::Msg("NamespaceSpec"), false),
        ],
        "NamespaceSpec" => &[(1, "finalizers", Ty::Str, true)],
        "ConfigMap" => &[
            (1, "metadata", Ty::Msg("ObjectMeta"), false),
            (2, "data", Ty::MapStr, false),
            (3, "binaryData", Ty::MapBytes, false),
            (4, "immutable", Ty::OptBool, false),
        ],
        "Secret" => &[
            (1, "metadata", Ty::Msg("ObjectMeta"), false),
            (2, "data", Ty::MapBytes, false),
            (3, "type", Ty::Str, false),
            (4, "stringData", Ty::MapStr, false),
            (5, "immutable", Ty::OptBool, false),
        ],
        "ServiceAccount" => &[
            (1, "metadata", Ty::Msg("ObjectMeta"), false),
            (2, "secrets", Ty::Msg("ObjectReference"), true),
            (3, "imagePullSecrets", Ty::Msg("LocalObjectReference"), true),
            (4, "automountServiceAccountToken", Ty::OptBool, false),
        ],
        "PodTemplateSpec" => &[
            (1, "metadata", Ty::Msg("ObjectMeta"), false),
            (2, "spec", Ty::Msg("PodSpec"), false),
        ],
        "JobTemplateSpec" => &[
            (1, "metadata", Ty::Msg("ObjectMeta"), false),
            (2, "spec", Ty::Msg("JobSpec"), false),
        ],
        "PodSpec" => POD_SPEC,
        "Container" => CONTAINER,
        "ContainerPort" => &[
            (1, "name", Ty::Str, false),
            (2, "hostPort", Ty::Int, false),
            (3, "containerPort", Ty::Int, false),
            (4, "protocol", Ty::Str, false),
            (5, "hostIP", Ty::Str, false),
        ],
        "EnvVar" => &[(1, "name", Ty::Str, false), (2, "value", Ty::Str, false)],
        "Deployment" => &[
            (1, "metadata", Ty::Msg("ObjectMeta"), false),
            (2, "spec", Ty::Msg("DeploymentSpec"), false),
        ],
        "DeploymentSpec" => &[
            (1, "replicas", Ty::OptInt, false),
            (2, "selector", Ty::Msg("LabelSelector"), false),
            (3, "template", Ty::Msg("PodTemplateSpec"), false),
            (4, "strategy", Ty::Msg("DeploymentStrategy"), false),
            (5, "minReadySeconds", Ty::Int, false),
            (6, "revisionHistoryLimit", Ty::OptInt, false),
            (7, "paused", Ty::Bool, false),
            (9, "progressDeadlineSeconds", Ty::OptInt, false),
        ],
        "DeploymentStrategy" => &[
            (1, "type", Ty::Str, false),
            (
                2,
                "rollingUpdate",
                Ty::Msg("RollingUpdateDeployment"),
                false,
            ),
        ],
        "RollingUpdateDeployment" => &[
            (1, "maxUnavailable", Ty::IntOrString, false),
            (2, "maxSurge", Ty::IntOrString, false),
        ],
        "Job" => &[
            (1, "metadata", Ty::Msg("ObjectMeta"), false),
            (2, "spec", Ty::Msg("JobSpec"), false),
        ],
        "JobSpec" => JOB_SPEC,
        "CronJob" => &[
            (1, "metadata", Ty::Msg("ObjectMeta"), false),
            (2, "spec", Ty::Msg("CronJobSpec"), false),
        ],
        "CronJobSpec" => &[
            (1, "schedule", Ty::Str, false),
            (2, "startingDeadlineSeconds", Ty::OptInt, false),
            (3, "concurrencyPolicy", Ty::Str, false),
            (4, "suspend", Ty::OptBool, false),
            (5, "jobTemplate", Ty::Msg("JobTemplateSpec"), false),
            (6, "successfulJobsHistoryLimit", Ty::OptInt, false),
            (7, "failedJobsHistoryLimit", Ty::OptInt, false),
            (8, "timeZone", Ty::Str, false),
        ],
        "Role" | "ClusterRole" => &[
            (1, "metadata", Ty::Msg("ObjectMeta"), false),
            (2, "rules", Ty::Msg("PolicyRule"), true),
        ],
        "PolicyRule" => POLICY_RULE,
        "RoleBinding" | "ClusterRoleBinding" => BINDING,
        "Subject" => &[
            (1, "kind", Ty::Str, false),
            (2, "apiGroup", Ty::Str, false),
            (3, "name", Ty::Str, false),
            (4, "namespace", Ty::Str, false),
        ],
        "SelfSubjectAccessReview" => &[
            (1, "metadata", Ty::Msg("ObjectMeta"), false),
            (2, "spec", Ty::Msg("SelfSubjectAccessReviewSpec"), false),
        ],
        "SelfSubjectAccessReviewSpec" => &[
            (
                1,
                "resourceAttributes",
                Ty::Msg("ResourceAttributes"),
                false,
            ),
            (
                2,
                "nonResourceAttributes",
                Ty::Msg("NonResourceAttributes"),
                false,
            ),
        ],
        "ResourceAttributes" => &[
            (1, "namespace", Ty::Str, false),
            (2, "verb", Ty::Str, false),
            (3, "group", Ty::Str, false),
            (4, "version", Ty::Str, false),
            (5, "resource", Ty::Str, false),
            (6, "subresource", Ty::Str, false),
            (7, "name", Ty::Str, false),
        ],
        "NonResourceAttributes" => &[(1, "path", Ty::Str, false), (2, "verb", Ty::Str, false)],
        "RoleRef" => &[
            (1, "apiGroup", Ty::Str, false),
            (2, "kind", Ty::Str, false),
            (3, "name", Ty::Str, false),
        ],
        _ => return None,
    })
}

/// One wire value.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], i: &mut usize) -> Result<u64, ProtobufError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b
            .get(*i)
            .ok_or(ProtobufError::Malformed("truncated varint"))?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(ProtobufError::Malformed("varint too long"))
}

/// Splits a message into (field number, value) pairs.
fn parse(b: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, ProtobufError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (field, wire) = (key >> 3, key & 7);
        let value = match wire {
            0 => Wire::Varint(varint(b, &mut i)?),
            2 => {
                let len = usize::try_from(varint(b, &mut i)?)
                    .map_err(|_| ProtobufError::Malformed("length"))?;
                let end = i
                    .checked_add(len)
                    .filter(|e| *e <= b.len())
                    .ok_or(ProtobufError::Malformed("truncated field"))?;
                let v = &b[i..end];
                i = end;
                Wire::Bytes(v)
            }
            1 => {
                i += 8;
                continue;
            }
            5 => {
                i += 4;
                continue;
            }
            _ => return Err(ProtobufError::Malformed("unknown wire type")),
        };
        out.push((field, value));
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtobufError::Malformed("invalid UTF-8"))
}

fn map_entry(b: &[u8], bytes: bool) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = json!("");
    for (f, w) in parse(b)? {
        match (f, w) {
            (1, Wire::Bytes(k)) => key = text(k)?,
            (2, Wire::Bytes(v)) if bytes => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(v));
            }
            (2, Wire::Bytes(v)) => value = json!(text(v)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn int_or_string(b: &[u8]) -> Result<Value, ProtobufError> {
    let (mut kind, mut int, mut s) = (0, 0i64, String::new());
    for (f, w) in parse(b)? {
        match (f, w) {
            (1, Wire::Varint(v)) => kind = v,
            (2, Wire::Varint(v)) => int = v as i32 as i64,
            (3, Wire::Bytes(v)) => s = text(v)?,
            _ => {}
        }
    }
    Ok(if kind == 1 { json!(s) } else { json!(int) })
}

fn message(name: &str, b: &[u8]) -> Result<Value, ProtobufError> {
    let table = fields(name).ok_or_else(|| ProtobufError::UnsupportedKind(name.to_string()))?;
    let mut out = Map::new();
    for (num, wire) in parse(b)? {
        let Some(&(_, json_name, ty, repeated)) = table.iter().find(|f| f.0 == num) else {
            continue;
        };
        let value = match (ty, wire) {
            (Ty::Str, Wire::Bytes(v)) => {
                let s = text(v)?;
                if s.is_empty() && !repeated {
                    continue;
                }
                json!(s)
            }
            (Ty::Int, Wire::Varint(0)) | (Ty::Bool, Wire::Varint(0)) => continue,
            (Ty::Int | Ty::OptInt, Wire::Varint(v)) => json!(v as i64),
            (Ty::Bool | Ty::OptBool, Wire::Varint(v)) => json!(v != 0),
            (Ty::MapStr | Ty::MapBytes, Wire::Bytes(v)) => {
                let (k, val) = map_entry(v, matches!(ty, Ty::MapBytes))?;
                let m = out.entry(json_name).or_insert_with(|| json!({}));
                if let Some(m) = m.as_object_mut() {
                    m.insert(k, val);
                }
                continue;
            }
            (Ty::IntOrString, Wire::Bytes(v)) => int_or_string(v)?,
            (Ty::Msg(inner), Wire::Bytes(v)) => {
                let m = message(inner, v)?;
                if !repeated && m.as_object().is_some_and(Map::is_empty) {
                    continue;
                }
                m
            }
            _ => return Err(ProtobufError::Malformed("unexpected wire type for field")),
        };
        if repeated {
            let list = out.entry(json_name).or_insert_with(|| json!([]));
            if let Some(l) = list.as_array_mut() {
                l.push(value);
            }
        } else {
            out.insert(json_name.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a `application/vnd.kubernetes.protobuf` body to the JSON object
/// it stands for, with `apiVersion` and `kind` set.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or(ProtobufError::NoEnvelope)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (f, w) in parse(rest)? {
        match (f, w) {
            (1, Wire::Bytes(type_meta)) => {
                for (tf, tw) in parse(type_meta)? {
                    match (tf, tw) {
                        (1, Wire::Bytes(v)) => api_version = text(v)?,
                        (2, Wire::Bytes(v)) => kind = text(v)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(v)) => raw = v,
            _ => {}
        }
    }
    if kind.is_empty() || fields(&kind).is_none() || kind.ends_with("Spec") {
        return Err(ProtobufError::UnsupportedKind(if kind.is_empty() {
            "an object without a kind".into()
        } else {
            kind
        }));
    }
    let mut obj = message(&kind, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(num << 3 | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    fn varint_field(num: u64, v: u8) -> Vec<u8> {
        vec![(num << 3) as u8, v]
    }

    /// A ConfigMap as kubectl's typed client encodes it, with the empty
    /// non-pointer fields it always sends.
    #[test]
    fn decodes_a_config_map_envelope() {
        let meta = [field(1, b"cm"), field(2, b""), varint_field(7, 0)].concat();
        let entry = [field(1, b"k"), field(2, b"v")].concat();
        let raw = [field(1, &meta), field(2, &entry)].concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn pointer_fields_keep_zero_values() {
        let spec = [varint_field(1, 0), varint_field(5, 0)].concat();
        let raw = field(2, &spec);
        let type_meta = [field(1, b"apps/v1"), field(2, b"Deployment")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        assert_eq!(decode(&body).unwrap()["spec"], json!({"replicas": 0}));
    }

    fn captured(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/protobuf/{name}.b64",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("fixture exists");
        let body = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .expect("fixture is base64");
        decode(&body).expect("kubectl's body decodes")
    }

    /// Bodies captured from kubectl v1.32.4 (see the fixtures' README).
    #[test]
    fn decodes_what_kubectl_sends() {
        assert_eq!(
            captured("create-cronjob"),
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cjone"},
                "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"metadata": {"name": "cjone"},
                    "spec": {"template": {"spec": {
                        "containers": [{"name": "cjone", "image": "imgtwo:2", "command": ["echo", "hi"]}],
                        "restartPolicy": "OnFailure"}}}}}})
        );
        assert_eq!(
            captured("create-deployment"),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "depone", "labels": {"app": "depone"}},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "depone"}},
                    "template": {"metadata": {"labels": {"app": "depone"}}, "spec": {"containers": [
                        {"name": "imgone", "image": "imgone:1", "ports": [{"containerPort": 8080}]}]}}}})
        );
        assert_eq!(
            captured("create-rolebinding")["subjects"],
            json!([
                {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"},
                {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "g1"},
                {"kind": "ServiceAccount", "name": "saone", "namespace": "default"}
            ])
        );
        let secret = captured("create-secret-docker-registry");
        assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
        let config = base64::engine::general_purpose::STANDARD
            .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
            .unwrap();
        assert!(String::from_utf8(config).unwrap().contains("\"r.io\""));
    }

    #[test]
    fn rejects_unknown_kinds_and_bad_envelopes() {
        assert!(matches!(decode(b"{}"), Err(ProtobufError::NoEnvelope)));
        let type_meta = [field(1, b"v1"), field(2, b"Pod")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta)].concat();
        assert!(matches!(decode(&body), Err(ProtobufError::UnsupportedKind(k)) if k == "Pod"));
    }
}
