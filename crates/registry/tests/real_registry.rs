//! The registry engine against the real CNCF distribution registry, in its open,
//! basic-auth, token-auth and pull-through-proxy configurations, filled with the
//! testbed's standard fixtures.

use std::path::Path;

use base64::Engine as _;
use freshet_core::{Digest, Platform, Reference};
use freshet_registry::{
    Client, ClientOptions, Credential, CredentialStore, ErrorClass, RegistryError, Secret, Want,
};
use freshet_testbed::registry::fixtures::{self, RepoFixture};
use freshet_testbed::registry::push::{ImageSpec, Pusher};
use freshet_testbed::registry::token::{AnonymousAccess, TokenOptions};
use freshet_testbed::registry::{RegistryOptions, RegistryServer};

fn reference(registry: &RegistryServer, rest: &str) -> Reference {
    Reference::parse(&format!("{}/{rest}", registry.host())).expect("valid test reference")
}

fn digest(s: &str) -> Digest {
    Digest::parse(s).expect("fixture digest")
}

fn client(credentials: CredentialStore) -> Client {
    Client::new(credentials, ClientOptions::default()).expect("client")
}

fn platform(s: &str) -> Platform {
    Platform::parse(s).expect("platform")
}

async fn open_with(
    seed: impl AsyncFnOnce(&Pusher) -> RepoFixture,
) -> (RegistryServer, RepoFixture) {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry starts");
    let pusher = Pusher::new(&registry).expect("pusher");
    let fixture = seed(&pusher).await;
    (registry, fixture)
}

fn write_docker_config(dir: &Path, host: &str, user: &str, password: &str) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = serde_json::json!({ "auths": { host: { "auth": auth } } });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("write config.json");
}

#[tokio::test]
async fn multi_arch_oci_index_resolves_to_index_digest_and_lists_platforms() {
    let (registry, alpine) =
        open_with(async |p| fixtures::seed_alpine(p).await.expect("seed alpine")).await;
    let client = client(CredentialStore::anonymous());
    let r = reference(&registry, "library/alpine:3.19.1");
    let want = Want {
        platforms: true,
        platform: Some(platform("linux/arm64")),
    };
    let resolved = client.resolve(&r, &want).await.expect("resolves");

    assert_eq!(resolved.digest, digest(alpine.digest("3.19.1")));
    assert!(resolved.is_index());
    let listed: Vec<String> = resolved
        .platforms
        .iter()
        .map(|p| p.platform.to_string())
        .collect();
    // The index says linux/arm64/v8; freshet reports the normalised form.
    assert_eq!(listed, ["linux/amd64", "linux/arm64"]);
    // linux/arm64 and linux/arm64/v8 are one platform.
    assert_eq!(
        resolved.platform_digest,
        Some(digest(alpine.platform_digest("3.19.1", "linux/arm64/v8")))
    );
    // `latest` is an alias of 3.19.1: same digest.
    let latest = client
        .resolve(&reference(&registry, "library/alpine"), &Want::default())
        .await;
    assert_eq!(latest.expect("latest").digest, resolved.digest);
}

#[tokio::test]
async fn docker_manifest_list_resolves_to_list_digest_not_amd64_child() {
    // Regression guard: a Docker-only Accept makes this registry answer with the
    // amd64 child's digest. The full Accept list must yield the list's own digest.
    let (registry, multi) =
        open_with(async |p| fixtures::seed_multi(p).await.expect("seed multi")).await;
    let client = client(CredentialStore::anonymous());
    let want = Want {
        platforms: true,
        platform: Some(platform("linux/amd64")),
    };
    let resolved = client
        .resolve(&reference(&registry, "team/multi:latest"), &want)
        .await
        .unwrap();
    assert_eq!(resolved.digest, digest(multi.digest("latest")));
    assert_ne!(
        resolved.digest,
        digest(multi.platform_digest("latest", "linux/amd64"))
    );
    assert_eq!(
        resolved.platform_digest,
        Some(digest(multi.platform_digest("latest", "linux/amd64")))
    );
}

