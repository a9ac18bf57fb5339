//! Argo CD Applications in a real `freshet run --once` pass, for the cases the seed
//! tests (`argocd.rs`) leave out: another writer changing an Application between
//! freshet's read and its patch, an Application selected by an `ImageUpdater`
//! resource instead of annotations, and credentials read from Secrets (a pull secret
//! for a registry that needs basic auth, and `git:secret:<ns>/<name>` for a Git
//! server that needs it).
//!
//! Everything is real but the cluster: the built binary, the `docker-registry`
//! (open, or with htpasswd users), the API test bed over HTTPS with kubectl, and
//! `git` (through `git http-backend` behind a basic-auth check). The conflict is made
//! without racing: the test bed's write hook changes the Application just before
//! freshet's first patch of it is handled, so that patch's `resourceVersion` is stale.

mod argocd_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argocd_support::{Bed, IU, annotations, application, report_of};
use freshet_apiserver::resources::ResourceDef;
use freshet_apiserver::store::UpdateMode;
use freshet_apiserver::{ClusterOptions, WriteHook};
use freshet_testbed::git::{git, identify};
use freshet_testbed::git_http::GitHttpServer;
use freshet_testbed::registry::{Credentials, RegistryOptions};
use serde_json::{Value, json};

/// The annotations of a preview Application following `repo:preview` by digest into
/// Helm parameters `image.repository` and `image.tag`.
fn preview_notes(repo: &str) -> Value {
    annotations(&[
        (
            &format!("{IU}image-list"),
            &format!("backend={repo}:preview"),
        ),
        (&format!("{IU}backend.update-strategy"), "digest"),
        (&format!("{IU}backend.helm.image-name"), "image.repository"),
        (&format!("{IU}backend.helm.image-tag"), "image.tag"),
    ])
}

fn helm_source(params: Value) -> Value {
    json!({"project": "default", "source": {
        "repoURL": "https://git.example/acme/deploy.git", "path": "charts/backend",
        "targetRevision": "main", "helm": {"parameters": params}}})
}

#[tokio::test]
async fn a_conflicting_writer_is_kept_and_freshet_re_reads_and_re_plans_on_409() {
    // The other writer: just before freshet's first patch of `backend-preview` is
    // handled, it adds a Helm parameter (a list a stale merge patch would replace).
    let seen = Arc::new(AtomicUsize::new(0));
    let hook_seen = seen.clone();
    let hook = WriteHook::new(move |store, call| {
        if call.verb != "patch" || call.plural != "applications" || call.name != "backend-preview" {
            return;
        }
        if call.manager == "freshet" && hook_seen.fetch_add(1, Ordering::SeqCst) == 0 {
            let def = ResourceDef::find("argoproj.io", "v1alpha1", "applications").unwrap();
            store
                .modify(def, call.namespace, call.name, UpdateMode::Main, |app| {
                    let params = app["spec"]["source"]["helm"]["parameters"]
                        .as_array_mut()
                        .unwrap();
                    params.push(json!({"name": "replicaCount", "value": "3"}));
                    app["metadata"]["annotations"]["team.example/owner"] = json!("platform");
                })
                .expect("the other writer's change is stored");
        }
    });
    let bed = Bed::with(
        RegistryOptions::open(),
        ClusterOptions::default().before_write(hook),
    )
    .await;
    let pinned = format!("{}:sha-1a2b3c4", bed.repo);
    bed.kubectl(&["create", "namespace", "argocd"], None).await;
    bed.apply(&[application(
        "backend-preview",
        preview_notes(&bed.repo),
        helm_source(json!([{"name": "image.tag", "value": "sha-1a2b3c4"}])),
        "Helm",
        &pinned,
    )])
    .await;
    let before = bed.app("backend-preview").await;

    let (out, report) = bed.run(&[("FRESHET_LOG", "info")]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "one stale patch refused, one after reading again: {stderr}"
    );
    assert!(
        stderr.contains("conflict: the Application changed since it was read"),
        "the conflict is said: {stderr}"
    );
    let r = report_of(&report, "Application", "backend-preview");
    assert_eq!(r["status"], "refreshed", "{r}");
    assert_eq!(r["written"], true, "{r}");

    let after = bed.app("backend-preview").await;
    let digest = bed.api.digest("preview");
    // The other writer's parameter and annotation survive; freshet's change is there.
    assert_eq!(
        after["spec"]["source"]["helm"]["parameters"],
        json!([{"name": "image.tag", "value": format!("preview@{digest}"), "forceString": true},
               {"name": "replicaCount", "value": "3"},
               {"name": "image.repository", "value": bed.repo, "forceString": true}]),
        "{after}"
    );
    assert_eq!(
        after["metadata"]["annotations"]["team.example/owner"],
        "platform"
    );
    assert_ne!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    let refreshed = bed
        .events("argocd", "backend-preview", "ImageRefreshed")
        .await;
    assert_eq!(refreshed.len(), 1, "one change, one Event: {refreshed:?}");
}

