//! The registry engine against faults the real registry cannot produce: 429 storms,
//! 5xx bursts, slow answers, truncated and oversized bodies, missing and wrong digest
//! headers, foreign token realms, odd tag pagination and rate-limit headers. The
//! misbehaving server is `freshet_testbed::faults`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use freshet_core::Reference;
use freshet_core::manifest::DOCKER_MANIFEST;
use freshet_registry::{
    Client, ClientOptions, Credential, CredentialStore, ErrorClass, RateLimit, Secret, Want,
};
use freshet_testbed::faults::{FaultServer, Reply, SeenRequest, sha256_digest};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;

fn fast_options() -> ClientOptions {
    ClientOptions {
        backoff_base: Duration::from_millis(1),
        ..ClientOptions::default()
    }
}

fn client_with(options: ClientOptions) -> Client {
    Client::new(CredentialStore::anonymous(), options).expect("client")
}

fn reference(server: &FaultServer, rest: &str) -> Reference {
    Reference::parse(&format!("{}/{rest}", server.host())).expect("reference")
}

/// A registry whose `/v2/` is open and whose manifests are answered by `manifests`.
async fn registry(
    manifests: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
) -> FaultServer {
    FaultServer::start(move |req| {
        if req.path() == "/v2/" {
            Reply::status(200)
        } else {
            manifests(req)
        }
    })
    .await
    .expect("fault server")
}

/// Resolves `a/b:1` with default fast options, expecting a failure.
async fn resolve_err(server: &FaultServer) -> freshet_registry::RegistryError {
    client_with(fast_options())
        .resolve(&reference(server, "a/b:1"), &Want::default())
        .await
        .expect_err("the fault makes resolving fail")
}

/// Lists the tags of `a/b` with default fast options.
async fn list_tags(server: &FaultServer) -> Result<Vec<String>, freshet_registry::RegistryError> {
    client_with(fast_options())
        .list_tags(&reference(server, "a/b"))
        .await
}

/// Fails the first `n` calls with `fail`, then answers `ok`.
fn fail_first(
    n: usize,
    fail: impl Fn() -> Reply + Send + Sync + 'static,
    ok: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
) -> impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static {
    let calls = AtomicUsize::new(0);
    move |req| {
        if calls.fetch_add(1, Ordering::SeqCst) < n {
            fail()
        } else {
            ok(req)
        }
    }
}

fn manifest_ok(_: &SeenRequest) -> Reply {
    Reply::manifest(MANIFEST, DOCKER_MANIFEST)
}

#[tokio::test]
async fn rate_limited_429_honours_retry_after_then_succeeds() {
    let server = registry(fail_first(
        2,
        || Reply::status(429).header("Retry-After", "1"),
        manifest_ok,
    ))
    .await;
    let client = client_with(fast_options());
    let resolved = client
        .resolve(&reference(&server, "a/b:1"), &Want::default())
        .await;
    assert_eq!(
        resolved
            .expect("resolves after the storm")
            .digest
            .to_string(),
        sha256_digest(MANIFEST)
    );
    assert_eq!(server.count("HEAD", "/v2/a/b/manifests/"), 3);
    assert_eq!(client.stats().retries, 2);
}

#[tokio::test]
async fn a_429_storm_fails_as_rate_limited_naming_the_host() {
    let server = registry(|_| Reply::status(429).header("Retry-After", "1")).await;
    let client = client_with(ClientOptions {
        max_attempts: 2,
        ..fast_options()
    });
    let err = client
        .resolve(&reference(&server, "a/b:1"), &Want::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited, "{err}");
    assert!(err.is_transient());
    assert!(err.to_string().contains(&server.host()), "{err}");
    assert_eq!(server.count("HEAD", "/v2/a/b/manifests/"), 2);
}

