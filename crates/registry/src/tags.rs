//! Tag listing across pages.
//!
//! Owns `GET /v2/<name>/tags/list`: it follows `Link: <…>; rel="next"` (same host
//! only, never treating a short page as the end while a Link is offered), falls back to
//! `n`/`last` paging for registries that send no Link, retries with a smaller page
//! size for registries that reject large `n` (ECR rejects `n>1000`), and drops
//! cosign-style `sha256-<hex>[.sig|.att|.sbom]` tags. Order is the registry's (many do
//! not sort); duplicates are removed; tags outside the tag grammar are dropped (so no
//! escape sequence or newline reaches a terminal). The whole list is capped in pages,
//! tags and bytes ([`TagLimits`]). It talks to registries only through
//! [`Hosts::send`].

use std::collections::HashSet;

use freshet_core::Reference;
use reqwest::header::LINK;
use reqwest::{Method, StatusCode};

use crate::body::{body_detail, read_capped};
use crate::error::RegistryError;
use crate::host::{Ask, Host, Hosts};
use crate::options::TagLimits;
use crate::stats::Kind;
use crate::text::quote;

const PAGE_SIZES: &[Option<u32>] = &[Some(1000), Some(100), None];
const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

#[derive(serde::Deserialize)]
struct Page {
    tags: Option<Vec<String>>,
}

/// One page as read: its `rel="next"` Link, its body size and its tags.
struct PageRead {
    link: Option<String>,
    bytes: usize,
    tags: Vec<String>,
}

/// What has been read so far, against the caps.
struct Listing<'a> {
    registry: String,
    repo: &'a str,
    limits: TagLimits,
    tags: Vec<String>,
    seen: HashSet<String>,
    invalid: usize,
    bytes: usize,
    pages: usize,
}

impl Listing<'_> {
    fn too_large(&self, limit: usize, unit: &'static str) -> RegistryError {
        RegistryError::TooLarge {
            host: self.registry.clone(),
            what: format!("tag list of {}", self.repo),
            limit,
            unit,
        }
    }

    /// Counts one more page; refuses past the page cap.
    fn page(&mut self) -> Result<(), RegistryError> {
        self.pages += 1;
        if self.pages > self.limits.max_pages {
            return Err(self.too_large(self.limits.max_pages, "pages"));
        }
        Ok(())
    }

    /// The byte budget left for the next page.
    fn page_budget(&self) -> usize {
        MAX_PAGE_BYTES.min(self.limits.max_bytes.saturating_sub(self.bytes))
    }

    /// Adds a page's tags; returns how many were new. Tags outside the tag grammar
    /// are dropped (and counted).
    fn add(&mut self, bytes: usize, page_tags: Vec<String>) -> Result<usize, RegistryError> {
        self.bytes += bytes;
        let mut added = 0;
        for t in page_tags {
            if !is_valid_tag(&t) {
                if self.invalid == 0 {
                    tracing::warn!(
                        registry = %self.registry,
                        repo = self.repo,
                        tag = %quote(&t, 80),
                        "dropping a tag that is not a valid tag name"
                    );
                }
                self.invalid += 1;
                continue;
            }
            if self.seen.insert(t.clone()) {
                added += 1;
                self.tags.push(t);
                if self.tags.len() > self.limits.max_tags {
                    return Err(self.too_large(self.limits.max_tags, "tags"));
                }
            }
        }
        Ok(added)
    }
}