#[tokio::test]
async fn a_writer_that_changes_the_application_before_every_patch_fails_it_clearly_and_is_kept() {
    let seen = Arc::new(AtomicUsize::new(0));
    let hook_seen = seen.clone();
    let hook = WriteHook::new(move |store, call| {
        if call.verb == "patch" && call.plural == "applications" && call.manager == "freshet" {
            let n = hook_seen.fetch_add(1, Ordering::SeqCst);
            let def = ResourceDef::find("argoproj.io", "v1alpha1", "applications").unwrap();
            store.modify(def, call.namespace, call.name, UpdateMode::Main, |app| {
                app["metadata"]["annotations"]["team.example/revision"] = json!(n.to_string());
            });
        }
    });
    let bed = Bed::with(
        RegistryOptions::open(),
        ClusterOptions::default().before_write(hook),
    )
    .await;
    let pinned = format!("{}:sha-1a2b3c4", bed.repo);
    bed.kubectl(&["create", "namespace", "argocd"], None).await;
    let params = json!([{"name": "image.tag", "value": "sha-1a2b3c4"}]);
    bed.apply(&[application(
        "backend-preview",
        preview_notes(&bed.repo),
        helm_source(params.clone()),
        "Helm",
        &pinned,
    )])
    .await;

    let (out, report) = bed.run(&[]).await;
    assert_eq!(out.status.code(), Some(1), "{report}");
    // The first patch and five re-reads (the default `conflict_retries`), all stale.
    assert_eq!(seen.load(Ordering::SeqCst), 6);
    let r = report_of(&report, "Application", "backend-preview");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["written"], false, "{r}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("it changed since it was read")
            && error.contains("another writer changed it each time")
            && error.contains("next pass tries again"),
        "{error}"
    );
    let live = bed.app("backend-preview").await;
    assert_eq!(live["spec"]["source"]["helm"]["parameters"], params);
    assert_eq!(
        live["metadata"]["annotations"]["team.example/revision"],
        "5"
    );
    assert!(
        bed.events("argocd", "backend-preview", "ImageRefreshed")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn an_application_an_image_updater_selects_is_updated_in_a_run_pass() {
    let bed = Bed::start().await;
    let pinned = format!("{}:1.0.0", bed.repo);
    let params = json!([{"name": "image.repository", "value": bed.repo},
                        {"name": "image.tag", "value": "1.0.0"}]);
    bed.kubectl(&["create", "namespace", "argocd"], None).await;
    let mut selected = application(
        "shop-web",
        annotations(&[]),
        helm_source(params.clone()),
        "Helm",
        &pinned,
    );
    selected["metadata"]["labels"] = json!({"tier": "frontend"});
    // Same name pattern, but the label selector does not match: never touched.
    let unselected = application(
        "shop-db",
        annotations(&[]),
        helm_source(params.clone()),
        "Helm",
        &pinned,
    );
    let updater = json!({
        "apiVersion": "argocd-image-updater.argoproj.io/v1alpha1", "kind": "ImageUpdater",
        "metadata": {"name": "shop", "namespace": "argocd"},
        "spec": {
            "commonUpdateSettings": {"updateStrategy": "semver"},
            "applicationRefs": [{
                "namePattern": "shop-*",
                "labelSelectors": {"matchLabels": {"tier": "frontend"}},
                "images": [{
                    "alias": "web", "imageName": format!("{}:~1.0", bed.repo),
                    "manifestTargets": {"helm": {"name": "image.repository", "tag": "image.tag"}}
                }]
            }]
        }
    });
    bed.apply(&[selected, unselected, updater]).await;
    // kubectl sees the resource as the CRD serves it.
    let listed = bed
        .kubectl(
            &["get", "imageupdaters", "-n", "argocd", "-o", "name"],
            None,
        )
        .await;
    assert!(listed.contains("shop"), "{listed}");
    let db_before = bed.app_text("shop-db").await;

    let (out, report) = bed.run(&[]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report_of(&report, "Application", "shop-web");
    assert_eq!(r["status"], "refreshed", "{report}");
    let after = bed.app("shop-web").await;
    assert_eq!(
        after["spec"]["source"]["helm"]["parameters"],
        json!([{"name": "image.repository", "value": bed.repo},
               {"name": "image.tag", "value": "1.0.1", "forceString": true}]),
        "{after}"
    );
    let refreshed = bed.events("argocd", "shop-web", "ImageRefreshed").await;
    assert!(
        refreshed.iter().any(|n| n.contains("1.0.1")),
        "{refreshed:?}"
    );
    assert_eq!(bed.app_text("shop-db").await, db_before);
    assert!(
        report["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["name"] != "shop-db"),
        "{report}"
    );

    // A second pass finds it current and writes nothing.
    let rv = after["metadata"]["resourceVersion"].clone();
    let (_, report) = bed.run(&[]).await;
    assert_eq!(
        report_of(&report, "Application", "shop-web")["status"],
        "current"
    );
    assert_eq!(bed.app("shop-web").await["metadata"]["resourceVersion"], rv);
}

const REGISTRY_PASSWORD: &str = "s3cret-registry-pw";
const GIT_PASSWORD: &str = "s3cret-git-pw";

/// Asserts that no password of the test shows in `text` (`what` names it).
fn no_secret_in(what: &str, text: &str) {
    for secret in [REGISTRY_PASSWORD, GIT_PASSWORD] {
        assert!(!text.contains(secret), "{what} shows a password: {text}");
    }
}

#[tokio::test]
async fn pull_secrets_from_secrets_log_a_registry_in_and_a_missing_one_is_a_warning_naming_the_annotation()
 {
    let bed = Bed::with(
        RegistryOptions::basic().user("robot", REGISTRY_PASSWORD),
        ClusterOptions::default(),
    )
    .await;
    let host = bed.registry.host();
    let pinned = format!("{}:sha-1a2b3c4", bed.repo);
    bed.kubectl(&["create", "namespace", "argocd"], None).await;
    bed.kubectl(
        &[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            "-n",
            "argocd",
            &format!("--docker-server={host}"),
            "--docker-username=robot",
            &format!("--docker-password={REGISTRY_PASSWORD}"),
        ],
        None,
    )
    .await;
    bed.kubectl(
        &[
            "create",
            "secret",
            "generic",
            "plain",
            "-n",
            "argocd",
            &format!("--from-literal=creds=robot:{REGISTRY_PASSWORD}"),
        ],
        None,
    )
    .await;
    let app = |name: &str, secret: &str| {
        let mut notes = preview_notes(&bed.repo);
        notes[format!("{IU}backend.pull-secret")] = json!(secret);
        application(
            name,
            notes,
            helm_source(json!([{"name": "image.tag", "value": "sha-1a2b3c4"}])),
            "Helm",
            &pinned,
        )
    };
    bed.apply(&[
        app("docker-config", "pullsecret:argocd/regcred"),
        app("user-field", "secret:argocd/plain#creds"),
        app("missing", "pullsecret:argocd/nope"),
    ])
    .await;

    let (out, report) = bed.run(&[("FRESHET_LOG", "debug")]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let digest = bed.api.digest("preview");
    for name in ["docker-config", "user-field"] {
        let r = report_of(&report, "Application", name);
        assert_eq!(r["status"], "refreshed", "{name}: {r}\n{stderr}");
        let params = bed.app(name).await["spec"]["source"]["helm"]["parameters"].clone();
        assert!(params.to_string().contains(digest), "{name}: {params}");
    }
    // Without its Secret the registry refuses the image: a warning on the
    // Application naming the annotation, the Secret and the fix; nothing written.
    let r = report_of(&report, "Application", "missing");
    assert_ne!(r["status"], "refreshed", "{r}");
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains(&format!("{IU}backend.pull-secret"))
            && warnings.contains("argocd/nope")
            && warnings.contains("kubectl create secret docker-registry"),
        "{warnings}"
    );
    let live = bed.app("missing").await;
    assert_eq!(
        live["spec"]["source"]["helm"]["parameters"],
        json!([{"name": "image.tag", "value": "sha-1a2b3c4"}])
    );
    let notes = bed
        .events("argocd", "missing", "UnsupportedImageUpdaterSetting")
        .await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("backend.pull-secret") && n.contains("argocd/nope")),
        "{notes:?}"
    );
    // No password in the logs (at debug), the report or any Event.
    no_secret_in("stderr", &stderr);
    no_secret_in("stdout", &String::from_utf8_lossy(&out.stdout));
    no_secret_in(
        "events",
        &bed.kubectl(&["get", "events", "-A", "-o", "json"], None)
            .await,
    );
}

/// A bare repository `team/deploy.git` under `root` with `apps/<app>/values.yaml`.
fn served_repo(root: &std::path::Path, apps: &[&str], repo: &str) {
    let bare = root.join("srv/team/deploy.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(
        &bare,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    let work = root.join("seed");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "--quiet", "--initial-branch=main"]);
    identify(&work);
    for app in apps {
        let dir = work.join("apps").join(app);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("values.yaml"),
            format!("image:\n  repository: {repo}\n  tag: sha-1a2b3c4  # pinned\n"),
        )
        .unwrap();
    }
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "seed"]);
    git(&work, &["push", "--quiet", bare.to_str().unwrap(), "main"]);
}