#[tokio::test]
async fn retry_after_beyond_the_cap_fails_at_once_instead_of_hanging() {
    let server = registry(|_| Reply::status(429).header("Retry-After", "3600")).await;
    let client = client_with(fast_options());
    let err = client
        .resolve(&reference(&server, "a/b:1"), &Want::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited, "{err}");
    assert!(
        err.to_string().contains("3600"),
        "says when to come back: {err}"
    );
    assert_eq!(server.count("HEAD", "/v2/a/b/manifests/"), 1);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_succeed() {
    let server = registry(fail_first(2, || Reply::status(503), manifest_ok)).await;
    let client = client_with(fast_options());
    client
        .resolve(&reference(&server, "a/b:1"), &Want::default())
        .await
        .expect("third try");
    assert_eq!(server.count("HEAD", "/v2/a/b/manifests/"), 3);
}

#[tokio::test]
async fn persistent_server_errors_fail_as_transient_server_errors() {
    let server = registry(|_| Reply::status(500)).await;
    let client = client_with(fast_options());
    let err = client
        .resolve(&reference(&server, "a/b:1"), &Want::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::ServerError, "{err}");
    assert!(err.is_transient());
    assert_eq!(
        server.count("HEAD", "/v2/a/b/manifests/"),
        3,
        "max_attempts"
    );
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let server = registry(|_| Reply::status(404)).await;
    let client = client_with(fast_options());
    let err = client
        .resolve(&reference(&server, "a/b:1"), &Want::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    assert_eq!(server.count("HEAD", "/v2/a/b/manifests/"), 1);
}

#[tokio::test]
async fn a_slow_registry_times_out_as_transient() {
    let server = registry(|_| manifest_ok(&dummy()).delayed(Duration::from_secs(5))).await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(200),
        max_attempts: 1,
        ..fast_options()
    };
    let err = client_with(options)
        .resolve(&reference(&server, "a/b:1"), &Want::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Timeout, "{err}");
    assert!(err.is_transient());
    assert!(err.to_string().contains(&server.host()), "{err}");
}

fn dummy() -> SeenRequest {
    SeenRequest {
        method: "GET".into(),
        target: "/".into(),
        headers: Vec::new(),
    }
}

#[tokio::test]
async fn missing_digest_header_falls_back_to_get_and_hashes_the_raw_bytes() {
    // Regression guard for caches that drop Docker-Content-Digest. The body's odd
    // spacing proves the hash is of the raw bytes, not a re-serialisation.
    let raw = [MANIFEST, b"  \n"].concat();
    let body = raw.clone();
    let server = registry(move |_| {
        Reply::manifest(&body, DOCKER_MANIFEST).without_header("Docker-Content-Digest")
    })
    .await;
    let client = client_with(fast_options());
    let resolved = client
        .resolve(&reference(&server, "a/b:1"), &Want::default())
        .await
        .unwrap();
    assert_eq!(resolved.digest.to_string(), sha256_digest(&raw));
    assert_eq!(server.count("HEAD", "/v2/a/b/manifests/"), 1);
    assert_eq!(server.count("GET", "/v2/a/b/manifests/"), 1);
}

#[tokio::test]
async fn a_digest_header_that_does_not_match_the_body_is_rejected() {
    let wrong = format!("sha256:{}", "0".repeat(64));
    let server = registry(move |req| {
        let reply =
            Reply::manifest(MANIFEST, DOCKER_MANIFEST).without_header("Docker-Content-Digest");
        if req.method == "GET" {
            reply.header("Docker-Content-Digest", &wrong)
        } else {
            reply
        }
    })
    .await;
    let err = resolve_err(&server).await;
    assert_eq!(err.class(), ErrorClass::MalformedResponse, "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[tokio::test]
async fn a_truncated_manifest_body_is_reported_as_cut_off() {
    let server = registry(|_| {
        Reply::manifest(MANIFEST, DOCKER_MANIFEST)
            .without_header("Docker-Content-Digest")
            .truncated(MANIFEST.len(), 20)
    })
    .await;
    let err = resolve_err(&server).await;
    assert_eq!(err.class(), ErrorClass::MalformedResponse, "{err}");
    assert!(err.to_string().contains("cut off"), "{err}");
}

#[tokio::test]
async fn an_oversized_manifest_is_refused_without_reading_it() {
    let server = registry(|_| {
        Reply::manifest(MANIFEST, DOCKER_MANIFEST)
            .without_header("Docker-Content-Digest")
            .declare_length(5 * 1024 * 1024)
    })
    .await;
    let err = resolve_err(&server).await;
    assert_eq!(err.class(), ErrorClass::TooLarge, "{err}");
    assert!(!err.is_transient());
}

/// A registry on 127.0.0.1 whose Bearer realm is a token server on 127.0.0.2.
async fn foreign_realm_pair() -> (FaultServer, FaultServer) {
    let token = FaultServer::start_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), |_| {
        Reply::json(
            200,
            &serde_json::json!({"token": "anon-token", "expires_in": 300}),
        )
    })
    .await
    .expect("token server on 127.0.0.2");
    let realm = format!("{}/token", token.base_url());
    let registry = FaultServer::start(move |req| {
        if req.header("authorization") == Some("Bearer anon-token") {
            return if req.path() == "/v2/" {
                Reply::status(200)
            } else {
                manifest_ok(req)
            };
        }
        Reply::status(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="{realm}",service="reg""#),
        )
    })
    .await
    .expect("registry");
    (registry, token)
}

#[tokio::test]
async fn credentials_never_go_to_a_foreign_token_realm() {
    let (registry, token) = foreign_realm_pair().await;
    let store = CredentialStore::anonymous().with_credential(
        &registry.host(),
        Credential::Basic {
            username: "ci".into(),
            password: Secret::new("hunter2-secret"),
        },
    );
    let client = Client::new(store, fast_options()).unwrap();
    let err = client
        .resolve(&reference(&registry, "a/b:1"), &Want::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::ForeignRealm, "{err}");
    assert!(!err.is_transient());
    let message = err.to_string();
    assert!(
        message.contains("127.0.0.2"),
        "names the realm host: {message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    assert!(
        token
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none()),
        "the foreign realm saw credentials: {:?}",
        token.requests()
    );
}