/// Every tag of the reference's repository, across all pages, within `limits`.
pub(crate) async fn list_tags(
    hosts: &Hosts,
    reference: &Reference,
    limits: TagLimits,
) -> Result<Vec<String>, RegistryError> {
    let host = hosts.get(reference.registry());
    let repo = reference.repository();
    let base = host.endpoint.base_url();
    let mut listing = Listing {
        registry: host.name().to_owned(),
        repo,
        limits,
        tags: Vec::new(),
        seen: HashSet::new(),
        invalid: 0,
        bytes: 0,
        pages: 0,
    };
    let mut size_index = 0;
    let mut next = Some(page_url(&base, repo, PAGE_SIZES[0], None));
    // Once a registry pages with Link, a page without one is the last.
    let mut sends_links = false;
    while let Some(url) = next.take() {
        listing.page()?;
        let Some(page) = fetch_page(hosts, &host, &listing, &url, &mut size_index).await? else {
            next = Some(page_url(&base, repo, PAGE_SIZES[size_index], None));
            continue;
        };
        let last_tag = page.tags.last().cloned();
        let added = listing.add(page.bytes, page.tags)?;
        next = match page.link {
            Some(link) => {
                sends_links = true;
                Some(resolve_link(&listing.registry, &url, &link)?)
            }
            None if sends_links => None,
            // No Link: keep asking with `last` while pages bring new tags, so a
            // registry that silently caps its pages is still read to the end.
            None if added > 0 => {
                last_tag.map(|l| page_url(&base, repo, PAGE_SIZES[size_index], Some(&l)))
            }
            None => None,
        };
    }
    let mut tags = listing.tags;
    tags.retain(|t| !is_signature_tag(t));
    Ok(tags)
}

/// One page, or `None` when the registry rejected the page size and a smaller one
/// (now in `size_index`) should be tried.
async fn fetch_page(
    hosts: &Hosts,
    host: &Host,
    listing: &Listing<'_>,
    url: &str,
    size_index: &mut usize,
) -> Result<Option<PageRead>, RegistryError> {
    let repo = listing.repo;
    let what = format!("tag list of {repo}");
    let ask = Ask {
        method: Method::GET,
        url,
        repository: repo,
        accept: None,
        kind: Kind::TagPage,
        what: &what,
    };
    let resp = hosts.send(host, &ask).await?;
    match resp.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => {
            return Err(RegistryError::NotFound {
                host: listing.registry.clone(),
                what: format!("repository {repo}"),
            });
        }
        StatusCode::BAD_REQUEST
            if listing.tags.is_empty() && *size_index + 1 < PAGE_SIZES.len() =>
        {
            // Some registries reject our page size: try a smaller one.
            *size_index += 1;
            return Ok(None);
        }
        other => {
            return Err(RegistryError::Malformed {
                host: listing.registry.clone(),
                detail: format!("{what} answered {other}{}", body_detail(resp).await),
            });
        }
    }
    let link = resp
        .headers()
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(next_link);
    let budget = listing.page_budget();
    let timeout = hosts.transport().options().request_timeout;
    let body = read_capped(&listing.registry, resp, budget, &what, timeout)
        .await
        .map_err(|e| match e {
            // The whole list's byte cap is what ran out, not the page's.
            RegistryError::TooLarge { .. } if budget < MAX_PAGE_BYTES => {
                listing.too_large(listing.limits.max_bytes, "bytes")
            }
            other => other,
        })?;
    let page: Page = serde_json::from_slice(&body).map_err(|e| RegistryError::Malformed {
        host: listing.registry.clone(),
        detail: format!("{what} is not valid JSON: {e}"),
    })?;
    Ok(Some(PageRead {
        link,
        bytes: body.len(),
        tags: page.tags.unwrap_or_default(),
    }))
}

/// The OCI tag grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn page_url(base: &str, repo: &str, n: Option<u32>, last: Option<&str>) -> String {
    let mut url = url::Url::parse(&format!("{base}/v2/{repo}/tags/list")).expect("valid base url");
    {
        let mut q = url.query_pairs_mut();
        if let Some(n) = n {
            q.append_pair("n", &n.to_string());
        }
        if let Some(last) = last {
            q.append_pair("last", last);
        }
    }
    let s = url.to_string();
    s.strip_suffix('?').map(str::to_owned).unwrap_or(s)
}

/// The target of a `rel="next"` link in one `Link` header value.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            p.trim()
                .replace(' ', "")
                .eq_ignore_ascii_case("rel=\"next\"")
                || p.trim().eq_ignore_ascii_case("rel=next")
        });
        is_next.then(|| target.to_owned())
    })
}