#[tokio::test]
async fn amd64_only_image_has_no_arm64_digest() {
    let (registry, _) = open_with(async |p| fixtures::seed_amd64only(p).await.expect("seed")).await;
    let client = client(CredentialStore::anonymous());
    let want = Want {
        platforms: false,
        platform: Some(platform("linux/arm64/v8")),
    };
    let err = client
        .resolve(&reference(&registry, "team/amd64only:latest"), &want)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NoMatchingPlatform { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("linux/arm64"), "{message}");
    assert!(
        message.contains("linux/amd64"),
        "names what exists: {message}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn single_arch_image_has_no_platform_list_and_checks_platform_from_config() {
    let (registry, api) = open_with(async |p| fixtures::seed_api(p).await.expect("seed api")).await;
    let client = client(CredentialStore::anonymous());
    let r = reference(&registry, "team/api:1.0.0");
    let amd = Want {
        platforms: true,
        platform: Some(platform("linux/amd64")),
    };
    let resolved = client.resolve(&r, &amd).await.expect("resolves");
    assert_eq!(resolved.digest, digest(api.digest("1.0.0")));
    assert!(resolved.platforms.is_empty());
    assert_eq!(resolved.platform_digest, Some(resolved.digest.clone()));

    let arm = Want {
        platforms: false,
        platform: Some(platform("linux/arm64")),
    };
    let err = client.resolve(&r, &arm).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::NoMatchingPlatform { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn tag_at_digest_is_checked_against_the_registry() {
    let (registry, api) = open_with(async |p| fixtures::seed_api(p).await.expect("seed api")).await;
    let client = client(CredentialStore::anonymous());
    let good = reference(
        &registry,
        &format!("team/api:1.0.0@{}", api.digest("1.0.0")),
    );
    let resolved = client
        .resolve(&good, &Want::default())
        .await
        .expect("digest exists");
    assert_eq!(resolved.digest, digest(api.digest("1.0.0")));

    let missing = format!("sha256:{}", "0".repeat(64));
    let bad = reference(&registry, &format!("team/api@{missing}"));
    let err = client.resolve(&bad, &Want::default()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
}

#[tokio::test]
async fn missing_tag_and_repository_are_not_found_and_name_the_host() {
    let (registry, _) = open_with(async |p| fixtures::seed_api(p).await.expect("seed api")).await;
    let client = client(CredentialStore::anonymous());
    for rest in ["team/api:9.9.9", "team/nope:1"] {
        let err = client
            .resolve(&reference(&registry, rest), &Want::default())
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
        assert!(!err.is_transient());
        assert!(err.to_string().contains(&registry.host()), "{err}");
    }
}

#[tokio::test]
async fn moved_tag_resolves_to_the_new_digest_in_the_next_run() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let mut api = fixtures::seed_api(&pusher).await.unwrap();
    let r = reference(&registry, "team/api:stable");
    let first = client(CredentialStore::anonymous())
        .resolve(&r, &Want::default())
        .await
        .unwrap();
    assert_eq!(first.digest, digest(api.digest("stable")));

    let moved = fixtures::move_tag(&pusher, &mut api, "stable", "2")
        .await
        .unwrap();
    let second = client(CredentialStore::anonymous())
        .resolve(&r, &Want::default())
        .await
        .unwrap();
    assert_eq!(second.digest, digest(&moved.digest));
    assert_ne!(second.digest, first.digest);
}

#[tokio::test]
async fn each_unique_reference_is_asked_once_however_many_inputs_name_it() {
    let (registry, api) = open_with(async |p| fixtures::seed_api(p).await.expect("seed api")).await;
    let tags = ["1.0.0", "1.0.1", "1.1.0", "2.0.0", "stable"];
    let mut inputs = Vec::new();
    for _ in 0..20 {
        for tag in tags {
            let r = format!("{}/team/api:{tag}", registry.host());
            inputs.push((Reference::parse(&r).unwrap(), Want::default()));
        }
    }
    registry.clear_access_log();
    let client = client(CredentialStore::anonymous());
    let results = client.resolve_all(&inputs).await;
    assert_eq!(results.len(), 100);
    for ((input, _), result) in inputs.iter().zip(&results) {
        let tag = input.tag().unwrap();
        assert_eq!(
            result.as_ref().unwrap().digest,
            digest(api.digest(tag)),
            "in input order"
        );
    }
    let heads = registry.request_count("HEAD", "/v2/team/api/manifests/");
    let gets = registry.request_count("GET", "/v2/team/api/manifests/");
    assert_eq!(
        (heads, gets),
        (tags.len(), 0),
        "one HEAD per unique reference"
    );
    assert_eq!(client.stats().manifest_heads, tags.len() as u64);
}

#[tokio::test]
async fn tags_lists_every_tag_of_a_large_repository() {
    let (registry, many) = open_with(async |p| fixtures::seed_many(p).await.expect("seed")).await;
    let client = client(CredentialStore::anonymous());
    let mut tags = client
        .list_tags(&reference(&registry, "team/many"))
        .await
        .unwrap();
    assert_eq!(tags.len(), fixtures::MANY_TAG_COUNT);
    tags.sort();
    let mut want: Vec<String> = many.tags.keys().cloned().collect();
    want.sort();
    assert_eq!(tags, want);
}

#[tokio::test]
async fn cosign_signature_tags_are_filtered_from_tag_lists() {
    let (registry, api) = open_with(async |p| fixtures::seed_api(p).await.expect("seed api")).await;
    let pusher = Pusher::new(&registry).unwrap();
    let sig_tag = format!("{}.sig", api.digest("1.0.0").replace(':', "-"));
    pusher
        .push(fixtures::API, &sig_tag, &ImageSpec::oci("cosign"))
        .await
        .unwrap();
    let tags = client(CredentialStore::anonymous())
        .list_tags(&reference(&registry, "team/api"))
        .await
        .unwrap();
    assert!(!tags.iter().any(|t| t.starts_with("sha256-")), "{tags:?}");
    assert_eq!(tags.len(), fixtures::API_TAGS.len());
}

async fn basic_registry() -> (RegistryServer, RepoFixture) {
    let registry = RegistryServer::start(RegistryOptions::basic().user("ci", "s3cret-pass"))
        .await
        .expect("basic registry starts");
    let api = fixtures::seed_api(&Pusher::new(&registry).unwrap())
        .await
        .unwrap();
    (registry, api)
}

#[tokio::test]
async fn basic_auth_with_credentials_from_docker_config() {
    let (registry, api) = basic_registry().await;
    let dir = tempfile::tempdir().unwrap();
    write_docker_config(dir.path(), &registry.host(), "ci", "s3cret-pass");
    let store = CredentialStore::anonymous()
        .with_docker_config_dir(dir.path())
        .unwrap();
    let resolved = client(store)
        .resolve(&reference(&registry, "team/api:1.0.0"), &Want::default())
        .await
        .expect("resolves with basic credentials");
    assert_eq!(resolved.digest, digest(api.digest("1.0.0")));
}

#[tokio::test]
async fn basic_auth_with_credentials_from_a_pull_secret() {
    let (registry, api) = basic_registry().await;
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret-pass");
    let secret = serde_json::json!({ "auths": { registry.host(): { "auth": auth } } });
    let store = CredentialStore::anonymous()
        .with_pull_secret("default/regcred", secret.to_string().as_bytes())
        .unwrap();
    let resolved = client(store)
        .resolve(&reference(&registry, "team/api:1.1.0"), &Want::default())
        .await
        .expect("resolves with pull-secret credentials");
    assert_eq!(resolved.digest, digest(api.digest("1.1.0")));
}

#[tokio::test]
async fn basic_auth_without_or_with_wrong_credentials_is_unauthorized_and_says_so() {
    let (registry, _) = basic_registry().await;
    let r = reference(&registry, "team/api:1.0.0");
    let err = client(CredentialStore::anonymous())
        .resolve(&r, &Want::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unauthorized, "{err}");
    assert!(err.to_string().contains(&registry.host()), "{err}");
    assert!(!err.is_transient());

    let wrong = CredentialStore::anonymous().with_credential(
        &registry.host(),
        Credential::Basic {
            username: "ci".into(),
            password: Secret::new("wrong-password"),
        },
    );
    let err = client(wrong)
        .resolve(&r, &Want::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unauthorized, "{err}");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("wrong-password"),
        "no secret in errors: {shown}"
    );
}

async fn token_registry(
    anonymous: AnonymousAccess,
) -> (RegistryServer, fixtures::StandardFixtures) {
    let options = TokenOptions::new()
        .user("ci", "tok3n-pass")
        .anonymous(anonymous);
    let registry = RegistryServer::start(RegistryOptions::token(options))
        .await
        .expect("token registry starts");
    let pusher = Pusher::new(&registry).unwrap();
    let api = fixtures::seed_api(&pusher).await.unwrap();
    let alpine = fixtures::seed_alpine(&pusher).await.unwrap();
    let multi = fixtures::seed_multi(&pusher).await.unwrap();
    let fx = fixtures::StandardFixtures {
        alpine,
        api,
        multi,
        amd64only: RepoFixture {
            repo: String::new(),
            tags: Default::default(),
        },
        many: RepoFixture {
            repo: String::new(),
            tags: Default::default(),
        },
    };
    (registry, fx)
}

#[tokio::test]
async fn token_auth_anonymous_bearer_flow_gets_one_token_per_repository_scope() {
    let (registry, fx) = token_registry(AnonymousAccess::Pull).await;
    let token = registry.token_server().unwrap();
    token.clear_requests();
    let client = client(CredentialStore::anonymous());
    let mut inputs = Vec::new();
    for _ in 0..10 {
        for rest in [
            "team/api:1.0.0",
            "team/api:2.0.0",
            "library/alpine:3.19.0",
            "team/multi:latest",
        ] {
            inputs.push((
                reference(&registry, rest),
                Want {
                    platforms: true,
                    platform: None,
                },
            ));
        }
    }
    let results = client.resolve_all(&inputs).await;
    assert_eq!(
        results[0].as_ref().unwrap().digest,
        digest(fx.api.digest("1.0.0"))
    );
    assert_eq!(
        results[2].as_ref().unwrap().digest,
        digest(fx.alpine.digest("3.19.0"))
    );
    assert_eq!(
        results[3].as_ref().unwrap().digest,
        digest(fx.multi.digest("latest"))
    );
    assert!(results.iter().all(Result::is_ok));
    for scope in [
        "repository:team/api:pull",
        "repository:library/alpine:pull",
        "repository:team/multi:pull",
    ] {
        assert_eq!(
            token.request_count(scope),
            1,
            "one token request for {scope}"
        );
    }
    assert_eq!(token.requests().len(), 3);
    assert!(
        token.requests().iter().all(|r| r.user.is_none()),
        "anonymous flow"
    );
}

#[tokio::test]
async fn token_auth_credentialed_flow_uses_docker_config_credentials() {
    let (registry, fx) = token_registry(AnonymousAccess::Deny).await;
    let token = registry.token_server().unwrap();
    let r = reference(&registry, "team/api:1.0.1");

    let err = client(CredentialStore::anonymous())
        .resolve(&r, &Want::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unauthorized, "{err}");
    assert!(err.to_string().contains(&registry.host()), "{err}");

    let dir = tempfile::tempdir().unwrap();
    write_docker_config(dir.path(), &registry.host(), "ci", "tok3n-pass");
    let store = CredentialStore::anonymous()
        .with_docker_config_dir(dir.path())
        .unwrap();
    token.clear_requests();
    let resolved = client(store)
        .resolve(&r, &Want::default())
        .await
        .expect("credentialed");
    assert_eq!(resolved.digest, digest(fx.api.digest("1.0.1")));
    let requests = token.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].user.as_deref(), Some("ci"));
}

