//! Which redirects are followed, and with or without credentials.
//!
//! Owns [`decide`], a pure function from (rule, where the request started, where it
//! has been, where it is sent next) to a [`Hop`]. The rules: a redirect on the same
//! host and port is followed with the same credentials; a redirect to another host
//! is followed only for blobs (registries send blob GETs to a CDN) and then without
//! any credentials, for the rest of the chain; manifests, tags, pings and tokens
//! never leave their host; no downgrade from https to plain http except on loopback
//! or an insecure registry; at most [`MAX_REDIRECTS`] hops, and a URL seen twice is a
//! loop. It sends nothing.

use url::Url;

use crate::endpoint::is_loopback;

/// Redirect hops followed at most for one request.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// What a request may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Same host and port only (manifests, tags, pings, tokens).
    SameHost,
    /// Blobs: another host too, without credentials.
    Blob,
}

/// The decision for one redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hop {
    /// Follow; send credentials only when `credentials` is true.
    Follow { credentials: bool },
    /// Refused: the reason, for the message.
    Refuse(&'static str),
    /// A URL came round again, or there were too many hops.
    Loop,
}

/// True when two URLs name the same host and port.
pub(crate) fn same_host(a: &Url, b: &Url) -> bool {
    a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Decides a redirect from `seen.last()` to `next`. `seen` holds every URL of the
/// chain so far, the original request first. `insecure` is true when the registry
/// may be spoken to in plain http.
pub(crate) fn decide(rule: Rule, seen: &[Url], next: &Url, insecure: bool) -> Hop {
    let Some(origin) = seen.first() else {
        return Hop::Refuse("no request to redirect");
    };
    if seen.contains(next) || seen.len() > MAX_REDIRECTS {
        return Hop::Loop;
    }
    if !matches!(next.scheme(), "http" | "https") {
        return Hop::Refuse("only http and https redirects are followed");
    }
    let downgrade = next.scheme() == "http"
        && seen.iter().any(|u| u.scheme() == "https")
        && !insecure
        && !next.host_str().is_some_and(is_loopback);
    if downgrade {
        return Hop::Refuse("freshet does not follow a redirect from https to plain http");
    }
    let stayed_home = seen.iter().all(|u| same_host(origin, u)) && same_host(origin, next);
    match rule {
        _ if stayed_home => Hop::Follow { credentials: true },
        Rule::Blob => Hop::Follow { credentials: false },
        Rule::SameHost => Hop::Refuse(
            "freshet follows only blob redirects to another host (manifests, tags and tokens are served by the registry itself, and credentials never cross hosts)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn redirect_decisions_table() {
        let reg = "https://reg.example/v2/a/blobs/sha256:1";
        let follow = Hop::Follow { credentials: true };
        let anon = Hop::Follow { credentials: false };
        let cases: Vec<(Rule, Vec<&str>, &str, bool, Hop)> = vec![
            // Same host: followed with credentials, whatever the rule.
            (
                Rule::SameHost,
                vec![reg],
                "https://reg.example/other",
                false,
                follow.clone(),
            ),
            (
                Rule::Blob,
                vec![reg],
                "https://reg.example/other",
                false,
                follow.clone(),
            ),
            // Another port is another host.
            (
                Rule::Blob,
                vec![reg],
                "https://reg.example:444/x",
                false,
                anon.clone(),
            ),
            // A blob goes to the CDN without credentials; a manifest does not go.
            (
                Rule::Blob,
                vec![reg],
                "https://cdn.example/x?sig=1",
                false,
                anon.clone(),
            ),
            (
                Rule::SameHost,
                vec![reg],
                "https://cdn.example/x",
                false,
                Hop::Refuse(""),
            ),
            // Once off the registry's host, never credentials again, even back home.
            (
                Rule::Blob,
                vec![reg, "https://cdn.example/x"],
                "https://reg.example/y",
                false,
                anon.clone(),
            ),
            // Downgrades: refused, except loopback or an insecure registry.
            (
                Rule::Blob,
                vec![reg],
                "http://cdn.example/x",
                false,
                Hop::Refuse(""),
            ),
            (
                Rule::Blob,
                vec![reg],
                "http://127.0.0.2:9/x",
                false,
                anon.clone(),
            ),
            (
                Rule::Blob,
                vec![reg],
                "http://cdn.example/x",
                true,
                anon.clone(),
            ),
            (
                Rule::Blob,
                vec!["http://127.0.0.1:5000/v2/"],
                "http://127.0.0.2:80/x",
                false,
                anon.clone(),
            ),
            // Other schemes: refused.
            (
                Rule::Blob,
                vec![reg],
                "ftp://cdn.example/x",
                false,
                Hop::Refuse(""),
            ),
            // Loops and endless chains.
            (
                Rule::Blob,
                vec![reg, "https://cdn.example/x"],
                reg,
                false,
                Hop::Loop,
            ),
            (Rule::SameHost, vec![reg], reg, false, Hop::Loop),
            (
                Rule::SameHost,
                vec![
                    reg,
                    "https://reg.example/1",
                    "https://reg.example/2",
                    "https://reg.example/3",
                    "https://reg.example/4",
                    "https://reg.example/5",
                ],
                "https://reg.example/6",
                false,
                Hop::Loop,
            ),
        ];
        for (rule, seen, next, insecure, want) in cases {
            let seen: Vec<Url> = seen.into_iter().map(u).collect();
            let got = decide(rule, &seen, &u(next), insecure);
            let same = match (&got, &want) {
                (Hop::Refuse(_), Hop::Refuse(_)) => true,
                (a, b) => a == b,
            };
            assert!(
                same,
                "{rule:?} {seen:?} -> {next}: got {got:?}, want {want:?}"
            );
        }
    }
}
