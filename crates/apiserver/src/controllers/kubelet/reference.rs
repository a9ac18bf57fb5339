//! Image references as containerd reports them in a pod's container statuses:
//! `nginx:1.25` is `docker.io/library/nginx:1.25`.
//!
//! Owns the normalization of image names. It must not resolve anything.

/// Normalizes an image reference as containerd reports it: `(repository, tag or digest part)`.
/// `nginx:1.25` → `("docker.io/library/nginx", ":1.25")`, and
/// `nginx:1.25@sha256:…` → `("docker.io/library/nginx", ":1.25@sha256:…")`, so
/// `imageID` (`repo@digest`) carries no tag, as containerd reports it.
pub fn normalize(image: &str) -> (String, String) {
    let (named, digest) = match image.split_once('@') {
        Some((n, d)) => (n, format!("@{d}")),
        None => (image, String::new()),
    };
    let last_slash = named.rfind('/').map_or(0, |i| i + 1);
    let (name, suffix) = match named[last_slash..].rfind(':') {
        // `repo:tag@sha256:…`: the repository is `repo`; the tag stays in the suffix.
        Some(i) => (
            named[..last_slash + i].to_string(),
            format!("{}{digest}", &named[last_slash + i..]),
        ),
        None if !digest.is_empty() => (named.to_string(), digest),
        None => (named.to_string(), ":latest".to_string()),
    };
    let first = name.split('/').next().unwrap_or("");
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let repo = if has_registry {
        name
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    (repo, suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        for (image, repo, suffix) in [
            ("nginx", "docker.io/library/nginx", ":latest"),
            ("nginx:1.25", "docker.io/library/nginx", ":1.25"),
            ("bitnami/redis:7", "docker.io/bitnami/redis", ":7"),
            ("localhost:5000/app:v1", "localhost:5000/app", ":v1"),
            ("localhost:5000/app", "localhost:5000/app", ":latest"),
            ("ghcr.io/o/app@sha256:ab", "ghcr.io/o/app", "@sha256:ab"),
            (
                "nginx:1.25@sha256:ab",
                "docker.io/library/nginx",
                ":1.25@sha256:ab",
            ),
            (
                "localhost:5000/app:v1@sha256:ab",
                "localhost:5000/app",
                ":v1@sha256:ab",
            ),
        ] {
            assert_eq!(
                normalize(image),
                (repo.to_string(), suffix.to_string()),
                "{image}"
            );
        }
    }
}