#[tokio::test]
async fn anonymous_pulls_may_use_a_foreign_realm() {
    let (registry, token) = foreign_realm_pair().await;
    let client = client_with(fast_options());
    client
        .resolve(&reference(&registry, "a/b:1"), &Want::default())
        .await
        .expect("anonymous");
    let requests = token.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].query("scope").as_deref(),
        Some("repository:a/b:pull")
    );
    assert!(requests[0].header("authorization").is_none());
}

#[tokio::test]
async fn a_trusted_realm_receives_credentials_when_configured() {
    let (registry, token) = foreign_realm_pair().await;
    let store = CredentialStore::anonymous()
        .with_credential(&registry.host(), Credential::basic("ci", "pw"));
    let options = ClientOptions {
        trusted_realms: vec![(registry.host(), token.host())],
        ..fast_options()
    };
    let client = Client::new(store, options).unwrap();
    client
        .resolve(&reference(&registry, "a/b:1"), &Want::default())
        .await
        .expect("trusted");
    let sent = token.requests();
    assert!(
        sent[0]
            .header("authorization")
            .is_some_and(|h| h.starts_with("Basic "))
    );
}

const ALL_TAGS: [&str; 7] = ["a", "b", "c", "d", "e", "f", "g"];

/// Tag pages of `page` tags after `last`; `link` renders the next-page Link value.
fn tag_pages(
    page: usize,
    link: impl Fn(&str, &str) -> Option<String> + Send + Sync + 'static,
) -> impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static {
    move |req| {
        let start = req
            .query("last")
            .and_then(|l| ALL_TAGS.iter().position(|t| *t == l))
            .map_or(0, |i| i + 1);
        let tags: Vec<&str> = ALL_TAGS.iter().skip(start).take(page).copied().collect();
        let mut reply = Reply::json(200, &serde_json::json!({"name": "a/b", "tags": tags}));
        if let Some(last) = tags.last()
            && start + tags.len() < ALL_TAGS.len()
            && let Some(value) = link(req.path(), last)
        {
            reply = reply.header("Link", &value);
        }
        reply
    }
}

