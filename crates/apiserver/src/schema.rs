//! Typed decoding of writes: an object of a built-in kind must decode into its
//! `k8s-openapi` type, as a real server decodes into its Go structs, and a
//! failure is told in the words of the decoder a real server would have used:
//!
//! - a create or update body goes through Go's JSON decoder: 400 BadRequest,
//!   `Deployment in version "v1" cannot be handled as a Deployment: json: cannot
//!   unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32`;
//! - a JSON merge patch or JSON patch result also goes through it, and is a
//!   422 ` "" is invalid: patch: Invalid value: "<patched object>": json: …`;
//! - a strategic merge patch result goes through the unstructured converter:
//!   422 ` "" is invalid: patch: Invalid value: "map[spec:map[replicas:three]]":
//!   unrecognized type: int32`;
//! - a server-side apply goes through the structured-merge-diff type converter:
//!   500 `failed to create typed patch object (ns/name; apps/v1, Kind=Deployment):
//!   .spec.replicas: expected numeric (int or float), got string`.
//!
//! Owns the mapping from a serde decoding failure (with its path, from
//! `serde_path_to_error`) to those messages. The Go struct that holds a field
//! is found by decoding again with the parent replaced by `true`, whose error
//! names the expected type; that happens only on the failure path. It must not
//! validate values (that is `validation` and `admission`) nor touch the store.

use serde_json::Value;
use serde_path_to_error::Segment;

use crate::gotext;
use crate::patch::MERGE_KEYS;
use crate::resources::ResourceDef;
use crate::status::{ApiError, Cause};

/// Which of a real server's decoders a write goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// Go's JSON decoder (create, update, JSON merge patch, JSON patch).
    Json,
    /// `runtime.DefaultUnstructuredConverter` (strategic merge patch).
    Unstructured,
    /// structured-merge-diff's typed conversion (server-side apply).
    Apply,
}

/// What the decoder found where it expected something else.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    String,
    Number(String),
    Bool,
    Object,
    Array,
    Null,
}

/// A value of the wrong type, located as Go's decoder locates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The Go struct holding the field (`DeploymentSpec`).
    go_struct: String,
    /// The JSON field names from the top, without indices and map keys
    /// (`spec.template.spec.containers.image`).
    go_field: String,
    /// The path as structured-merge-diff prints it (`.spec.replicas`).
    apply_path: String,
    /// The Go type the field has (`int32`, `[]v1.Container`).
    go_type: String,
    found: Found,
    /// The offending value.
    value: Value,
}

type DecodeError = serde_path_to_error::Error<serde_json::Error>;

fn decode<T: serde::de::DeserializeOwned>(v: &Value) -> Result<(), DecodeError> {
    serde_path_to_error::deserialize::<_, T>(v).map(|_| ())
}

