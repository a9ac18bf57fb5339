//! Tag listing across pages.
//!
//! Owns `GET /v2/<name>/tags/list`: it follows `Link: <…>; rel="next"` (same host
//! only, never treating a short page as the end while a Link is offered), falls back to
//! `n`/`last` paging for registries that send no Link, retries with a smaller page
//! size for registries that reject large `n` (ECR rejects `n>1000`), and drops
//! cosign-style `sha256-<hex>[.sig|.att|.sbom]` tags. Order is the registry's (many do
//! not sort); duplicates are removed.

use std::collections::HashSet;

use freshet_core::Reference;
use reqwest::header::LINK;
use reqwest::{Method, StatusCode};

use crate::client::{Client, Kind, body_detail, read_capped};
use crate::error::RegistryError;

const PAGE_SIZES: &[Option<u32>] = &[Some(1000), Some(100), None];
const MAX_PAGES: usize = 10_000;
const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

#[derive(serde::Deserialize)]
struct Page {
    tags: Option<Vec<String>>,
}

impl Client {
    /// Every tag of the reference's repository, across all pages.
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>, RegistryError> {
        let host = self.host(reference.registry());
        let repo = reference.repository();
        let registry = host.endpoint.registry.clone();
        let base = host.endpoint.base_url();
        let mut size_index = 0;
        let mut tags: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut next = Some(page_url(&base, repo, PAGE_SIZES[0], None));
        let mut pages = 0;
        // Once a registry pages with Link, a page without one is the last.
        let mut sends_links = false;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(RegistryError::Malformed {
                    host: registry.clone(),
                    detail: format!("tag list of {repo} did not end after {MAX_PAGES} pages"),
                });
            }
            let resp = self
                .send(&host, Method::GET, &url, repo, None, Kind::TagPage)
                .await?;
            match resp.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound {
                        host: registry.clone(),
                        what: format!("repository {repo}"),
                    });
                }
                StatusCode::BAD_REQUEST if tags.is_empty() && size_index + 1 < PAGE_SIZES.len() => {
                    // Some registries reject our page size: try a smaller one.
                    size_index += 1;
                    next = Some(page_url(&base, repo, PAGE_SIZES[size_index], None));
                    continue;
                }
                other => {
                    return Err(RegistryError::Malformed {
                        host: registry.clone(),
                        detail: format!(
                            "tag list of {repo} answered {other}{}",
                            body_detail(resp).await
                        ),
                    });
                }
            }
            let link = resp
                .headers()
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link);
            let body = read_capped(
                &registry,
                resp,
                MAX_PAGE_BYTES,
                &format!("tag list of {repo}"),
            )
            .await?;
            let page: Page =
                serde_json::from_slice(&body).map_err(|e| RegistryError::Malformed {
                    host: registry.clone(),
                    detail: format!("tag list of {repo} is not valid JSON: {e}"),
                })?;
            let page_tags = page.tags.unwrap_or_default();
            let mut added = 0;
            let last_tag = page_tags.last().cloned();
            for t in page_tags {
                if seen.insert(t.clone()) {
                    added += 1;
                    tags.push(t);
                }
            }
            next = match link {
                Some(link) => {
                    sends_links = true;
                    Some(resolve_link(&registry, &url, &link)?)
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
        tags.retain(|t| !is_signature_tag(t));
        Ok(tags)
    }
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
        detail: format!("tag list Link {link:?} is not a URL: {e}"),
    })?;
    if next.origin() != base.origin() {
        return Err(RegistryError::ForeignRealm {
            host: registry.to_owned(),
            detail: format!(
                "tag list Link points to another host ({}); freshet does not follow it with this registry's credentials",
                next.host_str().unwrap_or("?")
            ),
        });
    }
    Ok(next.to_string())
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
