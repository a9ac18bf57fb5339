//! What actually runs drives digest watches (issue 11), end to end on the API test
//! bed (nodes amd64, amd64, arm64) with the real registry: catch-up on enrolment,
//! the platform guard, per-platform change detection and stuck pods. Every scenario
//! checks what the pods run afterwards (their `imageID`, as the test bed's kubelet
//! reports it after pulling), not only what freshet wrote.

mod common;

use common::*;
use freshet_cluster::{Outcome, PassOptions, Status};
use freshet_testbed::registry::image::{ImageSpec, Platform};
use freshet_testbed::registry::push::{PushedImage, Pusher};
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::json;

const NS: &str = "team";
const AMD64_NODE: &str = "testbed-node-1";
const ARM64_NODE: &str = "testbed-node-3";

fn two() -> Vec<Platform> {
    vec![Platform::linux_amd64(), Platform::linux_arm64_v8()]
}

/// The imageIDs of the running pods of deployment `app` (label `app=<name>`).
async fn running(client: &kube::Client, name: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let list = pods
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap();
    list.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| c.image_id.clone())
        .collect()
}

/// Waits until every pod of `name` runs `digest` (its imageID ends with it).
async fn wait_runs(client: &kube::Client, name: &str, digest: &str) {
    let what = format!("{name}'s pods run {digest}");
    wait_for(&what, || async {
        let ids = running(client, name).await;
        (!ids.is_empty() && ids.iter().all(|id| id.ends_with(digest))).then_some(())
    })
    .await;
}

/// The reasons of the Events on `name`.
async fn reasons(client: &kube::Client, name: &str) -> Vec<String> {
    events(client, NS, name)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// Pushes, under `repo:tag`, an index whose children are `amd64`'s amd64 child and
/// `arm64`'s arm64 child: an index that moved for one platform only.
async fn push_mixed(
    pusher: &Pusher,
    repo: &str,
    tag: &str,
    amd64: &PushedImage,
    arm64: &PushedImage,
) -> String {
    let child = |image: &PushedImage, p: &Platform| {
        let c = image.children.iter().find(|c| &c.platform == p).unwrap();
        json!({"mediaType": c.media_type, "size": c.size, "digest": c.digest, "platform": c.platform})
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [child(amd64, &Platform::linux_amd64()), child(arm64, &Platform::linux_arm64_v8())],
    });
    pusher
        .push_manifest(
            repo,
            tag,
            "application/vnd.oci.image.index.v1+json",
            serde_json::to_vec(&index).unwrap().into(),
        )
        .await
        .unwrap()
}