/// Decodes `obj` (the stored form) as the typed object of `def`'s storage;
/// `None` for kinds without a typed schema (custom resources, reviews).
fn decode_as(def: &ResourceDef, obj: &Value) -> Option<Result<(), DecodeError>> {
    use k8s_openapi::api::{apps, batch, coordination, core, rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    Some(match def.storage {
        "namespaces" => decode::<core::v1::Namespace>(obj),
        "nodes" => decode::<core::v1::Node>(obj),
        "pods" => decode::<core::v1::Pod>(obj),
        "secrets" => decode::<core::v1::Secret>(obj),
        "serviceaccounts" => decode::<core::v1::ServiceAccount>(obj),
        "configmaps" => decode::<core::v1::ConfigMap>(obj),
        "events" => decode::<core::v1::Event>(obj),
        "deployments.apps" => decode::<apps::v1::Deployment>(obj),
        "statefulsets.apps" => decode::<apps::v1::StatefulSet>(obj),
        "daemonsets.apps" => decode::<apps::v1::DaemonSet>(obj),
        "replicasets.apps" => decode::<apps::v1::ReplicaSet>(obj),
        "controllerrevisions.apps" => decode::<apps::v1::ControllerRevision>(obj),
        "cronjobs.batch" => decode::<batch::v1::CronJob>(obj),
        "jobs.batch" => decode::<batch::v1::Job>(obj),
        "leases.coordination.k8s.io" => decode::<coordination::v1::Lease>(obj),
        "roles.rbac.authorization.k8s.io" => decode::<rbac::v1::Role>(obj),
        "rolebindings.rbac.authorization.k8s.io" => decode::<rbac::v1::RoleBinding>(obj),
        "clusterroles.rbac.authorization.k8s.io" => decode::<rbac::v1::ClusterRole>(obj),
        "clusterrolebindings.rbac.authorization.k8s.io" => {
            decode::<rbac::v1::ClusterRoleBinding>(obj)
        }
        "customresourcedefinitions.apiextensions.k8s.io" => {
            decode::<apiext::CustomResourceDefinition>(obj)
        }
        _ => return None,
    })
}

/// Checks that `obj` (the stored form of `def`) decodes into its typed
/// object; on failure, where and what, as Go's decoder reports it.
pub fn check(def: &ResourceDef, obj: &Value) -> Result<(), Box<Mismatch>> {
    let Some(Err(err)) = decode_as(def, obj) else {
        return Ok(());
    };
    Err(Box::new(locate(def, obj, &err)))
}

/// `check`, turned into the answer a real server gives for `decoder`.
/// `patch` is the patch document (strategic merge shows it, not the result).
pub fn check_write(
    def: &ResourceDef,
    obj: &Value,
    decoder: Decoder,
    patch: Option<&Value>,
) -> Result<(), ApiError> {
    check(def, obj).map_err(|m| m.to_api_error(def, obj, decoder, patch))
}

fn segments(err: &DecodeError) -> Vec<Segment> {
    err.path().iter().cloned().collect()
}

/// Parses serde's `invalid type: string "x", expected i32`.
fn parse_serde(msg: &str) -> Option<(Found, String)> {
    let rest = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))?;
    let (unexpected, expected) = rest.rsplit_once(", expected ")?;
    let literal = |u: &str| u.split('`').nth(1).map(str::to_string).unwrap_or_default();
    let found = if unexpected.starts_with("string") {
        Found::String
    } else if unexpected.starts_with("integer") || unexpected.starts_with("floating point") {
        Found::Number(literal(unexpected))
    } else if unexpected.starts_with("boolean") {
        Found::Bool
    } else if unexpected.starts_with("map") {
        Found::Object
    } else if unexpected.starts_with("sequence") {
        Found::Array
    } else {
        Found::Null
    };
    Some((found, expected.to_string()))
}

/// The value at `path` inside `root`.
fn value_at<'a>(root: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, seg| match seg {
        Segment::Map { key } => v.get(key),
        Segment::Seq { index } => v.get(index),
        _ => Some(v),
    })
}

fn set_at(root: &mut Value, path: &[Segment], new: Value) {
    let mut v = root;
    for seg in path {
        let next = match seg {
            Segment::Map { key } => v.get_mut(key),
            Segment::Seq { index } => v.get_mut(index),
            _ => Some(v),
        };
        match next {
            Some(n) => v = n,
            None => return,
        }
    }
    *v = new;
}

/// What type the decoder expects at `path`: decode again with the value
/// there replaced by `probe`, and read the `expected …` of the error.
fn expected_at(def: &ResourceDef, obj: &Value, path: &[Segment], probe: Value) -> Option<String> {
    let mut copy = obj.clone();
    set_at(&mut copy, path, probe);
    match decode_as(def, &copy)? {
        Ok(()) => None,
        Err(e) => parse_serde(&e.inner().to_string()).map(|(_, exp)| exp),
    }
}

/// A serde `expected` text as a Go type name.
fn go_type_name(def: &ResourceDef, obj: &Value, path: &[Segment], expected: &str) -> String {
    match expected {
        "i32" => "int32".into(),
        "i64" => "int64".into(),
        "u32" => "uint32".into(),
        "u64" => "uint64".into(),
        "f64" => "float64".into(),
        "a string" => "string".into(),
        "a boolean" => "bool".into(),
        "a sequence" => {
            let elem = expected_at(def, obj, path, Value::Array(vec![Value::Bool(true)]))
                .map(|e| go_type_name(def, obj, path, &e))
                .unwrap_or_else(|| "interface {}".into());
            format!("[]{elem}")
        }
        "a map" => {
            let mut probe = serde_json::Map::new();
            probe.insert("k".into(), Value::Bool(true));
            let elem = expected_at(def, obj, path, Value::Object(probe))
                .map(|e| go_type_name(def, obj, path, &e))
                .unwrap_or_else(|| "string".into());
            format!("map[string]{elem}")
        }
        "Quantity" => "resource.Quantity".into(),
        "IntOrString" => "intstr.IntOrString".into(),
        "a base64-encoded string" | "ByteString" => "[]uint8".into(),
        other if other.chars().all(|c| c.is_ascii_alphanumeric()) => format!("v1.{other}"),
        other => other.to_string(),
    }
}

