//! Image references as containerd reports them in a pod's container statuses:
//! `nginx:1.25` is `docker.io/library/nginx:1.25`.
//!
//! Owns the normalization of image names. It must not resolve anything.

/// Normalizes an image reference as containerd reports it: `(repository, tag or digest part)`.
/// `nginx:1.25` → `("docker.io/library/nginx", ":1.25")`.
pub fn normalize(image: &str) -> (String, String) {
    let (name, suffix) = match image.split_once('@') {
        Some((n, d)) => (n.to_string(), format!("@{d}")),
        None => {
            let last_slash = image.rfind('/').map_or(0, |i| i + 1);
            match image[last_slash..].rfind(':') {
                Some(i) => (
                    image[..last_slash + i].to_string(),
                    image[last_slash + i..].to_string(),
                ),
                None => (image.to_string(), ":latest".to_string()),
            }
        }
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
        ] {
            assert_eq!(
                normalize(image),
                (repo.to_string(), suffix.to_string()),
                "{image}"
            );
        }
    }
}