#[tokio::test]
async fn tag_lists_follow_relative_link_pages() {
    let server = registry(tag_pages(2, |path, last| {
        Some(format!(r#"<{path}?n=2&last={last}>; rel="next""#))
    }))
    .await;
    let tags = list_tags(&server).await.unwrap();
    assert_eq!(tags, ALL_TAGS);
    assert_eq!(server.count("GET", "/v2/a/b/tags/list"), 4);
}

#[tokio::test]
async fn tag_lists_follow_absolute_same_host_links() {
    let base = Arc::new(std::sync::OnceLock::<String>::new());
    let b = base.clone();
    let server = registry(tag_pages(3, move |path, last| {
        Some(format!(
            r#"<{}{path}?last={last}>; rel="next""#,
            b.get().unwrap()
        ))
    }))
    .await;
    base.set(server.base_url()).unwrap();
    let tags = list_tags(&server).await.unwrap();
    assert_eq!(tags, ALL_TAGS);
}

#[tokio::test]
async fn tag_lists_without_link_fall_back_to_n_and_last() {
    // A registry that caps pages silently and sends no Link: a short page is not the end.
    let server = registry(tag_pages(3, |_, _| None)).await;
    let tags = list_tags(&server).await.unwrap();
    assert_eq!(tags, ALL_TAGS);
}

#[tokio::test]
async fn tag_lists_shrink_the_page_size_when_n_is_rejected() {
    let pages = tag_pages(2, |path, last| {
        Some(format!(r#"<{path}?last={last}>; rel="next""#))
    });
    let server = registry(
        move |req| match req.query("n").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n > 100 => Reply::json(
                400,
                &serde_json::json!({"errors": [{"code": "PAGINATION_NUMBER_INVALID"}]}),
            ),
            _ => pages(req),
        },
    )
    .await;
    let tags = list_tags(&server).await.unwrap();
    assert_eq!(tags, ALL_TAGS);
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.query("n").as_deref() == Some("100"))
    );
}

#[tokio::test]
async fn tag_list_links_to_another_host_are_refused() {
    let server = registry(tag_pages(2, |path, last| {
        Some(format!(
            r#"<http://127.0.0.2:1{path}?last={last}>; rel="next""#
        ))
    }))
    .await;
    let err = list_tags(&server).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::ForeignRealm, "{err}");
}

#[tokio::test]
async fn requests_to_one_registry_stay_under_the_concurrency_cap() {
    let server = registry(|req| manifest_ok(req).delayed(Duration::from_millis(20))).await;
    let client = client_with(ClientOptions {
        max_concurrency_per_registry: 3,
        ..fast_options()
    });
    let inputs: Vec<(Reference, Want)> = (0..30)
        .map(|i| (reference(&server, &format!("a/b:{i}")), Want::default()))
        .collect();
    let results = client.resolve_all(&inputs).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(server.count("HEAD", "/v2/a/b/manifests/"), 30);
    assert!(
        server.max_in_flight() <= 3,
        "in flight at once: {}",
        server.max_in_flight()
    );
}

#[tokio::test]
async fn docker_hub_rate_limit_headers_are_tracked() {
    let server = registry(|req| {
        manifest_ok(req)
            .header("ratelimit-limit", "100;w=21600")
            .header("ratelimit-remaining", "7;w=21600")
    })
    .await;
    let client = client_with(fast_options());
    client
        .resolve(&reference(&server, "a/b:1"), &Want::default())
        .await
        .unwrap();
    let limits = client.rate_limits();
    assert_eq!(
        limits,
        vec![(
            server.host(),
            RateLimit {
                limit: Some(100),
                remaining: 7,
                window_secs: Some(21600)
            }
        )]
    );
}

// Regression tests for issue 16: bounded reads, numbers, waits and foreign text.