fn locate(def: &ResourceDef, obj: &Value, err: &DecodeError) -> Mismatch {
    let path = segments(err);
    let (found, expected) =
        parse_serde(&err.inner().to_string()).unwrap_or((Found::Null, "a valid value".to_string()));
    let mut go_struct = def.kind.to_string();
    let mut fields: Vec<String> = Vec::new();
    let mut apply_path = String::new();
    for (i, seg) in path.iter().enumerate() {
        match seg {
            Segment::Map { key } => {
                let container = if i == 0 {
                    Some(def.kind.to_string())
                } else {
                    expected_at(def, obj, &path[..i], Value::Bool(true))
                };
                match container.as_deref() {
                    Some("a map") => {}
                    Some(name) => {
                        go_struct = name.to_string();
                        fields.push(key.clone());
                    }
                    None => fields.push(key.clone()),
                }
                apply_path.push('.');
                apply_path.push_str(key);
            }
            Segment::Seq { index } => {
                let parent_field = match path[..i].last() {
                    Some(Segment::Map { key }) => key.as_str(),
                    _ => "",
                };
                let element = value_at(obj, &path[..=i]);
                let merge_key = MERGE_KEYS
                    .iter()
                    .find(|(f, _)| *f == parent_field)
                    .and_then(|(_, k)| Some((*k, element?.get(*k)?)));
                match merge_key {
                    Some((k, Value::String(v))) => {
                        apply_path.push_str(&format!("[{k}={}]", gotext::quote(v)));
                    }
                    Some((k, v)) => apply_path.push_str(&format!("[{k}={v}]")),
                    None => apply_path.push_str(&format!("[{index}]")),
                }
            }
            _ => {}
        }
    }
    let go_type = go_type_name(def, obj, &path, &expected);
    Mismatch {
        go_struct,
        go_field: fields.join("."),
        apply_path,
        go_type,
        found,
        value: value_at(obj, &path).cloned().unwrap_or(Value::Null),
    }
}

fn is_number_type(t: &str) -> bool {
    t.starts_with("int") || t.starts_with("uint") || t.starts_with("float")
}

impl Mismatch {
    /// Go's `json.UnmarshalTypeError` text.
    pub fn json_message(&self) -> String {
        let found = match &self.found {
            Found::String => "string".to_string(),
            Found::Number(n) if is_number_type(&self.go_type) && !n.is_empty() => {
                format!("number {n}")
            }
            Found::Number(_) => "number".into(),
            Found::Bool => "bool".into(),
            Found::Object => "object".into(),
            Found::Array => "array".into(),
            Found::Null => "null".into(),
        };
        match self.go_type.as_str() {
            // Types with their own UnmarshalJSON answer in their own words.
            "resource.Quantity" => "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".into(),
            "intstr.IntOrString" => {
                format!("json: cannot unmarshal {found} into Go value of type int32")
            }
            "v1.Time" | "v1.MicroTime" if self.found != Found::String => {
                format!("json: cannot unmarshal {found} into Go value of type string")
            }
            "v1.Time" | "v1.MicroTime" => {
                let s = self.value.as_str().unwrap_or_default();
                format!(
                    "parsing time {} as \"2006-01-02T15:04:05Z07:00\": cannot parse {} as \"2006\"",
                    gotext::quote(s),
                    gotext::quote(s)
                )
            }
            _ if self.go_field.is_empty() => format!(
                "json: cannot unmarshal {found} into Go value of type {}",
                self.go_type
            ),
            _ => format!(
                "json: cannot unmarshal {found} into Go struct field {}.{} of type {}",
                self.go_struct, self.go_field, self.go_type
            ),
        }
    }

