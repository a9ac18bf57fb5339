//! Kubernetes `Status` error bodies: the reason, code and message a real API
//! server answers with, built from one error enum.
//!
//! Owns the mapping from failure to `metav1.Status`; it must not decide
//! whether a request fails.

use serde_json::{Value, json};

use crate::resources::ResourceDef;

/// Why an API request failed, as Kubernetes reports it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 404 NotFound for a named object.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// Qualified resource (`deployments.apps`).
        resource: String,
        /// Group for `details`.
        group: String,
        /// Plural for `details.kind`.
        plural: String,
        /// Object name.
        name: String,
    },
    /// 409 AlreadyExists on create.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// Qualified resource.
        resource: String,
        /// Group.
        group: String,
        /// Plural.
        plural: String,
        /// Object name.
        name: String,
    },
    /// 409 Conflict: a stale `resourceVersion`.
    #[error(
        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict {
        /// Qualified resource.
        resource: String,
        /// Group.
        group: String,
        /// Plural.
        plural: String,
        /// Object name.
        name: String,
    },
    /// 409 Conflict from server-side apply: fields owned by other managers.
    #[error("{0}")]
    ApplyConflict(String),
    /// 422 Invalid, with one cause per field error (`details.causes`).
    #[error("{}", invalid_message(.kind, .group, .name, .causes))]
    Invalid {
        /// Kind (`Deployment`; empty for a patch that does not decode).
        kind: String,
        /// Group (may be empty).
        group: String,
        /// Object name (may be empty).
        name: String,
        /// The field errors, in order.
        causes: Vec<Cause>,
    },
    /// 500 with no reason: an error the real server does not turn into a
    /// `Status` of its own (a server-side apply whose patch does not match the
    /// schema).
    #[error("{0}")]
    Unknown(String),
    /// 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// 415 UnsupportedMediaType.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 405 MethodNotAllowed.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 404 for an unknown path.
    #[error("the server could not find the requested resource")]
    UnknownPath,
    /// 401 Unauthorized.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403 Forbidden with Kubernetes' message.
    #[error("{message}")]
    Forbidden {
        /// Full message.
        message: String,
        /// Object name, if any.
        name: String,
        /// Group.
        group: String,
        /// Plural.
        plural: String,
    },
    /// 410 Gone: the resource version is older than the watch history.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// The version the client asked for.
        requested: u64,
        /// The oldest version still served.
        oldest: u64,
    },
    /// 500 InternalError.
    #[error("Internal error occurred: {0}")]
    Internal(String),
}