#[tokio::test]
async fn a_huge_error_body_on_v2_is_read_only_up_to_the_cap() {
    // Declares 1.2 GiB, sends 1 MiB, then hangs up: the client reads a bounded prefix.
    let server = FaultServer::start(|req| {
        if req.path() == "/v2/" {
            Reply::status(400)
                .body(vec![b'x'; 1024 * 1024])
                .declare_length(1_200_000_000)
        } else {
            manifest_ok(req)
        }
    })
    .await
    .unwrap();
    let err = resolve_err(&server).await;
    assert_eq!(err.class(), ErrorClass::MalformedResponse, "{err}");
    assert!(err.to_string().len() < 1000, "bounded message: {err}");
}

#[tokio::test]
async fn an_endless_link_pagination_stops_at_the_tag_cap_as_too_large() {
    let server = registry(|req| {
        let page: u64 = req.query("page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let tags: Vec<String> = (0..100).map(|i| format!("t{page}-{i}")).collect();
        Reply::json(200, &serde_json::json!({ "tags": tags })).header(
            "Link",
            &format!(r#"<{}?page={}>; rel="next""#, req.path(), page + 1),
        )
    })
    .await;
    let client = client_with(ClientOptions {
        tag_limits: freshet_registry::TagLimits {
            max_tags: 1_000,
            ..Default::default()
        },
        ..fast_options()
    });
    let err = client
        .list_tags(&reference(&server, "a/b"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::TooLarge, "{err}");
    assert!(
        err.to_string().contains(&server.host()),
        "names the host: {err}"
    );
    assert_eq!(server.count("GET", "/v2/a/b/tags/list"), 11);
}

#[tokio::test]
async fn tag_listing_is_capped_in_total_bytes() {
    let server = registry(|req| {
        let page: u64 = req.query("page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let tags: Vec<String> = (0..10)
            .map(|i| format!("{page}-{i}-{}", "x".repeat(90)))
            .collect();
        Reply::json(200, &serde_json::json!({ "tags": tags })).header(
            "Link",
            &format!(r#"<{}?page={}>; rel="next""#, req.path(), page + 1),
        )
    })
    .await;
    let client = client_with(ClientOptions {
        tag_limits: freshet_registry::TagLimits {
            max_bytes: 10_000,
            ..Default::default()
        },
        ..fast_options()
    });
    let err = client
        .list_tags(&reference(&server, "a/b"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::TooLarge, "{err}");
    assert!(err.to_string().contains("10000 bytes"), "{err}");
}

#[tokio::test]
async fn tags_with_escape_sequences_or_newlines_are_dropped() {
    let server = registry(|_| {
        Reply::json(
            200,
            &serde_json::json!({"tags": ["1.0", "1.1\u{1b}[2J", "2.0\nFAKE 9.9", "bell\u{7}", "1.2"]}),
        )
    })
    .await;
    let tags = list_tags(&server).await.unwrap();
    assert_eq!(tags, ["1.0", "1.2"]);
}

#[tokio::test]
async fn registry_error_text_is_quoted_with_control_characters_escaped() {
    let server = registry(|_| {
        Reply::json(
            400,
            &serde_json::json!({"errors": [{"code": "BAD", "message": "x\u{1b}[2J\u{7}\nFAKE"}]}),
        )
    })
    .await;
    let err = client_with(fast_options())
        .list_tags(&reference(&server, "a/b"))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(!message.chars().any(char::is_control), "{message:?}");
    assert!(message.contains("\\u{1b}[2J"), "{message}");
}

#[tokio::test]
async fn oversized_response_headers_are_not_classed_connect_or_retried() {
    let server = registry(|req| manifest_ok(req).header("X-Huge", &"a".repeat(1024 * 1024))).await;
    let err = resolve_err(&server).await;
    assert_ne!(err.class(), ErrorClass::Connect, "{err}");
    assert!(!err.is_transient(), "{err}");
    assert_eq!(server.count("HEAD", "/v2/a/b/manifests/"), 1, "not retried");
}

#[tokio::test]
async fn a_realm_url_with_user_info_sends_one_authorization_header() {
    let token = FaultServer::start(|_| {
        Reply::json(200, &serde_json::json!({"token": "tok", "expires_in": 300}))
    })
    .await
    .unwrap();
    let realm = format!("http://realm-user:realm-pass@{}/token", token.host());
    let server = FaultServer::start(move |req| {
        if req.header("authorization") == Some("Bearer tok") {
            return if req.path() == "/v2/" {
                Reply::status(200)
            } else {
                manifest_ok(req)
            };
        }
        Reply::status(401).header("WWW-Authenticate", &format!(r#"Bearer realm="{realm}""#))
    })
    .await
    .unwrap();
    let store =
        CredentialStore::anonymous().with_credential(&server.host(), Credential::basic("ci", "pw"));
    Client::new(store, fast_options())
        .unwrap()
        .resolve(&reference(&server, "a/b:1"), &Want::default())
        .await
        .expect("resolves with a token");
    let seen = token.requests();
    assert_eq!(seen.len(), 1);
    let authorizations: Vec<&String> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        authorizations,
        ["Basic Y2k6cHc="],
        "exactly the configured credential"
    );
}

#[tokio::test]
async fn a_platform_entry_that_is_an_index_resolves_to_the_image_inside_it() {
    use freshet_core::manifest::{OCI_INDEX, OCI_MANIFEST};
    let image = MANIFEST;
    let inner = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": sha256_digest(image),
            "size": image.len(), "platform": {"os": "linux", "architecture": "amd64"}}]
    }))
    .unwrap();
    let outer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_INDEX, "digest": sha256_digest(&inner),
            "size": inner.len(), "platform": {"os": "linux", "architecture": "amd64"}}]
    }))
    .unwrap();
    let (inner_d, outer_d) = (sha256_digest(&inner), sha256_digest(&outer));
    let server = registry(move |req| {
        let path = req.path();
        if path.ends_with(&inner_d) {
            Reply::manifest(&inner, OCI_INDEX)
        } else if path.ends_with(&outer_d) || path.ends_with("/manifests/1") {
            Reply::manifest(&outer, OCI_INDEX)
        } else {
            Reply::manifest(image, OCI_MANIFEST)
        }
    })
    .await;
    let want = Want {
        platforms: false,
        platform: Some(freshet_core::Platform::parse("linux/amd64").unwrap()),
    };
    let resolved = client_with(fast_options())
        .resolve(&reference(&server, "a/b:1"), &want)
        .await
        .expect("resolves");
    assert_eq!(
        resolved.platform_digest.map(|d| d.to_string()),
        Some(sha256_digest(image)),
        "the image digest, not the nested index's"
    );
}

