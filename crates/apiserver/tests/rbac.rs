//! Authentication and RBAC over TLS: ServiceAccount bearer tokens, Roles,
//! ClusterRoles and their bindings, Kubernetes' 403 messages, and the admin
//! kubeconfig that bypasses RBAC.

mod common;

use common::{admin, client_from, fake_cluster, kubectl_output};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use serde_json::json;

async fn create(client: &kube::Client, ns: Option<&str>, obj: serde_json::Value) {
    let obj: DynamicObject = serde_json::from_value(obj).expect("object");
    let tm = obj.types.clone().expect("types");
    let (group, version) = tm
        .api_version
        .split_once('/')
        .unwrap_or(("", &tm.api_version));
    let plural = format!("{}s", tm.kind.to_lowercase());
    let gvk = kube::core::GroupVersionKind::gvk(group, version, &tm.kind);
    let ar = kube::core::ApiResource::from_gvk_with_plural(&gvk, &plural);
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create");
}

fn forbidden(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            assert_eq!(
                (s.code, s.reason.as_str()),
                (403, "Forbidden"),
                "{}",
                s.message
            );
            s.message
        }
        other => panic!("expected 403, got {other:?}"),
    }
}

/// Namespace `apps` with a Deployment, a Role that may read and patch
/// Deployments, bound to the ServiceAccount `apps/freshet`, and a
/// ClusterRole to list nodes bound cluster-wide.
async fn setup(admin: &kube::Client) {
    let nss: Api<Namespace> = Api::all(admin.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "apps"}})).unwrap(),
    )
    .await
    .unwrap();
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap(),
    )
    .await
    .unwrap();
    for ns in ["apps", "other"] {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "api", "image": "registry.test/team/api:1.0.0"}]}}}
        }))
        .unwrap();
        Api::<Deployment>::namespaced(admin.clone(), ns)
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
    }
    create(
        admin,
        Some("apps"),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "freshet"}}),
    )
    .await;
    create(admin, Some("apps"), json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "freshet"},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "patch"]}]
    }))
    .await;
    create(admin, Some("apps"), json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "freshet"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "freshet"},
        "subjects": [{"kind": "ServiceAccount", "name": "freshet", "namespace": "apps"}]
    }))
    .await;
    create(admin, None, json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "node-reader"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]
    }))
    .await;
    create(admin, None, json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "freshet-nodes"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "freshet", "namespace": "apps"}]
    }))
    .await;
}

#[tokio::test]
async fn service_account_tokens_get_exactly_what_their_roles_grant() {
    let (cluster, _) = fake_cluster().await;
    setup(&admin(&cluster).await).await;
    let sa = client_from(cluster.service_account_kubeconfig("apps", "freshet")).await;

    let deploys: Api<Deployment> = Api::namespaced(sa.clone(), "apps");
    assert_eq!(
        deploys
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "registry.test/team/api:1.0.1"}]}}}});
    deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let nodes: Api<Node> = Api::all(sa.clone());
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );

    let msg = forbidden(
        deploys
            .delete("web", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        msg,
        r#"deployments.apps "web" is forbidden: User "system:serviceaccount:apps:freshet" cannot delete resource "deployments" in API group "apps" in the namespace "apps""#
    );
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), "apps");
    let msg = forbidden(secrets.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        msg,
        r#"secrets is forbidden: User "system:serviceaccount:apps:freshet" cannot list resource "secrets" in API group "" in the namespace "apps""#
    );
    let elsewhere: Api<Deployment> = Api::namespaced(sa.clone(), "other");
    forbidden(elsewhere.get("web").await.unwrap_err());
    let everywhere: Api<Deployment> = Api::all(sa);
    let msg = forbidden(everywhere.list(&ListParams::default()).await.unwrap_err());
    assert!(msg.ends_with("at the cluster scope"), "{msg}");

    // Another ServiceAccount in the same namespace has no binding.
    let stranger = client_from(cluster.service_account_kubeconfig("apps", "stranger")).await;
    forbidden(
        Api::<Deployment>::namespaced(stranger, "apps")
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
}