/// Resolves a Link target against the current page; it must stay on the same origin.
fn resolve_link(registry: &str, current: &str, link: &str) -> Result<String, RegistryError> {
    let base = url::Url::parse(current).expect("current page url is valid");
    let next = base.join(link).map_err(|e| RegistryError::Malformed {
        host: registry.to_owned(),
        detail: format!("tag list Link {} is not a URL: {e}", quote(link, 200)),
    })?;
    if next.origin() != base.origin() {
        return Err(RegistryError::ForeignRealm {
            host: registry.to_owned(),
            detail: format!(
                "tag list Link points to another host ({}); freshet does not follow it with this registry's credentials",
                quote(next.host_str().unwrap_or("?"), 200)
            ),
        });
    }
    Ok(next.to_string())
}

/// Fuzzing entry point, not an API: where a `Link` header leads from `current`.
#[doc(hidden)]
pub fn fuzz_link(
    registry: &str,
    current: &str,
    header: &str,
) -> Option<Result<String, RegistryError>> {
    next_link(header).map(|link| resolve_link(registry, current, &link))
}

/// `sha256-<64 hex>` optionally followed by `.sig`, `.att` or `.sbom`.
fn is_signature_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let (hex, suffix) = rest.split_at(rest.len().min(64));
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && matches!(suffix, "" | ".sig" | ".att" | ".sbom")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=100&last=x>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=100&last=x")
        );
        assert_eq!(
            next_link(r#"<https://r/v2/a/tags/list?last=1>; rel="prev", <https://r/v2/a/tags/list?last=9>; rel="next""#).as_deref(),
            Some("https://r/v2/a/tags/list?last=9")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn links_stay_on_origin() {
        let cur = "http://127.0.0.1:5000/v2/a/tags/list?n=1000";
        assert_eq!(
            resolve_link("r", cur, "/v2/a/tags/list?last=x").unwrap(),
            "http://127.0.0.1:5000/v2/a/tags/list?last=x"
        );
        assert!(resolve_link("r", cur, "http://127.0.0.1:5001/v2/a/tags/list").is_err());
        assert!(resolve_link("r", cur, "https://evil.example/v2/a/tags/list").is_err());
    }

    #[test]
    fn signature_tags_are_recognised() {
        let h = "a".repeat(64);
        for (t, sig) in [
            (format!("sha256-{h}"), true),
            (format!("sha256-{h}.sig"), true),
            (format!("sha256-{h}.att"), true),
            (format!("sha256-{h}.sbom"), true),
            (format!("sha256-{h}.foo"), false),
            ("sha256-abc.sig".to_owned(), false),
            ("1.2.3".to_owned(), false),
        ] {
            assert_eq!(is_signature_tag(&t), sig, "{t}");
        }
    }

    #[test]
    fn tags_outside_the_grammar_are_recognised() {
        let long = "a".repeat(129);
        let max = "a".repeat(128);
        for (t, ok) in [
            ("1.2.3", true),
            ("latest", true),
            ("_x", true),
            ("v1.0-rc_1", true),
            (max.as_str(), true),
            (long.as_str(), false),
            ("", false),
            ("-x", false),
            (".x", false),
            ("1.0\n2.0", false),
            ("1.0\u{1b}[2J", false),
            ("bell\u{7}", false),
            ("a b", false),
            ("ü", false),
        ] {
            assert_eq!(is_valid_tag(t), ok, "{t:?}");
        }
    }

    #[test]
    fn page_urls() {
        assert_eq!(
            page_url("http://h", "a/b", Some(1000), None),
            "http://h/v2/a/b/tags/list?n=1000"
        );
        assert_eq!(
            page_url("http://h", "a", None, Some("v1+x")),
            "http://h/v2/a/tags/list?last=v1%2Bx"
        );
        assert_eq!(
            page_url("http://h", "a", None, None),
            "http://h/v2/a/tags/list"
        );
    }
}
