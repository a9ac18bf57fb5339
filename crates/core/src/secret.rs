//! The one secret type of the project: credentials, tokens and passwords.
//!
//! Owns [`Secret`], a string that never shows itself: `Debug` and `Display` print
//! `***`, so a secret inside any struct, error or log line stays hidden. The only way
//! to read it is the explicit [`Secret::expose`], for the one place that sends it.
//! It must not grow conversions that hand the text out implicitly (`Deref`, `AsRef`,
//! `Serialize`) and it performs no I/O.

use std::fmt;

/// A secret string. `Debug` and `Display` print `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret's length in bytes (for validation messages that must not show it).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_and_expose_reveals() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(
            format!("{s:>10}"),
            "***",
            "formatting flags do not leak length"
        );
        assert_eq!(s.expose(), "hunter2");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            user: &'static str,
            password: Secret,
        }
        let shown = format!(
            "{:?}",
            Holder {
                user: "alice",
                password: Secret::from("hunter2".to_owned()),
            }
        );
        assert!(
            !shown.contains("hunter2") && shown.contains("alice"),
            "{shown}"
        );
        assert!(Secret::default().is_empty() && !s.is_empty());
    }
}