impl ApiError {
    /// 404 for `name` of `def`.
    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::NotFound {
            resource: def.qualified(),
            group: def.group.into(),
            plural: def.plural.into(),
            name: name.into(),
        }
    }

    /// 409 AlreadyExists for `name` of `def`.
    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self::AlreadyExists {
            resource: def.qualified(),
            group: def.group.into(),
            plural: def.plural.into(),
            name: name.into(),
        }
    }

    /// 409 Conflict for `name` of `def`.
    pub fn conflict(def: &ResourceDef, name: &str) -> Self {
        Self::Conflict {
            resource: def.qualified(),
            group: def.group.into(),
            plural: def.plural.into(),
            name: name.into(),
        }
    }

    /// 422 Invalid for `name` of `def`, from one `field: body` error text
    /// (`spec.selector: Required value`).
    pub fn invalid(def: &ResourceDef, name: &str, cause: impl Into<String>) -> Self {
        Self::invalid_causes(def, name, vec![Cause::parse(&cause.into())])
    }

    /// 422 Invalid for `name` of `def` with several field errors.
    pub fn invalid_causes(def: &ResourceDef, name: &str, causes: Vec<Cause>) -> Self {
        Self::Invalid {
            kind: def.kind.into(),
            group: def.group.into(),
            name: name.into(),
            causes,
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            Self::NotFound { .. } | Self::UnknownPath => 404,
            Self::AlreadyExists { .. } | Self::Conflict { .. } | Self::ApplyConflict(_) => 409,
            Self::Invalid { .. } => 422,
            Self::BadRequest(_) => 400,
            Self::UnsupportedMediaType(_) => 415,
            Self::MethodNotAllowed => 405,
            Self::Unauthorized => 401,
            Self::Forbidden { .. } => 403,
            Self::Expired { .. } => 410,
            Self::Internal(_) | Self::Unknown(_) => 500,
        }
    }

    /// The `reason` field.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } | Self::UnknownPath => "NotFound",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } | Self::ApplyConflict(_) => "Conflict",
            Self::Invalid { .. } => "Invalid",
            Self::BadRequest(_) => "BadRequest",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden { .. } => "Forbidden",
            Self::Expired { .. } => "Expired",
            Self::Internal(_) => "InternalError",
            Self::Unknown(_) => "",
        }
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let message = self.to_string();
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": self.reason(),
            "code": self.code(),
        });
        if self.reason().is_empty() {
            // Go's `omitempty`: StatusReasonUnknown is not written.
            if let Some(m) = status.as_object_mut() {
                m.remove("reason");
            }
        }
        let details = match self {
            Self::NotFound {
                group,
                plural,
                name,
                ..
            }
            | Self::AlreadyExists {
                group,
                plural,
                name,
                ..
            }
            | Self::Conflict {
                group,
                plural,
                name,
                ..
            }
            | Self::Forbidden {
                group,
                plural,
                name,
                ..
            } => {
                let mut d = json!({"kind": plural});
                if !name.is_empty() {
                    d["name"] = json!(name);
                }
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                Some(d)
            }
            Self::Invalid {
                kind,
                group,
                name,
                causes,
            } => {
                // Go's `omitempty` drops empty name, group and kind.
                let mut d = serde_json::Map::new();
                for (key, value) in [("name", name), ("group", group), ("kind", kind)] {
                    if !value.is_empty() {
                        d.insert(key.into(), json!(value));
                    }
                }
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.body, "field": c.field}))
                    .collect();
                d.insert("causes".into(), json!(causes));
                Some(Value::Object(d))
            }
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

/// One field error of a 422 Invalid answer (`metav1.StatusCause`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// The field path (`metadata.labels`).
    pub field: String,
    /// The error without the field (`Invalid value: "x": must be ...`).
    pub body: String,
}

impl Cause {
    /// A cause from its field and body; the reason follows from the body's
    /// first words, as `field.ErrorType` prints them.
    pub fn new(field: impl Into<String>, body: impl Into<String>) -> Self {
        let body = body.into();
        let reason = [
            ("Required value", "FieldValueRequired"),
            ("Too long", "FieldValueTooLong"),
            ("Too many", "FieldValueTooMany"),
            ("Forbidden", "FieldValueForbidden"),
            ("Unsupported value", "FieldValueNotSupported"),
            ("Duplicate value", "FieldValueDuplicate"),
            ("Not found", "FieldValueNotFound"),
        ]
        .iter()
        .find(|(prefix, _)| body.starts_with(prefix))
        .map_or("FieldValueInvalid", |(_, r)| r);
        Self {
            reason,
            field: field.into(),
            body,
        }
    }

    /// A cause from `field: body` text.
    pub fn parse(text: &str) -> Self {
        let (field, body) = text.split_once(": ").unwrap_or(("", text));
        Self::new(field, body)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.body)
        } else {
            write!(f, "{}: {}", self.field, self.body)
        }
    }
}

/// `errors.NewInvalid`'s message: `Deployment.apps "x" is invalid: <errors>`,
/// with several errors as `[a, b]` (duplicates once), and `Pod "x"` for core.
fn invalid_message(kind: &str, group: &str, name: &str, causes: &[Cause]) -> String {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut seen: Vec<String> = Vec::new();
    for c in causes {
        let text = c.to_string();
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    let head = format!("{qualified} {} is invalid", crate::gotext::quote(name));
    match seen.len() {
        0 => head,
        1 => format!("{head}: {}", seen[0]),
        _ => format!("{head}: [{}]", seen.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_kubernetes() {
        let def = ResourceDef::find("apps", "v1", "deployments").unwrap();
        let s = ApiError::not_found(def, "api").to_status();
        assert_eq!(s["message"], "deployments.apps \"api\" not found");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(
            s["details"],
            json!({"name": "api", "group": "apps", "kind": "deployments"})
        );
    }
}
