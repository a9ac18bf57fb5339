//! What freshet accepts as a remote and a branch, and where a token may be sent.
//!
//! Owns the checks made before any `git push` or `git fetch`: a `--remote` value is a
//! remote name, a URL with a known scheme (`https`, `http`, `ssh`, `git`, `file`) or an
//! scp-like `host:path`, and never starts with `-` (git would read it as an option) or
//! names a remote helper (`ext::…`); a branch is a plain branch name. A token
//! (`FRESHET_GIT_TOKEN`) is never sent over plain `http://`, except to a loopback
//! address (`127.0.0.0/8`, `::1`, `localhost`), which is allowed with a warning so tests
//! and local mirrors work.
//!
//! Must not run git; [`crate::Git`] asks it about the URLs git reports.

use std::net::IpAddr;

/// Why a remote, a branch or a token's destination was refused. Nothing was run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The remote is empty.
    #[error("the remote is empty")]
    EmptyRemote,
    /// The remote starts with `-` and would be read by git as an option.
    #[error("the remote {0:?} starts with '-'; git would read it as an option")]
    OptionLikeRemote(String),
    /// The remote holds whitespace or control characters.
    #[error("the remote {0:?} holds whitespace or control characters")]
    UnsafeRemote(String),
    /// The remote names a git remote helper (`helper::address`), which runs a program.
    #[error(
        "the remote {0:?} names a remote helper (`::`); configure it as a named remote instead"
    )]
    HelperRemote(String),
    /// The remote is a URL with a scheme freshet does not push to.
    #[error("the remote {0:?} has an unsupported scheme; use https, http, ssh, git or file")]
    UnsupportedScheme(String),
    /// The branch is not a plain branch name.
    #[error("the branch {0:?} is not a valid branch name")]
    InvalidBranch(String),
    /// A token would be sent in clear text.
    #[error(
        "refusing to send FRESHET_GIT_TOKEN to {0} over plain http; use an https URL (only loopback addresses may use http)"
    )]
    TokenOverPlainHttp(String),
}

/// Checks a `--remote` value (see the module documentation). The value is shown in
/// errors scrubbed of credentials.
pub fn validate_remote(remote: &str) -> Result<(), RemoteError> {
    let shown = || crate::redact::relay(remote, &[], 256);
    if remote.is_empty() {
        return Err(RemoteError::EmptyRemote);
    }
    if remote.starts_with('-') {
        return Err(RemoteError::OptionLikeRemote(shown()));
    }
    if remote.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RemoteError::UnsafeRemote(shown()));
    }
    if let Some((scheme, _)) = remote.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        if scheme.contains("::") {
            return Err(RemoteError::HelperRemote(shown()));
        }
        return match scheme.as_str() {
            "https" | "http" | "ssh" | "git" | "file" => Ok(()),
            _ => Err(RemoteError::UnsupportedScheme(shown())),
        };
    }
    if remote.contains("::") {
        return Err(RemoteError::HelperRemote(shown()));
    }
    Ok(())
}

/// Checks a branch name the way `git check-ref-format --branch` would, for the parts
/// that matter on a command line: not empty, no leading `-`, no whitespace or control
/// characters, none of `~^:?*[\`, no `..`, `@{` or `//`, and no leading or trailing `/`
/// or `.`, no trailing `.lock`.
pub fn validate_branch(branch: &str) -> Result<(), RemoteError> {
    let bad = branch.is_empty()
        || branch.starts_with('-')
        || branch.starts_with('/')
        || branch.ends_with('/')
        || branch.starts_with('.')
        || branch.ends_with('.')
        || branch.ends_with(".lock")
        || branch == "@"
        || branch.contains("..")
        || branch.contains("@{")
        || branch.contains("//")
        || branch.contains("/.")
        || branch
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    if bad {
        Err(RemoteError::InvalidBranch(crate::redact::relay(
            branch,
            &[],
            256,
        )))
    } else {
        Ok(())
    }
}

/// Whether a token may be sent to `url`: `Err` for plain http to anything but a
/// loopback address; `Ok(true)` for plain http to loopback (the caller warns);
/// `Ok(false)` otherwise.
pub fn token_destination(url: &str) -> Result<bool, RemoteError> {
    let Some(rest) = strip_prefix_ignore_case(url, "http://") else {
        return Ok(false);
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(true)
    } else {
        Err(RemoteError::TokenOverPlainHttp(crate::redact::relay(
            url,
            &[],
            256,
        )))
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_that_git_would_read_as_options_or_programs_are_refused() {
        for ok in [
            "origin",
            "upstream/mirror",
            "https://github.com/acme/app.git",
            "HTTP://host/r",
            "git@github.com:acme/app.git",
            "file:///srv/r.git",
            "../r.git",
        ] {
            assert_eq!(validate_remote(ok), Ok(()), "{ok}");
        }
        for (bad, want) in [
            ("", "empty"),
            ("--receive-pack=touch /tmp/x", "starts with '-'"),
            ("-oProxyCommand=x", "starts with '-'"),
            ("ext::sh -c id", "whitespace"),
            ("ext::sh", "remote helper"),
            ("fd::17", "remote helper"),
            ("foo::https://x", "remote helper"),
            ("gopher://x/r", "unsupported scheme"),
            ("origin\nfake", "control"),
        ] {
            let err = validate_remote(bad).unwrap_err().to_string();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
        let err = validate_remote("-https://u:pw@h/r")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn branches_are_plain_branch_names() {
        for ok in ["main", "freshet/updates", "release-1.2", "a.b"] {
            assert_eq!(validate_branch(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "-f", "--force", "a..b", "a b", "a:b", "a~1", "x.lock", "/a", "a/", "a//b", "@",
            "a@{1}", ".a", "a/.b", "a\u{1b}",
        ] {
            assert!(validate_branch(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_token_is_never_sent_over_plain_http_except_to_loopback() {
        assert_eq!(token_destination("https://github.com/a/b"), Ok(false));
        assert_eq!(token_destination("ssh://git@h/r"), Ok(false));
        assert_eq!(token_destination("http://127.0.0.1:8080/r.git"), Ok(true));
        assert_eq!(token_destination("http://[::1]:80/r.git"), Ok(true));
        assert_eq!(token_destination("HTTP://localhost/r"), Ok(true));
        let err = token_destination("http://u:pw@git.example.com/r.git").unwrap_err();
        assert!(matches!(err, RemoteError::TokenOverPlainHttp(_)));
        assert!(!err.to_string().contains("pw"), "{err}");
        assert!(token_destination("http://127.0.0.1.evil.com/r").is_err());
        assert!(token_destination("http://localhost@evil.com/r").is_err());
    }
}