#[tokio::test]
async fn pull_through_proxy_serves_upstream_digests() {
    let upstream = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&upstream).unwrap();
    let alpine = fixtures::seed_alpine(&pusher).await.unwrap();
    let api = fixtures::seed_api(&pusher).await.unwrap();
    let proxy = RegistryServer::start(RegistryOptions::proxy(&upstream))
        .await
        .unwrap();

    let client = client(CredentialStore::anonymous());
    let want = Want {
        platforms: true,
        platform: Some(platform("linux/arm64")),
    };
    let a = client
        .resolve(&reference(&proxy, "library/alpine:3.18.4"), &want)
        .await
        .unwrap();
    assert_eq!(a.digest, digest(alpine.digest("3.18.4")));
    assert_eq!(
        a.platform_digest,
        Some(digest(alpine.platform_digest("3.18.4", "linux/arm64/v8")))
    );
    let b = client
        .resolve(&reference(&proxy, "team/api:2.0.0"), &Want::default())
        .await
        .unwrap();
    assert_eq!(b.digest, digest(api.digest("2.0.0")));
    assert!(
        upstream.request_count("GET", "/v2/library/alpine/manifests/") >= 1,
        "went upstream"
    );
}

#[tokio::test]
async fn unreachable_registry_is_a_transient_connect_error_naming_the_host() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let options = ClientOptions {
        max_attempts: 1,
        ..ClientOptions::default()
    };
    let client = Client::new(CredentialStore::anonymous(), options).unwrap();
    let r = Reference::parse(&format!("127.0.0.1:{port}/team/api:1")).unwrap();
    let err: RegistryError = client.resolve(&r, &Want::default()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Connect, "{err}");
    assert!(err.is_transient());
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("egress"), "says what to check: {message}");
}
