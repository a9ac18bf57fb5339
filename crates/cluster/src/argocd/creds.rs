//! Credentials that an Application's settings name in plain Secrets, as Argo CD Image
//! Updater reads them: a registry login in one field (`pull-secret:
//! secret:<namespace>/<name>#<field>`, the field holding `username:password`), and Git
//! credentials for the `git` write-back (`write-back-method: git:secret:<namespace>/
//! <name>`, the fields `username` and `password` for an HTTPS repository, as
//! `getCredsFromSecret` in `pkg/argocd/gitcreds.go` of argocd-image-updater v1.3.0
//! does). `.dockerconfigjson` pull secrets are [`crate::secrets`]'s.
//!
//! Owns reading such a Secret and turning its fields into a [`PullSecret`] for one
//! registry host or a [`GitToken`]. An SSH repository's `sshPrivateKey` is not used:
//! that is an error saying so and what to do instead. Must never put a Secret's
//! contents in a log line, an error or a report: only `namespace/name`, the field's
//! name and the fix.

use std::collections::BTreeMap;

use freshet_core::secret::Secret as Redacted;
use freshet_gitops::GitToken;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::json;

use crate::secrets::PullSecret;

/// Why a Secret's credentials cannot be used. Messages name the Secret and the fix,
/// never its contents.
#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    /// The Secret does not exist.
    #[error("Secret {namespace}/{name} does not exist: create it or fix the reference")]
    Missing {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// freshet may not read it.
    #[error(
        "freshet may not read Secret {namespace}/{name}: grant its ServiceAccount get on that Secret with a Role in namespace {namespace}"
    )]
    Forbidden {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The API failed otherwise.
    #[error("reading Secret {namespace}/{name} failed")]
    Read {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A field is missing or does not hold what it should.
    #[error("Secret {namespace}/{name}: {reason}")]
    Field {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What is wrong (never the value) and the fix.
        reason: String,
    },
}

impl CredsError {
    /// Whether reading again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Read { .. })
    }
}

/// Whether `s` can be a namespace or Secret name (a DNS subdomain: lowercase letters,
/// digits, `-` and `.`, at most 253 bytes), so it can be shown as it is.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// A Secret's fields and their bytes.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// The data of Secret `namespace/name` (`data`, then `stringData`).
pub async fn secret_data(
    kube: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<SecretData, CredsError> {
    let api: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    let (ns, n) = (namespace.to_owned(), name.to_owned());
    let secret = api.get(name).await.map_err(|source| match &source {
        kube::Error::Api(s) if s.code == 404 => CredsError::Missing {
            namespace: ns.clone(),
            name: n.clone(),
        },
        kube::Error::Api(s) if s.code == 403 => CredsError::Forbidden {
            namespace: ns.clone(),
            name: n.clone(),
        },
        _ => CredsError::Read {
            namespace: ns.clone(),
            name: n.clone(),
            source,
        },
    })?;
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .string_data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    for (k, v) in secret.data.unwrap_or_default() {
        data.insert(k, v.0);
    }
    Ok(data)
}

fn field_error(namespace: &str, name: &str, reason: String) -> CredsError {
    CredsError::Field {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        reason,
    }
}

/// The text of `field`, trimmed; an error naming the field when it is absent, empty
/// or not UTF-8.
fn text<'a>(
    data: &'a BTreeMap<String, Vec<u8>>,
    (namespace, name): (&str, &str),
    field: &str,
) -> Result<&'a str, CredsError> {
    let value = data.get(field).ok_or_else(|| {
        field_error(
            namespace,
            name,
            format!("it has no field {field:?}: add it"),
        )
    })?;
    let value = std::str::from_utf8(value)
        .map_err(|_| field_error(namespace, name, format!("field {field:?} is not UTF-8")))?
        .trim();
    if value.is_empty() {
        return Err(field_error(
            namespace,
            name,
            format!("field {field:?} is empty"),
        ));
    }
    Ok(value)
}