#[tokio::test]
async fn requests_without_a_valid_token_are_unauthorized_and_admin_bypasses_rbac() {
    let (cluster, _) = fake_cluster().await;
    let mut anonymous = cluster.admin_kubeconfig();
    anonymous["users"][0]["user"] = json!({});
    let anon = client_from(anonymous.clone()).await;
    match Api::<Secret>::namespaced(anon, "default")
        .list(&ListParams::default())
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!(s.code, 401),
        other => panic!("expected 401, got {other:?}"),
    }
    anonymous["users"][0]["user"] = json!({"token": "not-a-token"});
    let bad = client_from(anonymous).await;
    match Api::<Secret>::namespaced(bad, "default")
        .list(&ListParams::default())
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!(s.code, 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let admin = admin(&cluster).await;
    Api::<Secret>::namespaced(admin, "default")
        .list(&ListParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn kubectl_prints_kubernetes_forbidden_errors() {
    let (cluster, _) = fake_cluster().await;
    setup(&admin(&cluster).await).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("sa.kubeconfig");
    cluster
        .write_kubeconfig(&kc, &cluster.service_account_kubeconfig("apps", "freshet"))
        .unwrap();
    let (ok, out, _) = kubectl_output(&kc, &["get", "deployments", "-o", "name"], None).await;
    assert!(ok);
    assert_eq!(out.trim(), "deployment.apps/web");
    let (ok, _, err) = kubectl_output(&kc, &["get", "secrets"], None).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        r#"Error from server (Forbidden): secrets is forbidden: User "system:serviceaccount:apps:freshet" cannot list resource "secrets" in API group "" in the namespace "apps""#
    );
    let (ok, _, err) = kubectl_output(
        &kc,
        &[
            "set",
            "image",
            "deployment/web",
            "api=registry.test/team/api:2.0.0",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
}

#[tokio::test]
async fn kubectl_create_token_and_token_secrets_authenticate_as_the_service_account() {
    let (cluster, _) = fake_cluster().await;
    let admin_client = admin(&cluster).await;
    setup(&admin_client).await;
    let kc = cluster.kubeconfig_path();
    let (ok, token, err) =
        kubectl_output(kc, &["create", "token", "freshet", "-n", "apps"], None).await;
    assert!(ok, "{err}");
    let mut config = cluster.admin_kubeconfig();
    config["users"][0]["user"] = json!({"token": token.trim()});
    let sa = client_from(config.clone()).await;
    Api::<Deployment>::namespaced(sa.clone(), "apps")
        .list(&ListParams::default())
        .await
        .unwrap();
    forbidden(
        Api::<Secret>::namespaced(sa, "apps")
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    let (ok, _, err) = kubectl_output(kc, &["create", "token", "nobody", "-n", "apps"], None).await;
    assert!(!ok);
    assert!(
        err.contains(r#"serviceaccounts "nobody" not found"#),
        "{err}"
    );

    // A long-lived token Secret gets its token from the token controller.
    create(&admin_client, Some("apps"), json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "freshet-token", "annotations": {"kubernetes.io/service-account.name": "freshet"}}
    }))
    .await;
    let secrets: Api<Secret> = Api::namespaced(admin_client, "apps");
    let token = common::wait_for("the token controller", || async {
        let s = secrets.get("freshet-token").await.ok()?;
        s.data?
            .get("token")
            .map(|t| String::from_utf8(t.0.clone()).unwrap())
    })
    .await;
    config["users"][0]["user"] = json!({"token": token});
    let sa = client_from(config).await;
    Api::<Deployment>::namespaced(sa, "apps")
        .get("web")
        .await
        .unwrap();
}

#[tokio::test]
async fn kubectl_auth_can_i_and_impersonation() {
    let (cluster, _) = fake_cluster().await;
    setup(&admin(&cluster).await).await;
    let kc = cluster.kubeconfig_path();
    let sa = "--as=system:serviceaccount:apps:freshet";
    for (args, want) in [
        (
            vec!["auth", "can-i", "patch", "deployments", "-n", "apps", sa],
            "yes",
        ),
        (
            vec!["auth", "can-i", "delete", "deployments", "-n", "apps", sa],
            "no",
        ),
        (
            vec!["auth", "can-i", "list", "secrets", "-n", "apps", sa],
            "no",
        ),
        (vec!["auth", "can-i", "list", "nodes", sa], "yes"),
        (vec!["auth", "can-i", "delete", "nodes"], "yes"),
    ] {
        let (_, out, err) = kubectl_output(kc, &args, None).await;
        assert_eq!(out.trim(), want, "{args:?}: {err}");
    }
    let (ok, _, err) = kubectl_output(kc, &["get", "secrets", "-n", "apps", sa], None).await;
    assert!(!ok);
    assert!(
        err.contains(r#"User "system:serviceaccount:apps:freshet" cannot list resource "secrets""#),
        "{err}"
    );

    // Only the admin may impersonate.
    let dir = tempfile::tempdir().unwrap();
    let sa_kc = dir.path().join("sa.kubeconfig");
    cluster
        .write_kubeconfig(
            &sa_kc,
            &cluster.service_account_kubeconfig("apps", "freshet"),
        )
        .unwrap();
    let (ok, _, err) = kubectl_output(&sa_kc, &["get", "deployments", "--as=admin"], None).await;
    assert!(!ok);
    assert!(err.contains(r#"users "admin" is forbidden: User "system:serviceaccount:apps:freshet" cannot impersonate resource "users""#), "{err}");
}
