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
    /// 422 Invalid.
    #[error("{kind}.{group} \"{name}\" is invalid: {cause}")]
    Invalid {
        /// Kind (`Deployment`).
        kind: String,
        /// Group (may be empty).
        group: String,
        /// Object name.
        name: String,
        /// Field and problem (`spec.selector: Required value`).
        cause: String,
    },
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

    /// 422 Invalid for `name` of `def`.
    pub fn invalid(def: &ResourceDef, name: &str, cause: impl Into<String>) -> Self {
        Self::Invalid {
            kind: def.kind.into(),
            group: def.group.into(),
            name: name.into(),
            cause: cause.into(),
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
            Self::Internal(_) => 500,
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
        }
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let message = match self {
            // Kubernetes writes `Deployment.apps "x" is invalid`, but `Pod "x" is invalid`.
            Self::Invalid {
                kind,
                group,
                name,
                cause,
            } if group.is_empty() => {
                format!("{kind} \"{name}\" is invalid: {cause}")
            }
            other => other.to_string(),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": self.reason(),
            "code": self.code(),
        });
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
                cause,
            } => {
                let (field, msg) = cause.split_once(": ").unwrap_or(("", cause));
                let mut d = json!({"name": name, "kind": kind,
                    "causes": [{"reason": "FieldValueInvalid", "message": msg, "field": field}]});
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                Some(d)
            }
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
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