    /// `runtime.DefaultUnstructuredConverter`'s text.
    pub fn unstructured_message(&self) -> String {
        let source = match &self.found {
            Found::String => "string",
            Found::Number(n) if n.contains(['.', 'e', 'E']) => "float64",
            Found::Number(_) => "int64",
            Found::Bool => "bool",
            Found::Object => "map",
            Found::Array => "slice",
            Found::Null => "invalid",
        };
        let t = self.go_type.as_str();
        if t.starts_with("[]") {
            format!("cannot restore slice from {source}")
        } else if t.starts_with("map[") {
            format!("cannot restore map from {source}")
        } else if t.starts_with("v1.") || t.contains('.') {
            format!("cannot restore struct from: {source}")
        } else if matches!(source, "int64" | "float64") && (t == "string" || is_number_type(t)) {
            // Numbers convert to Go's other number and string kinds, and
            // fail there in these words (a fraction into an integer, or a
            // number into a string).
            format!("cannot convert {source} to {t}")
        } else {
            format!("unrecognized type: {t}")
        }
    }

    /// structured-merge-diff's text (`.spec.replicas: expected …`).
    pub fn apply_message(&self) -> String {
        let t = self.go_type.as_str();
        let got = match &self.value {
            Value::String(_) => "string",
            Value::Bool(_) => "bool",
            Value::Number(_) => "int64",
            Value::Object(_) => "map[string]interface {}",
            Value::Array(_) => "[]interface {}",
            Value::Null => "<nil>",
        };
        let body = if is_number_type(t) {
            format!("expected numeric (int or float), got {got}")
        } else if t == "string" {
            format!(
                "expected string, got &value.valueUnstructured{{Value:{}}}",
                gotext::sharp_v(&self.value)
            )
        } else if t == "bool" {
            format!(
                "expected boolean, got &value.valueUnstructured{{Value:{}}}",
                gotext::sharp_v(&self.value)
            )
        } else if t.starts_with("[]") {
            format!("expected list, got {}", gotext::sharp_v(&self.value))
        } else {
            format!("expected map, got {}", gotext::sharp_v(&self.value))
        };
        format!("{}: {body}", self.apply_path)
    }

    /// The answer a real server gives when `decoder` fails on this.
    pub fn to_api_error(
        &self,
        def: &ResourceDef,
        obj: &Value,
        decoder: Decoder,
        patch: Option<&Value>,
    ) -> ApiError {
        match decoder {
            Decoder::Json if patch.is_none() => {
                let version = def.version;
                ApiError::BadRequest(format!(
                    "{kind} in version {} cannot be handled as a {kind}: {}",
                    gotext::quote(version),
                    self.json_message(),
                    kind = def.kind
                ))
            }
            Decoder::Json => {
                let patched = serde_json::to_string(&def.to_view(obj)).unwrap_or_default();
                patch_invalid(&patched, &self.json_message())
            }
            Decoder::Unstructured => {
                let shown = patch.map(gotext::plus_v).unwrap_or_default();
                patch_invalid(&shown, &self.unstructured_message())
            }
            Decoder::Apply => {
                let ns = crate::util::str_at(obj, "metadata.namespace");
                let name = crate::util::str_at(obj, "metadata.name");
                let (group, version) = def
                    .api_version()
                    .rsplit_once('/')
                    .map_or((String::new(), def.api_version()), |(g, v)| {
                        (g.to_string(), v.to_string())
                    });
                ApiError::Unknown(format!(
                    "failed to create typed patch object ({ns}/{name}; {group}/{version}, Kind={}): {}",
                    def.kind,
                    self.apply_message()
                ))
            }
        }
    }
}

