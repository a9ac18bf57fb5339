//! `BuildTimes` (newest-build's build times) against a misbehaving registry whose config
//! blobs live on another host, as on Docker Hub, GHCR, ECR and Quay: the blob GET
//! answers 307 to a storage host, which must be followed without credentials, and each
//! image's config is read once however many tags point at it.

use std::net::{IpAddr, Ipv4Addr};

use freshet_core::{Platform, Reference};
use freshet_registry::{BuildTimes, Client};
use freshet_testbed::faults::{FaultServer, Reply, sha256_digest};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[tokio::test]
async fn a_config_blob_on_another_host_is_read_once_without_credentials() {
    let config = br#"{"architecture":"amd64","os":"linux","created":"2026-03-01T12:00:00Z","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let config_digest = sha256_digest(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
        "layers": [],
    }))
    .unwrap();
    let manifest_digest = sha256_digest(&manifest);

    let body = config.clone();
    let cdn = FaultServer::start_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), move |_| {
        Reply::status(200).body(body.clone())
    })
    .await
    .expect("cdn");
    let cdn_url = format!("{}/signed/blob?sig=x", cdn.base_url());
    let (m, md) = (manifest.clone(), manifest_digest.clone());
    let registry = FaultServer::start(move |req| {
        let path = req.path();
        if path == "/v2/" {
            Reply::status(200)
        } else if path.contains("/manifests/") && req.method == "HEAD" {
            Reply::status(200)
                .header("Content-Type", OCI_MANIFEST)
                .header("Docker-Content-Digest", &md)
                .declare_length(m.len())
        } else if path.contains("/manifests/") {
            Reply::manifest(&m, OCI_MANIFEST)
        } else if path.contains("/blobs/") {
            Reply::status(307).header("Location", &cdn_url)
        } else {
            Reply::status(404)
        }
    })
    .await
    .expect("registry");

    let times = BuildTimes::new(Client::anonymous().unwrap());
    let amd64 = Platform::new("linux", "amd64", None);
    for tag in ["aaaa1111", "bbbb2222"] {
        let r = Reference::parse(&format!("{}/team/app:{tag}", registry.host())).unwrap();
        let t = times.created(&r, &amd64).await.expect("build time");
        assert_eq!(t.to_rfc3339(), "2026-03-01T12:00:00+00:00");
    }
    // Two tags, one image: one manifest GET, one blob GET, one storage GET.
    assert_eq!(registry.count("GET", "/v2/team/app/manifests/"), 1);
    assert_eq!(registry.count("GET", "/v2/team/app/blobs/"), 1);
    assert_eq!(cdn.count("GET", "/signed/"), 1);
    assert!(
        cdn.requests()
            .iter()
            .all(|r| r.header("authorization").is_none()),
        "no credential reaches the storage host"
    );
}
