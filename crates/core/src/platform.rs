//! Platforms (`os/architecture[/variant]`) and their normalisation.
//!
//! Owns the rules that make two spellings of one platform equal: `linux/arm64` and
//! `linux/arm64/v8` are the same, `aarch64` is `arm64`, `x86_64` is `amd64`, and a bare
//! `arm` means `arm/v7`, as containerd's platform matcher does.

use std::fmt;
use std::str::FromStr;

/// A normalised platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Operating system, for example `linux`.
    pub os: String,
    /// CPU architecture in GOARCH spelling, for example `amd64` or `arm64`.
    pub architecture: String,
    /// CPU variant, for example `v7`; `None` where the architecture has one default.
    pub variant: Option<String>,
}

/// Why a string is not a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// Not of the form `os/arch[/variant]`.
    #[error(
        "invalid platform {0:?}: expected OS/ARCH or OS/ARCH/VARIANT, for example linux/amd64 or linux/arm64/v8"
    )]
    Malformed(String),
}

impl Platform {
    /// Builds a normalised platform from its parts.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let os = os.to_ascii_lowercase();
        let arch = architecture.to_ascii_lowercase();
        let variant = variant
            .filter(|v| !v.is_empty())
            .map(str::to_ascii_lowercase);
        let (architecture, variant) = match (arch.as_str(), variant.as_deref()) {
            ("aarch64" | "arm64", None | Some("v8" | "8")) => ("arm64".to_owned(), None),
            ("aarch64", v) => ("arm64".to_owned(), v.map(str::to_owned)),
            ("x86_64" | "x86-64" | "amd64", None) => ("amd64".to_owned(), None),
            ("x86_64" | "x86-64", v) => ("amd64".to_owned(), v.map(str::to_owned)),
            ("i386" | "386", v) => ("386".to_owned(), v.map(str::to_owned)),
            ("armhf", None) => ("arm".to_owned(), Some("v7".to_owned())),
            ("armel", None) => ("arm".to_owned(), Some("v6".to_owned())),
            ("arm", None) => ("arm".to_owned(), Some("v7".to_owned())),
            ("arm", Some(v)) => (
                "arm".to_owned(),
                Some(if v.starts_with('v') {
                    v.to_owned()
                } else {
                    format!("v{v}")
                }),
            ),
            (a, v) => (a.to_owned(), v.map(str::to_owned)),
        };
        Self {
            os,
            architecture,
            variant,
        }
    }

    /// Parses `os/arch` or `os/arch/variant`.
    pub fn parse(input: &str) -> Result<Self, PlatformError> {
        let parts: Vec<&str> = input.split('/').collect();
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => Ok(Self::new(os, arch, None)),
            [os, arch, variant] if valid(os) && valid(arch) && valid(variant) => {
                Ok(Self::new(os, arch, Some(variant)))
            }
            _ => Err(PlatformError::Malformed(input.to_owned())),
        }
    }

    /// The platform of this machine's build target, as a default for `--platform`.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        Self::new("linux", arch, None)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_equivalent_spellings() {
        let table = [
            ("linux/arm64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/x86_64", "linux/amd64"),
            ("Linux/AMD64", "linux/amd64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("windows/amd64", "windows/amd64"),
            ("linux/s390x", "linux/s390x"),
        ];
        for (input, want) in table {
            assert_eq!(Platform::parse(input).unwrap().to_string(), want, "{input}");
        }
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap(),
            Platform::parse("linux/arm64").unwrap()
        );
    }

    #[test]
    fn rejects_malformed_platforms() {
        for input in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/am d64",
        ] {
            let err = Platform::parse(input).unwrap_err().to_string();
            assert!(err.contains("expected OS/ARCH"), "{input}: {err}");
        }
    }
}