/// A registry that asks for Basic credentials, so a credential lookup happens.
async fn basic_auth_registry() -> FaultServer {
    FaultServer::start(|req| match req.header("authorization") {
        None => Reply::status(401).header("WWW-Authenticate", r#"Basic realm="r""#),
        Some(_) if req.path() == "/v2/" => Reply::status(200),
        Some(_) => manifest_ok(req),
    })
    .await
    .expect("basic auth registry")
}

fn helper_script(dir: &std::path::Path, name: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn store_with_config(dir: &std::path::Path, config: serde_json::Value) -> CredentialStore {
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    CredentialStore::anonymous()
        .with_docker_config_dir(dir)
        .unwrap()
        .with_helper_search_path(vec![dir.to_owned()])
        .with_helper_timeout(Duration::from_millis(300))
}

#[tokio::test]
async fn a_hanging_credential_helper_fails_only_its_registry_and_states_the_timeout() {
    let hanging = basic_auth_registry().await;
    let public = registry(manifest_ok).await;
    let dir = tempfile::tempdir().unwrap();
    helper_script(dir.path(), "hang", "exec sleep 1000");
    let store = store_with_config(
        dir.path(),
        serde_json::json!({"credHelpers": {hanging.host(): "hang"}}),
    );
    let client = Client::new(store, fast_options()).unwrap();
    let err = client
        .resolve(&reference(&hanging, "a/b:1"), &Want::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Credentials, "{err}");
    assert!(
        err.to_string().contains("300ms"),
        "states the real timeout: {err}"
    );
    client
        .resolve(&reference(&public, "a/b:1"), &Want::default())
        .await
        .expect("an unrelated registry is not held up");
}

#[tokio::test]
async fn a_missing_creds_store_binary_is_named_as_missing() {
    let server = basic_auth_registry().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_config(dir.path(), serde_json::json!({"credsStore": "gone"}));
    let err = Client::new(store, fast_options())
        .unwrap()
        .resolve(&reference(&server, "a/b:1"), &Want::default())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("docker-credential-gone") && message.contains("missing"),
        "{message}"
    );
}

#[tokio::test]
async fn a_failing_helpers_stderr_never_reaches_the_error() {
    let server = basic_auth_registry().await;
    let dir = tempfile::tempdir().unwrap();
    helper_script(
        dir.path(),
        "leaky",
        "echo 'refresh_token=SUPER-SECRET-123 expired' >&2; exit 1",
    );
    let store = store_with_config(
        dir.path(),
        serde_json::json!({"credHelpers": {server.host(): "leaky"}}),
    );
    let err = Client::new(store, fast_options())
        .unwrap()
        .resolve(&reference(&server, "a/b:1"), &Want::default())
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("SUPER-SECRET"), "{shown}");
    assert!(shown.contains("docker-credential-leaky"), "{shown}");
}

