//! Image references: the distribution reference grammar with Docker's normalisation.
//!
//! Owns parsing (`[registry[:port]/]repository[:tag][@digest]`), validation with a
//! precise error for each way an input can be malformed, and the canonical and
//! familiar spellings. `nginx` means `docker.io/library/nginx:latest`, `index.docker.io`
//! is an alias of `docker.io`, and a first component without `.` or `:` (other than
//! `localhost`) is a Docker Hub path, exactly as `docker pull` reads it.
//!
//! It must not know how to reach a registry (API hosts, schemes, credentials): that
//! belongs to the registry shell.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's legacy alias, still found in config files and old manifests.
pub const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const NAME_TOTAL_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference. Each message names the input and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input is empty.
    #[error(
        "invalid image reference \"\": the reference is empty; write e.g. nginx:1.27 or ghcr.io/org/app:v1"
    )]
    Empty,
    /// Whitespace or control characters.
    #[error(
        "invalid image reference {0:?}: it contains whitespace or control characters; remove them"
    )]
    Whitespace(String),
    /// The `@digest` part is malformed.
    #[error("invalid image reference {input:?}: {source}")]
    Digest {
        input: String,
        #[source]
        source: DigestError,
    },
    /// The tag breaks the tag grammar.
    #[error(
        "invalid image reference {input:?}: tag {tag:?} is invalid; a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', and must not start with '.' or '-'"
    )]
    Tag { input: String, tag: String },
    /// The repository has uppercase letters.
    #[error(
        "invalid image reference {input:?}: repository name must be lowercase (did you mean {suggestion:?}?)"
    )]
    Uppercase { input: String, suggestion: String },
    /// A repository path component breaks the grammar.
    #[error(
        "invalid image reference {input:?}: repository path component {component:?} is invalid; components are lowercase letters and digits separated by '.', '_', '__' or '-', and must not start or end with a separator"
    )]
    Component { input: String, component: String },
    /// The registry host is malformed.
    #[error(
        "invalid image reference {input:?}: registry {registry:?} is not a valid host[:port]; write e.g. registry.example.com:5000"
    )]
    Registry { input: String, registry: String },
    /// The name is longer than 255 characters.
    #[error(
        "invalid image reference {input:?}: the name is {len} characters long; the limit is 255"
    )]
    TooLong { input: String, len: usize },
    /// A 64-character hex string is an image ID, not a name.
    #[error(
        "invalid image reference {input:?}: a 64-character hex string is an image ID, not a repository; write the repository name, or name@sha256:<hex>"
    )]
    ImageId { input: String },
}

