//! Redirects: real registries answer a blob GET with a redirect to a CDN on another
//! host. freshet follows it without credentials, never follows a manifest to another
//! host, and reports a loop as a loop. The registry is the real distribution
//! registry (its `redirect` storage middleware plays the CDN's front door) and the
//! CDN is a fault server on a second loopback address, 127.0.0.2, serving the
//! registry's own blob files.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use freshet_core::manifest::DOCKER_MANIFEST;
use freshet_core::{Digest, Platform, Reference};
use freshet_registry::{
    Client, ClientOptions, Credential, CredentialStore, ErrorClass, RegistryError, Want,
};
use freshet_testbed::faults::{FaultServer, Reply, SeenRequest};
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};

const SECOND_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A "CDN" on 127.0.0.2 that serves files under the registry's storage root, once
/// that root is known.
async fn cdn(root: Arc<OnceLock<PathBuf>>) -> FaultServer {
    FaultServer::start_on(SECOND_HOST, move |req| {
        let Some(root) = root.get() else {
            return Reply::status(503);
        };
        let path = root.join(req.path().trim_start_matches('/'));
        match std::fs::read(&path) {
            Ok(bytes) if !req.path().contains("..") => Reply::status(200)
                .header("Content-Type", "application/octet-stream")
                .body(bytes),
            _ => Reply::status(404),
        }
    })
    .await
    .expect("cdn on 127.0.0.2")
}

fn platform(s: &str) -> Platform {
    Platform::parse(s).expect("platform")
}

fn blob_gets_at(server: &FaultServer) -> Vec<SeenRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path().starts_with("/docker/registry/v2/blobs/"))
        .collect()
}

#[tokio::test]
async fn single_arch_platform_check_follows_a_blob_redirect_to_another_host_without_credentials() {
    let root = Arc::new(OnceLock::new());
    let cdn = cdn(root.clone()).await;
    let registry = RegistryServer::start(
        RegistryOptions::basic()
            .user("ci", "s3cret-pass")
            .redirect_blobs_to(cdn.base_url()),
    )
    .await
    .expect("basic registry with blob redirects starts");
    root.set(registry.dir().join("data")).unwrap();
    let api = fixtures::seed_api(&Pusher::new(&registry).unwrap())
        .await
        .expect("seed api");

    let store = CredentialStore::anonymous()
        .with_credential(&registry.host(), Credential::basic("ci", "s3cret-pass"));
    let client = Client::new(store, ClientOptions::default()).unwrap();
    let r = Reference::parse(&format!("{}/team/api:1.0.0", registry.host())).unwrap();
    let amd = Want {
        platforms: false,
        platform: Some(platform("linux/amd64")),
    };
    let resolved = client
        .resolve(&r, &amd)
        .await
        .expect("resolves through the blob redirect");
    let want = Digest::parse(api.digest("1.0.0")).unwrap();
    assert_eq!(resolved.platform_digest, Some(want));

    let fetched = blob_gets_at(&cdn);
    assert_eq!(
        fetched.len(),
        1,
        "the config blob came from the CDN: {fetched:?}"
    );
    assert!(
        cdn.requests()
            .iter()
            .all(|r| r.header("authorization").is_none()),
        "credentials crossed to the CDN host: {:?}",
        cdn.requests()
    );
    assert_eq!(client.stats().blob_gets, 1, "one logical blob GET");
    // And the registry did see credentials: the redirect came after authenticating.
    assert!(registry.request_count("GET", "/v2/team/api/blobs/") >= 1);

    // The wrong platform is still refused with what the image offers.
    let arm = Want {
        platforms: false,
        platform: Some(platform("linux/arm64")),
    };
    let err = client.resolve(&r, &arm).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::NoMatchingPlatform { ref available, .. } if available == "linux/amd64"),
        "{err}"
    );
}

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;

async fn registry(handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> FaultServer {
    FaultServer::start(move |req| {
        if req.path() == "/v2/" {
            Reply::status(200)
        } else {
            handler(req)
        }
    })
    .await
    .expect("registry")
}

fn reference(server: &FaultServer) -> Reference {
    Reference::parse(&format!("{}/a/b:1", server.host())).unwrap()
}

#[tokio::test]
async fn manifests_are_never_followed_to_another_host() {
    let other = FaultServer::start_on(SECOND_HOST, |_| Reply::manifest(MANIFEST, DOCKER_MANIFEST))
        .await
        .unwrap();
    let target = format!("{}/v2/a/b/manifests/1", other.base_url());
    let server = registry(move |_| Reply::status(307).header("Location", &target)).await;
    let store = CredentialStore::anonymous()
        .with_credential(&server.host(), Credential::basic("ci", "hunter2"));
    let err = Client::new(store, ClientOptions::default())
        .unwrap()
        .resolve(&reference(&server), &Want::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::ForeignRealm, "{err}");
    assert!(
        err.to_string().contains("127.0.0.2"),
        "names the target: {err}"
    );
    assert!(other.requests().is_empty(), "the other host was contacted");
}

#[tokio::test]
async fn a_302_loop_is_reported_as_a_redirect_loop_not_as_302_found() {
    let server = registry(|req| Reply::status(302).header("Location", req.path())).await;
    let err = Client::anonymous()
        .unwrap()
        .resolve(&reference(&server), &Want::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::RedirectLoop { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::MalformedResponse);
    assert!(!err.is_transient());
    let message = err.to_string();
    assert!(
        message.contains("redirected") && message.contains("loops"),
        "{message}"
    );
}

#[tokio::test]
async fn an_endless_chain_of_redirects_stops_after_a_few_hops() {
    let server = registry(|req| {
        let n: u64 = req.query("hop").and_then(|h| h.parse().ok()).unwrap_or(0);
        Reply::status(307).header("Location", &format!("{}?hop={}", req.path(), n + 1))
    })
    .await;
    let err = Client::anonymous()
        .unwrap()
        .resolve(&reference(&server), &Want::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::RedirectLoop { hops: 6, .. }),
        "{err}"
    );
    assert_eq!(server.count("HEAD", "/v2/a/b/manifests/1"), 6);
}

#[tokio::test]
async fn a_blob_redirect_may_not_downgrade_to_plain_http_on_a_foreign_host() {
    // The registry itself is loopback http, so a downgrade cannot be shown here;
    // instead prove a blob redirect to a non-http scheme is refused with a reason.
    let server = registry(|req| {
        if req.path().contains("/blobs/") {
            Reply::status(307).header("Location", "ftp://cdn.example/blob")
        } else {
            Reply::manifest(MANIFEST, DOCKER_MANIFEST)
        }
    })
    .await;
    let want = Want {
        platforms: false,
        platform: Some(platform("linux/amd64")),
    };
    let err = Client::anonymous()
        .unwrap()
        .resolve(&reference(&server), &want)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Redirect { .. }), "{err}");
    assert!(err.to_string().contains("ftp://cdn.example/blob"), "{err}");
}
