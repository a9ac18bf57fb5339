//! `freshet resolve` and `freshet tags` as users run them: the built binary against
//! the real distribution registry, checking the JSON contract, exit codes,
//! credentials from docker config (including the credential-helper protocol) and
//! that secrets never reach the output.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;

use freshet_testbed::registry::fixtures::{self, StandardFixtures};
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use serde_json::Value;

async fn freshet(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_freshet"));
    cmd.args(args)
        .env_remove("FRESHET_LOG")
        .env("HOME", "/nonexistent-home");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run freshet")
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

async fn seeded_open_registry() -> (RegistryServer, StandardFixtures) {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let fx = StandardFixtures {
        alpine: fixtures::seed_alpine(&pusher).await.unwrap(),
        api: fixtures::seed_api(&pusher).await.unwrap(),
        multi: fixtures::seed_multi(&pusher).await.unwrap(),
        amd64only: fixtures::seed_amd64only(&pusher).await.unwrap(),
        many: fixtures::RepoFixture {
            repo: String::new(),
            tags: Default::default(),
        },
    };
    (registry, fx)
}

#[tokio::test]
async fn resolve_json_follows_the_documented_contract() {
    let (registry, fx) = seeded_open_registry().await;
    let host = registry.host();
    let alpine = format!("{host}/library/alpine:3.19.1");
    let api = format!("{host}/team/api:1.0.0");
    let out = freshet(
        &[
            "resolve",
            "--output",
            "json",
            "--platform",
            "linux/amd64",
            &alpine,
            &api,
        ],
        &[],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items = stdout_json(&out);
    let items = items.as_array().expect("an array");
    assert_eq!(items.len(), 2);

    let a = &items[0];
    let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "reference",
            "canonical",
            "digest",
            "platforms",
            "error",
            "platform_digest"
        ]
    );
    assert_eq!(a["reference"], alpine.as_str());
    assert_eq!(a["canonical"], alpine.as_str());
    assert_eq!(a["digest"], fx.alpine.digest("3.19.1"));
    assert_eq!(a["error"], Value::Null);
    assert_eq!(
        a["platform_digest"],
        fx.alpine.platform_digest("3.19.1", "linux/amd64")
    );
    let platforms = a["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2);
    assert_eq!(platforms[1]["os"], "linux");
    assert_eq!(platforms[1]["architecture"], "arm64");
    assert_eq!(
        platforms[1]["digest"],
        fx.alpine.platform_digest("3.19.1", "linux/arm64/v8")
    );
    assert!(platforms[0].as_object().unwrap().contains_key("variant"));

    // Single-arch: empty platform list; the platform digest is its own digest.
    let b = &items[1];
    assert_eq!(b["digest"], fx.api.digest("1.0.0"));
    assert_eq!(b["platforms"], serde_json::json!([]));
    assert_eq!(b["platform_digest"], fx.api.digest("1.0.0"));
}

#[tokio::test]
async fn resolve_reports_each_failure_in_input_order_and_exits_1() {
    let (registry, fx) = seeded_open_registry().await;
    let host = registry.host();
    let refs = [
        format!("{host}/team/api:2.0.0"),
        "Bad/Reference:x".to_owned(),
        format!("{host}/team/api:9.9.9"),
        format!("{host}/team/api:2.0.0"),
    ];
    let mut args = vec!["resolve", "-o", "json"];
    args.extend(refs.iter().map(String::as_str));
    let out = freshet(&args, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let items = stdout_json(&out);
    let items = items.as_array().unwrap();
    let got: Vec<&str> = items
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        refs.iter().map(String::as_str).collect::<Vec<_>>(),
        "input order"
    );
    assert!(
        !items[0]
            .as_object()
            .unwrap()
            .contains_key("platform_digest"),
        "only with --platform"
    );
    assert_eq!(items[0]["digest"], fx.api.digest("2.0.0"));
    assert_eq!(items[3]["digest"], fx.api.digest("2.0.0"));
    assert_eq!(items[1]["error"]["class"], "invalid_reference");
    assert!(
        items[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Bad/Reference:x")
    );
    assert_eq!(items[2]["error"]["class"], "not_found");
    assert!(
        items[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&host)
    );
    assert_eq!(items[2]["digest"], Value::Null);
}

#[tokio::test]
async fn resolve_text_output_is_a_table() {
    let (registry, fx) = seeded_open_registry().await;
    let r = format!("{}/team/multi:latest", registry.host());
    let out = freshet(&["resolve", &r], &[]).await;
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("REFERENCE"), "{text}");
    assert!(text.contains(fx.multi.digest("latest")), "{text}");
    assert!(text.contains("linux/amd64,linux/arm64"), "{text}");
}

#[tokio::test]
async fn an_unreachable_registry_says_what_to_check() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = format!("127.0.0.1:{port}/team/api:1");
    let out = freshet(&["resolve", "-o", "json", "--max-attempts", "1", &r], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let items = stdout_json(&out);
    assert_eq!(items[0]["error"]["class"], "connect");
    let message = items[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("egress"), "{message}");
}

#[tokio::test]
async fn tags_lists_every_tag_as_json_and_text() {
    // The 2,600-tag repository is covered by the registry crate's tests; here the
    // output contract matters.
    let (registry, fx) = seeded_open_registry().await;
    let r = format!("{}/team/api", registry.host());
    let out = freshet(&["tags", "-o", "json", &r], &[]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut tags: Vec<String> = serde_json::from_value(stdout_json(&out)).unwrap();
    tags.sort();
    assert_eq!(tags, fx.api.tag_names());
    let out = freshet(&["tags", &r], &[]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), fixtures::API_TAGS.len());
    assert!(text.lines().any(|l| l == "v1.3.0"));
}

fn write_helper(dir: &Path, name: &str, user: &str, secret: &str) {
    // The docker credential-helper protocol: `get` reads the server URL on stdin
    // and prints {"ServerURL","Username","Secret"}.
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$server\"\n"
    );
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn credentials_come_from_docker_config_helpers_and_never_reach_the_output() {
    let registry = RegistryServer::start(RegistryOptions::basic().user("ci", "helper-s3cret"))
        .await
        .unwrap();
    let api = fixtures::seed_api(&Pusher::new(&registry).unwrap())
        .await
        .unwrap();
    let host = registry.host();
    let r = format!("{host}/team/api:1.1.0");
    let bin = tempfile::tempdir().unwrap();
    write_helper(bin.path(), "fake", "ci", "helper-s3cret");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    for config in [
        serde_json::json!({ "credHelpers": { host.clone(): "fake" } }),
        serde_json::json!({ "credsStore": "fake" }),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let docker_config = dir.path().to_str().unwrap();
        let out = freshet(
            &[
                "resolve",
                "-o",
                "json",
                "--docker-config",
                docker_config,
                &r,
            ],
            &[("PATH", path.clone())],
        )
        .await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{config}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(stdout_json(&out)[0]["digest"], api.digest("1.1.0"));
    }

    // Wrong credentials, with debug logs on: the error says what to check and no
    // output stream carries the secret.
    let dir = tempfile::tempdir().unwrap();
    write_helper(bin.path(), "wrong", "ci", "wrong-s3cret-value");
    let config = serde_json::json!({ "credHelpers": { host.clone(): "wrong" } });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let out = freshet(
        &[
            "resolve",
            "-o",
            "json",
            "--log",
            "debug",
            "--docker-config",
            dir.path().to_str().unwrap(),
            &r,
        ],
        &[("PATH", path.clone())],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let items = stdout_json(&out);
    assert_eq!(items[0]["error"]["class"], "unauthorized");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("wrong-s3cret-value"), "secret leaked: {all}");
}

#[tokio::test]
async fn a_broken_docker_config_is_a_usage_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let out = freshet(
        &[
            "resolve",
            "--docker-config",
            dir.path().to_str().unwrap(),
            "127.0.0.1:1/a:1",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("config.json"), "{stderr}");
}