#[tokio::test]
async fn a_huge_error_body_from_the_token_realm_is_read_only_up_to_the_cap() {
    let token = FaultServer::start(|_| {
        Reply::status(403)
            .body(vec![b'y'; 1024 * 1024])
            .declare_length(1_200_000_000)
    })
    .await
    .unwrap();
    let realm = format!("{}/token", token.base_url());
    let server = FaultServer::start(move |_| {
        Reply::status(401).header("WWW-Authenticate", &format!(r#"Bearer realm="{realm}""#))
    })
    .await
    .unwrap();
    let err = resolve_err(&server).await;
    assert_eq!(err.class(), ErrorClass::Forbidden, "{err}");
    assert!(err.to_string().len() < 1000, "bounded message: {err}");
}

/// A server that answers every request with `status` and a chunked body that never
/// ends (no Content-Length to refuse by), until the client hangs up. Stops when
/// dropped.
struct EndlessChunked {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EndlessChunked {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn endless_chunked(status: &'static str) -> EndlessChunked {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let start = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                );
                if stream.write_all(start.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("1000\r\n{}\r\n", "z".repeat(0x1000));
                while stream.write_all(chunk.as_bytes()).await.is_ok() {}
            });
        }
    });
    EndlessChunked { addr, task }
}

#[tokio::test]
async fn an_endless_chunked_error_body_on_v2_does_not_grow_without_bound() {
    let server = endless_chunked("400 Bad Request").await;
    let r = Reference::parse(&format!("{}/a/b:1", server.addr)).unwrap();
    let err = client_with(fast_options())
        .resolve(&r, &Want::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::MalformedResponse, "{err}");
    assert!(err.to_string().len() < 1000, "bounded message: {err}");
}

#[tokio::test]
async fn an_endless_chunked_tag_page_is_too_large_naming_the_host() {
    let server = endless_chunked("200 OK").await;
    // `/v2/` answers 200 with an endless body too; the ping does not read it.
    let r = Reference::parse(&format!("{}/a/b", server.addr)).unwrap();
    let client = client_with(ClientOptions {
        tag_limits: freshet_registry::TagLimits {
            max_bytes: 1024 * 1024,
            ..Default::default()
        },
        ..fast_options()
    });
    let err = client.list_tags(&r).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::TooLarge, "{err}");
    assert!(err.to_string().contains(&server.addr.to_string()), "{err}");
}