impl Reference {
    /// Parses and normalises a reference as `docker pull` does.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ReferenceError::Whitespace(input.to_owned()));
        }
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(ReferenceError::ImageId {
                input: input.to_owned(),
            });
        }
        let err_input = || input.to_owned();

        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest = Digest::parse(d).map_err(|source| ReferenceError::Digest {
                    input: err_input(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::Tag {
                input: err_input(),
                tag: tag.to_owned(),
            });
        }
        if name.is_empty() {
            return Err(ReferenceError::Component {
                input: err_input(),
                component: String::new(),
            });
        }

        let (registry, remainder) = split_registry(name);
        if !valid_registry(registry) {
            return Err(ReferenceError::Registry {
                input: err_input(),
                registry: registry.to_owned(),
            });
        }
        let registry = if registry == DOCKER_HUB_LEGACY {
            DOCKER_HUB
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !remainder.contains('/') {
            format!("library/{remainder}")
        } else {
            remainder.to_owned()
        };
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                input: err_input(),
                suggestion: input.replace(remainder, &remainder.to_ascii_lowercase()),
            });
        }
        if let Some(bad) = repository.split('/').find(|c| !valid_component(c)) {
            return Err(ReferenceError::Component {
                input: err_input(),
                component: bad.to_owned(),
            });
        }
        let len = registry.len() + 1 + repository.len();
        if len > NAME_TOTAL_MAX {
            return Err(ReferenceError::TooLong {
                input: err_input(),
                len,
            });
        }
        Ok(Self {
            registry: registry.to_owned(),
            repository,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The registry as written after normalisation: `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag as written, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The tag to resolve: the written one, or `latest` when neither tag nor digest is given.
    pub fn tag_or_latest(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The fully qualified form: `docker.io/library/nginx:latest`, `ghcr.io/o/a:1@sha256:…`.
    pub fn canonical(&self) -> String {
        let mut s = self.name();
        if let Some(tag) = self.tag_or_latest() {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }

    /// Docker's short form: `nginx:latest`, `bitnami/redis:7`, `ghcr.io/o/a:1`.
    pub fn familiar(&self) -> String {
        let canonical = self.canonical();
        let short = canonical
            .strip_prefix("docker.io/")
            .map(|s| s.strip_prefix("library/").unwrap_or(s))
            // Keep `docker.io/` when the first component would read as a registry.
            .filter(|s| split_registry(s).0 == DOCKER_HUB);
        short.unwrap_or(&canonical).to_owned()
    }

    /// The same image with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::Tag {
                input: self.canonical(),
                tag: tag.to_owned(),
            });
        }
        Ok(Self {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same image and tag pinned to a digest.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same image without its digest.
    pub fn without_digest(&self) -> Self {
        Self {
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits the registry from the path as Docker does: the first component is a
/// registry when it has a `.` or `:`, is `localhost`, or has uppercase letters.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    tag.len() <= TAG_MAX
        && (first.is_ascii_alphanumeric() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `host[:port]` where host is DNS labels or a bracketed IPv6 address.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after.strip_prefix(':') {
            Some(p) => (None, Some(p)),
            None if after.is_empty() => (None, None),
            None => return false,
        }
    } else {
        match registry.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(registry), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    host.is_none_or(|h| {
        !h.is_empty()
            && h.split('.').all(|label| {
                let l = label.as_bytes();
                !l.is_empty()
                    && l[0].is_ascii_alphanumeric()
                    && l[l.len() - 1].is_ascii_alphanumeric()
                    && l.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_form_keeps_docker_io_when_the_repository_looks_like_a_host() {
        let r = Reference::parse("docker.io/ln0w_ib_er.io/l5").unwrap();
        assert_eq!(r.familiar(), "docker.io/ln0w_ib_er.io/l5:latest");
        assert_eq!(
            Reference::parse(&r.familiar()).unwrap().canonical(),
            r.canonical()
        );
        assert_eq!(
            Reference::parse("docker.io/localhost/x")
                .unwrap()
                .familiar(),
            "docker.io/localhost/x:latest"
        );
        assert_eq!(Reference::parse("nginx:1").unwrap().familiar(), "nginx:1");
    }
    use proptest::prelude::*;

    const D: &str = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";

    #[test]
    fn normalises_like_docker() {
        let table: &[(&str, &str, &str, &str)] = &[
            // input, canonical, familiar, name
            (
                "nginx",
                "docker.io/library/nginx:latest",
                "nginx:latest",
                "docker.io/library/nginx",
            ),
            (
                "nginx:1.27",
                "docker.io/library/nginx:1.27",
                "nginx:1.27",
                "docker.io/library/nginx",
            ),
            (
                "library/nginx",
                "docker.io/library/nginx:latest",
                "nginx:latest",
                "docker.io/library/nginx",
            ),
            (
                "bitnami/redis:7",
                "docker.io/bitnami/redis:7",
                "bitnami/redis:7",
                "docker.io/bitnami/redis",
            ),
            (
                "docker.io/nginx",
                "docker.io/library/nginx:latest",
                "nginx:latest",
                "docker.io/library/nginx",
            ),
            (
                "index.docker.io/nginx:1",
                "docker.io/library/nginx:1",
                "nginx:1",
                "docker.io/library/nginx",
            ),
            (
                "index.docker.io/org/app",
                "docker.io/org/app:latest",
                "org/app:latest",
                "docker.io/org/app",
            ),
            (
                "ghcr.io/org/app:v1.2",
                "ghcr.io/org/app:v1.2",
                "ghcr.io/org/app:v1.2",
                "ghcr.io/org/app",
            ),
            (
                "localhost/app",
                "localhost/app:latest",
                "localhost/app:latest",
                "localhost/app",
            ),
            (
                "localhost:5000/a/b/c:x",
                "localhost:5000/a/b/c:x",
                "localhost:5000/a/b/c:x",
                "localhost:5000/a/b/c",
            ),
            (
                "127.0.0.1:5000/team/api",
                "127.0.0.1:5000/team/api:latest",
                "127.0.0.1:5000/team/api:latest",
                "127.0.0.1:5000/team/api",
            ),
            (
                "[::1]:5000/app:1",
                "[::1]:5000/app:1",
                "[::1]:5000/app:1",
                "[::1]:5000/app",
            ),
            (
                "Registry.Example.com/app",
                "Registry.Example.com/app:latest",
                "Registry.Example.com/app:latest",
                "Registry.Example.com/app",
            ),
            (
                "a/b__c/d-e.f--g:_t.1-x",
                "docker.io/a/b__c/d-e.f--g:_t.1-x",
                "a/b__c/d-e.f--g:_t.1-x",
                "docker.io/a/b__c/d-e.f--g",
            ),
            // localhost:5000 alone is a Docker Hub image named localhost with tag 5000
            (
                "localhost:5000",
                "docker.io/library/localhost:5000",
                "localhost:5000",
                "docker.io/library/localhost",
            ),
        ];
        for (input, canonical, familiar, name) in table {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.canonical(), *canonical, "canonical of {input}");
            assert_eq!(r.familiar(), *familiar, "familiar of {input}");
            assert_eq!(r.name(), *name, "name of {input}");
        }
    }

    #[test]
    fn keeps_tag_and_digest() {
        let r = Reference::parse(&format!("ghcr.io/o/a:1.2@{D}")).unwrap();
        assert_eq!(r.tag(), Some("1.2"));
        assert_eq!(r.digest().unwrap().as_str(), D);
        assert_eq!(r.canonical(), format!("ghcr.io/o/a:1.2@{D}"));

        let r = Reference::parse(&format!("nginx@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.tag_or_latest(), None);
        assert_eq!(r.canonical(), format!("docker.io/library/nginx@{D}"));
        assert_eq!(r.familiar(), format!("nginx@{D}"));
    }

    #[test]
    fn rejects_each_malformed_input_precisely() {
        let long = format!("example.com/{}", "a".repeat(250));
        let table: &[(&str, &str)] = &[
            ("", "the reference is empty"),
            ("nginx :1", "whitespace"),
            ("Nginx", "must be lowercase (did you mean \"nginx\"?)"),
            ("ghcr.io/Org/App:1", "must be lowercase"),
            ("nginx:", "tag \"\" is invalid"),
            ("nginx:-x", "tag \"-x\" is invalid"),
            ("nginx:.x", "tag \".x\" is invalid"),
            (&format!("nginx:{}", "a".repeat(129)), "is invalid"),
            ("nginx@sha256:abc", "exactly 64 lowercase hex"),
            ("nginx@md5:abc", "unsupported algorithm"),
            ("a//b", "component \"\" is invalid"),
            ("-a/b", "component \"-a\" is invalid"),
            ("a/b_", "component \"b_\" is invalid"),
            ("a/b___c", "component \"b___c\" is invalid"),
            ("a/b.-c", "component \"b.-c\" is invalid"),
            ("ex-.com/a", "registry \"ex-.com\""),
            ("example.com:port/a", "registry \"example.com:port\""),
            ("example.com:123456/a", "registry \"example.com:123456\""),
            ("[zz]:5000/a", "registry \"[zz]:5000\""),
            (":1", "component \"\" is invalid"),
            (&long, "the limit is 255"),
            (
                "6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b",
                "is an image ID",
            ),
        ];
        for (input, want) in table {
            let err = Reference::parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: got {err:?}, want {want:?}");
            if !input.is_empty() {
                assert!(
                    err.contains(&format!("{input:?}")),
                    "error names the input: {err}"
                );
            }
        }
    }

    #[test]
    fn with_tag_and_digest_build_new_references() {
        let r = Reference::parse("nginx:1").unwrap();
        let d = Digest::parse(D).unwrap();
        assert_eq!(r.with_tag("2").unwrap().familiar(), "nginx:2");
        assert_eq!(r.with_digest(d.clone()).familiar(), format!("nginx:1@{D}"));
        assert_eq!(r.with_digest(d).without_digest(), r);
        assert!(r.with_tag("bad tag").is_err());
    }

    proptest! {
        #[test]
        fn canonical_form_is_a_fixed_point(
            host in prop_oneof![Just(String::new()), "[a-z]{1,8}\\.[a-z]{2,3}(:[0-9]{2,5})?/".prop_map(|s| s)],
            // A dot in the first component would make it a registry host (as in
            // Docker), so dots appear only in later components.
            path in "[a-z0-9]{1,6}((_|__|-+)[a-z0-9]{1,6}){0,2}(/[a-z0-9]{1,6}((\\.|_|-)[a-z0-9]{1,6})?){0,2}",
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        ) {
            let input = match &tag { Some(t) => format!("{host}{path}:{t}"), None => format!("{host}{path}") };
            let r = Reference::parse(&input).unwrap();
            let again = Reference::parse(&r.canonical()).unwrap();
            prop_assert_eq!(&again.canonical(), &r.canonical());
            let familiar = Reference::parse(&r.familiar()).unwrap();
            prop_assert_eq!(familiar.canonical(), r.canonical());
        }

        #[test]
        fn never_panics(input in "\\PC{0,80}") {
            let _ = Reference::parse(&input);
        }
    }
}