/// `errors.NewInvalid(schema.GroupKind{}, "", field.Invalid(field.NewPath("patch"), shown, detail))`.
fn patch_invalid(shown: &str, detail: &str) -> ApiError {
    ApiError::Invalid {
        kind: String::new(),
        group: String::new(),
        name: String::new(),
        causes: vec![Cause::new(
            "patch",
            format!("Invalid value: {}: {detail}", gotext::quote(shown)),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "apps", "annotations": {"a": "b"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "api", "image": "api:1", "env": [{"name": "A", "value": "1"}]}]}}}})
    }

    fn def() -> &'static ResourceDef {
        ResourceDef::find("apps", "v1", "deployments").unwrap()
    }

    #[test]
    fn a_valid_object_decodes() {
        assert_eq!(check(def(), &deployment()), Ok(()));
    }

    #[test]
    fn messages_name_the_go_struct_field_and_type() {
        type Edit = fn(&mut Value);
        let cases: Vec<(Edit, &str, &str, &str)> = vec![
            (
                |d| d["spec"]["replicas"] = json!("three"),
                "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
                "unrecognized type: int32",
                ".spec.replicas: expected numeric (int or float), got string",
            ),
            (
                |d| d["metadata"]["annotations"]["a"] = json!({"b": 1}),
                "json: cannot unmarshal object into Go struct field ObjectMeta.metadata.annotations of type string",
                "unrecognized type: string",
                r#".metadata.annotations.a: expected string, got &value.valueUnstructured{Value:map[string]interface {}{"b":1}}"#,
            ),
            (
                |d| d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!(1),
                "json: cannot unmarshal number into Go struct field EnvVar.spec.template.spec.containers.env.value of type string",
                "cannot convert int64 to string",
                r#".spec.template.spec.containers[name="api"].env[name="A"].value: expected string, got &value.valueUnstructured{Value:1}"#,
            ),
            (
                |d| d["spec"]["template"]["spec"]["containers"] = json!("api"),
                "json: cannot unmarshal string into Go struct field PodSpec.spec.template.spec.containers of type []v1.Container",
                "cannot restore slice from string",
                r#".spec.template.spec.containers: expected list, got "api""#,
            ),
            (
                |d| d["spec"]["replicas"] = json!(3_000_000_000_i64),
                "json: cannot unmarshal number 3000000000 into Go struct field DeploymentSpec.spec.replicas of type int32",
                "cannot convert int64 to int32",
                ".spec.replicas: expected numeric (int or float), got int64",
            ),
        ];
        for (edit, json_msg, unstructured, apply) in cases {
            let mut d = deployment();
            edit(&mut d);
            let m = check(def(), &d).unwrap_err();
            assert_eq!(m.json_message(), json_msg);
            assert_eq!(m.unstructured_message(), unstructured);
            assert_eq!(m.apply_message(), apply);
        }
    }

    #[test]
    fn each_decoder_answers_with_its_status() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!("three");
        let patch = json!({"spec": {"replicas": "three"}});
        let create = check_write(def(), &d, Decoder::Json, None)
            .unwrap_err()
            .to_status();
        assert_eq!(create["code"], 400);
        assert_eq!(
            create["message"],
            "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
        );
        let smp = check_write(def(), &d, Decoder::Unstructured, Some(&patch))
            .unwrap_err()
            .to_status();
        assert_eq!(smp["code"], 422);
        assert_eq!(
            smp["message"],
            " \"\" is invalid: patch: Invalid value: \"map[spec:map[replicas:three]]\": unrecognized type: int32"
        );
        assert_eq!(
            smp["details"],
            json!({"causes": [{"reason": "FieldValueInvalid", "field": "patch",
                "message": "Invalid value: \"map[spec:map[replicas:three]]\": unrecognized type: int32"}]})
        );
        let merge = check_write(def(), &d, Decoder::Json, Some(&patch))
            .unwrap_err()
            .to_status();
        assert_eq!(merge["code"], 422);
        assert!(
            merge["message"].as_str().unwrap().starts_with(
                " \"\" is invalid: patch: Invalid value: \"{\\\"apiVersion\\\":\\\"apps/v1\\\""
            ),
            "{merge}"
        );
        let apply = check_write(def(), &d, Decoder::Apply, Some(&patch))
            .unwrap_err()
            .to_status();
        assert_eq!(apply["code"], 500);
        assert!(apply.get("reason").is_none());
        assert_eq!(
            apply["message"],
            "failed to create typed patch object (apps/web; apps/v1, Kind=Deployment): .spec.replicas: expected numeric (int or float), got string"
        );
    }

    #[test]
    fn quantities_and_int_or_strings_take_numbers_and_strings() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["resources"] =
            json!({"limits": {"cpu": 1, "memory": "64Mi"}});
        d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}});
        assert_eq!(check(def(), &d), Ok(()));
    }
}
