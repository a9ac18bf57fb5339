//! Authentication (bearer tokens mapped to users and ServiceAccounts) and
//! authorization by RBAC Roles, ClusterRoles and their bindings, with
//! Kubernetes' 403 messages.
//!
//! Owns the token table and the RBAC evaluation over objects read from the
//! store. It must not serve HTTP or change the store.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use serde_json::Value;

use crate::status::ApiError;
use crate::store::Store;
use crate::util::str_at;

/// Authentication or authorization failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No or an unknown bearer token.
    #[error("no valid bearer token")]
    Unauthenticated,
    /// RBAC denied the request.
    #[error("{0}")]
    Forbidden(String),
}

/// A bearer token. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// Wraps a token string.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The token text, for writing a kubeconfig.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User name (`system:serviceaccount:ns:name` for ServiceAccounts).
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl User {
    /// The cluster admin (member of `system:masters`, which bypasses RBAC).
    pub fn admin() -> Self {
        Self {
            name: "admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    /// A ServiceAccount user.
    pub fn service_account(ns: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{ns}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// Whether the user bypasses RBAC (`system:masters`).
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// The token table.
#[derive(Debug, Default)]
pub struct Authenticator {
    tokens: Mutex<HashMap<Token, User>>,
}

impl Authenticator {
    /// Registers a token for a user.
    pub fn add(&self, token: Token, user: User) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, user);
    }

    /// The user a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Result<User, AuthError> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&Token::new(token))
            .cloned()
            .ok_or(AuthError::Unauthenticated)
    }
}

/// The ServiceAccount user whose token Secret (type
/// `kubernetes.io/service-account-token`, annotated with
/// `kubernetes.io/service-account.name`) holds `token`, if the account exists.
pub fn token_secret_user(store: &Store, token: &str) -> Option<User> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(token.as_bytes());
    store.list("secrets", None).0.iter().find_map(|s| {
        if str_at(s, "type") != "kubernetes.io/service-account-token"
            || s.pointer("/data/token").and_then(Value::as_str) != Some(encoded.as_str())
        {
            return None;
        }
        let ns = str_at(s, "metadata.namespace");
        let sa = s
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
            .and_then(Value::as_str)?;
        store
            .get("serviceaccounts", ns, sa)
            .map(|_| User::service_account(ns, sa))
    })
}

/// What a request wants to do, in RBAC terms.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'a str,
    /// The API group (`""` for core).
    pub group: &'a str,
    /// The resource's plural name (`deployments`).
    pub plural: &'a str,
    /// Subresource (`status`, `scale`) or `""`.
    pub subresource: &'a str,
    /// Namespace or `""` for cluster scope.
    pub namespace: &'a str,
    /// Object name or `""`.
    pub name: &'a str,
}

fn contains(list: Option<&Value>, want: &str) -> bool {
    list.and_then(Value::as_array).is_some_and(|a| {
        a.iter()
            .any(|v| v.as_str() == Some(want) || v.as_str() == Some("*"))
    })
}

fn rule_allows(rule: &Value, a: &Attributes<'_>) -> bool {
    let resource = if a.subresource.is_empty() {
        a.plural.to_string()
    } else {
        format!("{}/{}", a.plural, a.subresource)
    };
    let names_ok = match rule.get("resourceNames").and_then(Value::as_array) {
        Some(names) if !names.is_empty() => names.iter().any(|n| n.as_str() == Some(a.name)),
        _ => true,
    };
    contains(rule.get("apiGroups"), a.group)
        && (contains(rule.get("resources"), &resource)
            || (!a.subresource.is_empty()
                && contains(rule.get("resources"), &format!("*/{}", a.subresource))))
        && contains(rule.get("verbs"), a.verb)
        && names_ok
}