/// Stale `:latest` pods are caught up when a digest watch first sees them; with
/// `freshet.io/catch-up: "false"` the old baseline behaviour stays; a second pass
/// writes nothing.
#[tokio::test]
async fn stale_latest_pods_are_caught_up_on_enrolment_and_catch_up_false_records_a_baseline() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let old = pusher
        .push("team/app", "latest", &ImageSpec::oci_index("app", two()))
        .await
        .unwrap();
    let image = format!("{}/team/app:latest", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Deploy::test("web")
        .container("app", &image)
        .annotate("freshet.io/policy", "digest")
        .create(&client, NS)
        .await;
    Deploy::test("keep")
        .container("app", &image)
        .annotate("freshet.io/policy", "digest")
        .annotate("freshet.io/catch-up", "false")
        .create(&client, NS)
        .await;
    wait_runs(&client, "web", &old.digest).await;
    wait_runs(&client, "keep", &old.digest).await;
    let new = pusher.move_tag(&old, "2").await.unwrap();
    assert_ne!(new.digest, old.digest);

    let refresher = refresher(&client, PassOptions::default());
    let first = refresher
        .run_once_at(at("2026-11-28T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(first.outcome(), Outcome::Ok, "{first:#?}");
    let web = first.workloads.iter().find(|w| w.name == "web").unwrap();
    assert_eq!(web.status, Status::Refreshed, "{first:#?}");
    let keep = first.workloads.iter().find(|w| w.name == "keep").unwrap();
    assert_ne!(keep.status, Status::Refreshed, "{first:#?}");
    let deploys = deployments(&client, NS);
    let web_d = deploys.get("web").await.unwrap();
    assert!(restarted_at(&web_d).is_some(), "caught up by a restart");
    assert_eq!(
        refreshed_digest(&web_d, &image).as_deref(),
        Some(new.digest.as_str())
    );
    let keep_d = deploys.get("keep").await.unwrap();
    assert_eq!(restarted_at(&keep_d), None, "catch-up off: a baseline only");
    assert_eq!(
        refreshed_digest(&keep_d, &image).as_deref(),
        Some(new.digest.as_str())
    );

    wait_runs(&client, "web", &new.digest).await;
    assert!(
        running(&client, "keep")
            .await
            .iter()
            .all(|id| id.ends_with(&old.digest)),
        "keep still runs the old image"
    );
    let second = refresher
        .run_once_at(at("2026-11-28T10:15:00Z"))
        .await
        .unwrap();
    assert!(second.workloads.iter().all(|w| !w.written), "{second:#?}");
}

/// A tag that moves to an amd64-only image is refused for a workload running on
/// the arm64 node (Warning Event `ImagePlatformMissing` naming the platform and the
/// node, a failure streak), while the same image moves for a workload that can only
/// run on amd64. The arm64 pod keeps running the old image.
#[tokio::test]
async fn an_amd64_only_target_is_refused_on_an_arm64_node_with_an_event_and_a_streak() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let old = pusher
        .push("team/app", "latest", &ImageSpec::oci_index("app", two()))
        .await
        .unwrap();
    let image = format!("{}/team/app:latest", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    for (name, node) in [("on-arm", ARM64_NODE), ("on-amd", AMD64_NODE)] {
        Deploy::test(name)
            .container("app", &image)
            .annotate("freshet.io/policy", "digest")
            .node(node)
            .create(&client, NS)
            .await;
        wait_runs(&client, name, &old.digest).await;
    }
    let refresher = refresher(&client, PassOptions::default());
    let first = refresher
        .run_once_at(at("2026-11-28T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(first.outcome(), Outcome::Ok, "{first:#?}");

    let amd_only = pusher
        .push("team/app", "latest", &ImageSpec::oci("app").generation("2"))
        .await
        .unwrap();
    let second = refresher
        .run_once_at(at("2026-11-28T10:15:00Z"))
        .await
        .unwrap();
    let arm = second
        .workloads
        .iter()
        .find(|w| w.name == "on-arm")
        .unwrap();
    assert_eq!(arm.transient.len(), 1, "{second:#?}");
    assert!(
        arm.transient[0].message.starts_with("platform: "),
        "{arm:#?}"
    );
    let amd = second
        .workloads
        .iter()
        .find(|w| w.name == "on-amd")
        .unwrap();
    assert_eq!(amd.status, Status::Refreshed, "{second:#?}");

    let deploys = deployments(&client, NS);
    let arm_d = deploys.get("on-arm").await.unwrap();
    assert_eq!(restarted_at(&arm_d), None, "not acted on");
    assert_eq!(
        refreshed_digest(&arm_d, &image).as_deref(),
        Some(old.digest.as_str())
    );
    assert_eq!(
        annotation(&arm_d, "freshet.io/refresh-consecutive-failures").as_deref(),
        Some(format!("{{\"{image}\":1}}").as_str())
    );
    let warning = events(&client, NS, "on-arm")
        .await
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("ImagePlatformMissing"))
        .expect("an ImagePlatformMissing event");
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    let note = warning.message.unwrap_or_default();
    for needle in [
        image.as_str(),
        "linux/arm64",
        ARM64_NODE,
        "linux/amd64",
        "Not acting",
    ] {
        assert!(note.contains(needle), "{needle}: {note}");
    }
    wait_runs(&client, "on-amd", &amd_only.digest).await;
    assert!(
        running(&client, "on-arm")
            .await
            .iter()
            .all(|id| id.ends_with(&old.digest)),
        "the arm64 pod still runs the old index"
    );

    // The streak counts on, and escalates at the threshold (3).
    for at_ in ["2026-11-28T10:30:00Z", "2026-11-28T10:45:00Z"] {
        refresher.run_once_at(at(at_)).await.unwrap();
    }
    let arm_d = deploys.get("on-arm").await.unwrap();
    assert!(
        annotation(&arm_d, "freshet.io/refresh-last-error")
            .is_some_and(|e| e.contains("3 failures in a row") && e.contains("linux/arm64")),
        "{:?}",
        arm_d.metadata.annotations
    );
    assert!(
        reasons(&client, "on-arm")
            .await
            .iter()
            .any(|r| r == "ImageRefreshFailed")
    );
}

/// An index that moved only for arm64 restarts only the workload with arm64 pods;
/// the amd64 workload records the new index digest and why nothing restarted.
#[tokio::test]
async fn an_index_change_for_arm64_only_restarts_only_the_workload_with_arm64_pods() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let first_build = pusher
        .push("team/app", "latest", &ImageSpec::oci_index("app", two()))
        .await
        .unwrap();
    let image = format!("{}/team/app:latest", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    for (name, node) in [("on-arm", ARM64_NODE), ("on-amd", AMD64_NODE)] {
        Deploy::test(name)
            .container("app", &image)
            .annotate("freshet.io/policy", "digest")
            .node(node)
            .create(&client, NS)
            .await;
        wait_runs(&client, name, &first_build.digest).await;
    }
    let refresher = refresher(&client, PassOptions::default());
    refresher
        .run_once_at(at("2026-11-28T10:00:00Z"))
        .await
        .unwrap();

    let rebuilt = pusher
        .push(
            "team/app",
            "rebuilt",
            &ImageSpec::oci_index("app", two()).generation("2"),
        )
        .await
        .unwrap();
    let mixed = push_mixed(&pusher, "team/app", "latest", &first_build, &rebuilt).await;
    let second = refresher
        .run_once_at(at("2026-11-28T10:15:00Z"))
        .await
        .unwrap();
    assert_eq!(second.outcome(), Outcome::Ok, "{second:#?}");
    let status = |n: &str| {
        second
            .workloads
            .iter()
            .find(|w| w.name == n)
            .unwrap()
            .status
    };
    assert_eq!(status("on-arm"), Status::Refreshed, "{second:#?}");
    assert_ne!(status("on-amd"), Status::Refreshed, "{second:#?}");

    let deploys = deployments(&client, NS);
    let amd_d = deploys.get("on-amd").await.unwrap();
    assert_eq!(restarted_at(&amd_d), None);
    assert_eq!(
        refreshed_digest(&amd_d, &image).as_deref(),
        Some(mixed.as_str())
    );
    let record = annotation(&amd_d, "freshet.io/refreshed").unwrap();
    assert!(
        record.contains("but the image for linux/amd64 is unchanged: nothing restarted"),
        "{record}"
    );
    wait_runs(&client, "on-arm", &mixed).await;
    assert!(
        running(&client, "on-amd")
            .await
            .iter()
            .all(|id| id.ends_with(&first_build.digest)),
        "the amd64 pod was not restarted"
    );
    let third = refresher
        .run_once_at(at("2026-11-28T10:30:00Z"))
        .await
        .unwrap();
    assert!(third.workloads.iter().all(|w| !w.written), "{third:#?}");

    // status shows what each runs, on which platform.
    let rows = refresher.status().await.unwrap();
    let row = |n: &str| rows.iter().find(|r| r.name == n).unwrap();
    let runs = |n: &str, digest: &str| {
        row(n).runs[0]
            .running
            .iter()
            .find(|d| d.digest.as_str() == digest)
            .map(|d| d.platforms.clone())
    };
    assert_eq!(
        runs("on-amd", &first_build.digest),
        Some(vec!["linux/amd64".to_owned()])
    );
    assert_eq!(runs("on-arm", &mixed), Some(vec!["linux/arm64".to_owned()]));
}

/// Pods that cannot pull (here: an amd64-only image deployed by hand on the arm64
/// node, not freshet's doing) are reported on the enrolled workload: a Warning
/// Event `ImagePullFailing` with the kubelet's message, and a failure streak.
#[tokio::test]
async fn stuck_pods_are_reported_even_when_freshet_did_not_cause_them() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    pusher
        .push(
            "team/amd",
            "latest",
            &ImageSpec::oci_index("amd", vec![Platform::linux_amd64()]),
        )
        .await
        .unwrap();
    let image = format!("{}/team/amd:latest", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Deploy::test("stuck")
        .container("app", &image)
        .annotate("freshet.io/policy", "digest")
        .node(ARM64_NODE)
        .create(&client, NS)
        .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    wait_for("the pod fails to pull", || async {
        let list = pods
            .list(&ListParams::default().labels("app=stuck"))
            .await
            .ok()?;
        list.items
            .iter()
            .flat_map(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
            })
            .any(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
            })
            .then_some(())
    })
    .await;
    let report = refresher(&client, PassOptions::default())
        .run_once_at(at("2026-11-28T10:00:00Z"))
        .await
        .unwrap();
    let stuck = &report.workloads[0];
    assert_eq!(stuck.transient.len(), 1, "{report:#?}");
    let got = reasons(&client, "stuck").await;
    assert!(got.iter().any(|r| r == "ImagePullFailing"), "{got:?}");
    assert!(got.iter().any(|r| r == "ImagePlatformMissing"), "{got:?}");
    let note = events(&client, NS, "stuck")
        .await
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("ImagePullFailing"))
        .and_then(|e| e.message)
        .unwrap();
    assert!(note.contains("no image for linux/arm64"), "{note}");
    assert!(
        running(&client, "stuck").await.iter().all(String::is_empty),
        "nothing runs"
    );

    // status explains it: the empty imageID and the stuck pull, per container.
    let rows = refresher(&client, PassOptions::default())
        .status()
        .await
        .unwrap();
    let json = serde_json::to_value(&rows).unwrap();
    let runs = &json[0]["runs"][0];
    assert_eq!(runs["container"], "app", "{json:#}");
    assert_eq!(runs["unknown"][0]["why"]["reason"], "imageId", "{json:#}");
    assert_eq!(
        runs["stuck"]["containers"][0]["node"], ARM64_NODE,
        "{json:#}"
    );
    assert_eq!(
        runs["stuck"]["containers"][0]["cause"]["platform"], "linux/arm64",
        "{json:#}"
    );
}