/// A pull secret for `registry` from `field` of Secret `namespace/name`, which holds
/// `username:password` (Image Updater's `secret:<namespace>/<name>#<field>`).
pub fn field_pull_secret(
    data: &BTreeMap<String, Vec<u8>>,
    (namespace, name): (&str, &str),
    field: &str,
    registry: &str,
) -> Result<PullSecret, CredsError> {
    let value = text(data, (namespace, name), field)?;
    let (user, password) = value
        .split_once(':')
        .filter(|(u, p)| !u.is_empty() && !p.is_empty())
        .ok_or_else(|| {
            field_error(
                namespace,
                name,
                format!("field {field:?} does not hold <username>:<password>: write it so"),
            )
        })?;
    let document = json!({"auths": {registry: {"username": user, "password": password}}});
    Ok(PullSecret {
        name: format!("secret:{namespace}/{name}#{field}@{registry}"),
        json: Redacted::new(document.to_string()),
    })
}

/// Whether `url` is one git reaches over SSH (`ssh://…`, or scp-like `user@host:path`).
pub fn is_ssh_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("ssh://") || lower.starts_with("git+ssh://") {
        return true;
    }
    !lower.contains("://")
        && url
            .split_once(':')
            .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/'))
}

/// The Git credentials for `url` in Secret `namespace/name`: `username` and
/// `password` for an HTTP(S) repository. An SSH repository is refused with the fix.
pub fn git_token(
    data: &BTreeMap<String, Vec<u8>>,
    (namespace, name): (&str, &str),
    url: &str,
) -> Result<GitToken, CredsError> {
    if is_ssh_url(url) {
        return Err(field_error(
            namespace,
            name,
            "freshet does not use sshPrivateKey for an SSH repository yet: point the Application at the repository's https URL and store username and password (a token) in the Secret, or use write-back-method git with git's own SSH configuration".to_owned(),
        ));
    }
    let user = text(data, (namespace, name), "username")?;
    let password = text(data, (namespace, name), "password")?;
    Ok(GitToken::basic_auth(user, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn a_field_of_user_and_password_becomes_a_pull_secret_for_that_registry_only() {
        let d = data(&[("creds", "robot:s3cret-pw\n")]);
        let s = field_pull_secret(&d, ("argocd", "reg"), "creds", "127.0.0.1:5000").unwrap();
        assert_eq!(s.name, "secret:argocd/reg#creds@127.0.0.1:5000");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(s.json.expose()).unwrap(),
            json!({"auths": {"127.0.0.1:5000": {"username": "robot", "password": "s3cret-pw"}}})
        );
        assert!(!format!("{s:?}").contains("s3cret"));
        for (bad, says) in [
            (data(&[]), "no field \"creds\""),
            (data(&[("creds", "")]), "is empty"),
            (
                data(&[("creds", "s3cret-no-colon")]),
                "<username>:<password>",
            ),
        ] {
            let e = field_pull_secret(&bad, ("argocd", "reg"), "creds", "h").unwrap_err();
            let e = e.to_string();
            assert!(e.contains(says) && e.contains("argocd/reg"), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn git_credentials_are_username_and_password_and_ssh_is_refused_with_the_fix() {
        let d = data(&[("username", "bot"), ("password", "s3cret-pw")]);
        assert_eq!(
            git_token(&d, ("argocd", "git"), "https://git.example/a.git").unwrap(),
            GitToken::basic_auth("bot", "s3cret-pw")
        );
        let e = git_token(
            &data(&[("username", "bot")]),
            ("argocd", "git"),
            "https://h/a",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"password\""), "{e}");
        for ssh in ["git@github.com:acme/app.git", "ssh://git@h/a.git"] {
            let e = git_token(&d, ("argocd", "git"), ssh)
                .unwrap_err()
                .to_string();
            assert!(e.contains("sshPrivateKey") && e.contains("https"), "{e}");
        }
        assert!(!is_ssh_url("file:///tmp/r.git"));
        assert!(valid_name("git-creds.v2"));
        for bad in ["", "Git", "a\u{1b}[31m", "a/b", &"a".repeat(254)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!is_ssh_url("/tmp/r.git"));
    }
}