#[tokio::test]
async fn git_write_back_pushes_with_the_username_and_password_of_its_git_secret() {
    let bed = Bed::start().await;
    let tmp = tempfile::tempdir().unwrap();
    served_repo(tmp.path(), &["one", "two"], &bed.repo);
    let server = GitHttpServer::start(
        &tmp.path().join("srv"),
        Credentials::new("git-bot", GIT_PASSWORD),
    )
    .await
    .unwrap();
    let url = server.url("team/deploy.git");
    let pinned = format!("{}:sha-1a2b3c4", bed.repo);
    bed.kubectl(&["create", "namespace", "argocd"], None).await;
    bed.kubectl(
        &[
            "create",
            "secret",
            "generic",
            "git-creds",
            "-n",
            "argocd",
            "--from-literal=username=git-bot",
            &format!("--from-literal=password={GIT_PASSWORD}"),
        ],
        None,
    )
    .await;
    let app = |name: &str, method: &str| {
        let mut notes = preview_notes(&bed.repo);
        notes[format!("{IU}write-back-method")] = json!(method);
        notes[format!("{IU}write-back-target")] = json!("helmvalues:values.yaml");
        notes["freshet.io/backend.digest-form"] = json!("digest");
        application(
            name,
            notes,
            json!({"source": {"repoURL": url, "path": format!("apps/{name}"),
                              "targetRevision": "main", "helm": {}}}),
            "Helm",
            &pinned,
        )
    };
    bed.apply(&[
        app("one", "git:secret:argocd/git-creds"),
        app("two", "git:secret:argocd/absent"),
    ])
    .await;

    let (out, report) = bed.run(&[("FRESHET_LOG", "debug")]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "two fails: {report}\n{stderr}");
    let one = report_of(&report, "Application", "one");
    assert_eq!(one["status"], "refreshed", "{one}\n{stderr}");
    let digest = bed.api.digest("preview");

    // The push reached the server with the Secret's user, and it is in the repository.
    let requests = server.requests();
    assert!(
        requests.iter().any(|r| r.method == "POST"
            && r.path.ends_with("/git-receive-pack")
            && r.user.as_deref() == Some("git-bot")
            && r.status == 200),
        "{requests:?}"
    );
    let bare = tmp.path().join("srv/team/deploy.git");
    assert_eq!(
        git(&bare, &["show", "main:apps/one/values.yaml"]),
        format!(
            "image:\n  repository: {}\n  tag: {digest}  # pinned",
            bed.repo
        )
    );
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]), "2");
    // Another Secret, another group: two's missing Secret fails two alone, naming the
    // annotation, the Secret and the fix, before any git command for it.
    let two = report_of(&report, "Application", "two");
    assert_eq!(two["status"], "failed", "{two}");
    let error = two["error"].as_str().unwrap();
    assert!(
        error.contains("write-back-method")
            && error.contains("argocd/absent")
            && error.contains("does not exist"),
        "{error}"
    );
    assert!(
        git(&bare, &["show", "main:apps/two/values.yaml"]).contains("sha-1a2b3c4"),
        "two is not written"
    );
    // No password in the logs (at debug), the report, any Event or the remote URL.
    no_secret_in("stderr", &stderr);
    no_secret_in("stdout", &String::from_utf8_lossy(&out.stdout));
    no_secret_in(
        "events",
        &bed.kubectl(&["get", "events", "-A", "-o", "json"], None)
            .await,
    );
    no_secret_in("requests", &format!("{requests:?}"));
}