fn subject_matches(subject: &Value, user: &User, binding_ns: &str) -> bool {
    let name = str_at(subject, "name");
    match str_at(subject, "kind") {
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = match str_at(subject, "namespace") {
                "" => binding_ns,
                ns => ns,
            };
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn role_rules(store: &Store, role_ref: &Value, binding_ns: &str) -> Vec<Value> {
    let name = str_at(role_ref, "name");
    let role = match str_at(role_ref, "kind") {
        "ClusterRole" => store.get("clusterroles.rbac.authorization.k8s.io", "", name),
        "Role" => store.get("roles.rbac.authorization.k8s.io", binding_ns, name),
        _ => None,
    };
    role.and_then(|r| r.get("rules").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

/// Decides whether `user` may do `a`, as Kubernetes RBAC does.
pub fn authorize(store: &Store, user: &User, a: &Attributes<'_>) -> Result<(), AuthError> {
    if user.is_admin() {
        return Ok(());
    }
    let mut bindings: Vec<Value> = store
        .list("clusterrolebindings.rbac.authorization.k8s.io", None)
        .0;
    if !a.namespace.is_empty() {
        bindings.extend(
            store
                .list("rolebindings.rbac.authorization.k8s.io", Some(a.namespace))
                .0,
        );
    }
    for b in &bindings {
        let binding_ns = str_at(b, "metadata.namespace");
        let subjects = b.get("subjects").and_then(Value::as_array);
        if !subjects.is_some_and(|s| s.iter().any(|s| subject_matches(s, user, binding_ns))) {
            continue;
        }
        let rules = role_rules(store, b.get("roleRef").unwrap_or(&Value::Null), binding_ns);
        if rules.iter().any(|r| rule_allows(r, a)) {
            return Ok(());
        }
    }
    Err(AuthError::Forbidden(forbidden_message(user, a)))
}

/// Kubernetes' message for a denied request.
pub fn forbidden_message(user: &User, a: &Attributes<'_>) -> String {
    let qualified = if a.group.is_empty() {
        a.plural.to_string()
    } else {
        format!("{}.{}", a.plural, a.group)
    };
    let target = if a.name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{}\"", a.name)
    };
    let resource = if a.subresource.is_empty() {
        format!("resource \"{}\"", a.plural)
    } else {
        format!("resource \"{}/{}\"", a.plural, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    format!(
        "{target} is forbidden: User \"{}\" cannot {} {resource} in API group \"{}\" {scope}",
        user.name, a.verb, a.group
    )
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated => ApiError::Unauthorized,
            AuthError::Forbidden(message) => ApiError::Forbidden {
                message,
                name: String::new(),
                group: String::new(),
                plural: String::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ResourceDef;
    use serde_json::json;

    fn setup() -> Store {
        let s = Store::new(100);
        let ns = ResourceDef::find("", "v1", "namespaces").unwrap();
        s.create(ns, "", json!({"metadata": {"name": "apps"}}))
            .unwrap();
        let role = ResourceDef::find("rbac.authorization.k8s.io", "v1", "roles").unwrap();
        s.create(role, "apps", json!({"metadata": {"name": "freshet"}, "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "patch"]}
        ]})).unwrap();
        let rb = ResourceDef::find("rbac.authorization.k8s.io", "v1", "rolebindings").unwrap();
        s.create(
            rb,
            "apps",
            json!({"metadata": {"name": "freshet"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "freshet"},
            "subjects": [{"kind": "ServiceAccount", "name": "freshet", "namespace": "apps"}]}),
        )
        .unwrap();
        s
    }

    #[test]
    fn rbac_table() {
        let s = setup();
        let deploy = ResourceDef::find("apps", "v1", "deployments").unwrap();
        let secrets = ResourceDef::find("", "v1", "secrets").unwrap();
        let sa = User::service_account("apps", "freshet");
        let other = User::service_account("apps", "other");
        for (user, verb, def, ns, want) in [
            (&sa, "patch", deploy, "apps", true),
            (&sa, "delete", deploy, "apps", false),
            (&sa, "patch", deploy, "other", false),
            (&sa, "get", secrets, "apps", false),
            (&other, "get", deploy, "apps", false),
        ] {
            let a = Attributes {
                verb,
                group: def.group,
                plural: def.plural,
                subresource: "",
                namespace: ns,
                name: "x",
            };
            assert_eq!(
                authorize(&s, user, &a).is_ok(),
                want,
                "{} {verb} {ns}",
                user.name
            );
        }
    }

    #[test]
    fn resource_names_limit_a_rule_to_the_named_objects() {
        let s = setup();
        let role = ResourceDef::find("rbac.authorization.k8s.io", "v1", "roles").unwrap();
        s.create(role, "apps", json!({"metadata": {"name": "pull"}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["regcred"], "verbs": ["get"]}
        ]})).unwrap();
        let rb = ResourceDef::find("rbac.authorization.k8s.io", "v1", "rolebindings").unwrap();
        s.create(
            rb,
            "apps",
            json!({"metadata": {"name": "pull"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pull"},
            "subjects": [{"kind": "ServiceAccount", "name": "freshet", "namespace": "apps"}]}),
        )
        .unwrap();
        let secrets = ResourceDef::find("", "v1", "secrets").unwrap();
        let sa = User::service_account("apps", "freshet");
        for (verb, name, want) in [
            ("get", "regcred", true),
            ("get", "other", false),
            ("list", "", false),
            ("watch", "", false),
            ("patch", "regcred", false),
        ] {
            let a = Attributes {
                verb,
                group: secrets.group,
                plural: secrets.plural,
                subresource: "",
                namespace: "apps",
                name,
            };
            assert_eq!(authorize(&s, &sa, &a).is_ok(), want, "{verb} {name:?}");
        }
    }

    #[test]
    fn forbidden_message_matches_kubernetes() {
        let secrets = ResourceDef::find("", "v1", "secrets").unwrap();
        let a = Attributes {
            verb: "list",
            group: secrets.group,
            plural: secrets.plural,
            subresource: "",
            namespace: "apps",
            name: "",
        };
        assert_eq!(
            forbidden_message(&User::service_account("apps", "freshet"), &a),
            "secrets is forbidden: User \"system:serviceaccount:apps:freshet\" cannot list resource \"secrets\" in API group \"\" in the namespace \"apps\""
        );
    }

    #[test]
    fn token_debug_is_redacted() {
        assert_eq!(
            format!("{:?} {}", Token::new("s3cret"), Token::new("s3cret")),
            "*** ***"
        );
    }
}
