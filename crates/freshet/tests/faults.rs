//! The fault matrix (issue 16, proof item 1): the built binary against registries
//! (the real `docker-registry` in its open, basic, token and proxy configurations,
//! and a misbehaving server only for faults the real one cannot produce), credential
//! helpers that hang, fail or leak, real git (links, odd remotes, concurrent pushes,
//! failing hooks), broken files, and the API test bed behind a proxy that injects
//! 409s, 403s, 500s, 429s and silence.
//!
//! A sentinel secret is planted wherever a secret can be (registry passwords, the
//! kubeconfig token, helper and git credentials); every case counts
//! - **writes lost**: a file or workload that should hold its new value after the
//!   fault is gone and a re-run, and does not;
//! - **fields clobbered**: a field another writer set that freshet's write removed;
//! - **secrets leaked**: the sentinel (or its Basic form) in any output stream, in
//!   a commit, an annotation or an Event, or sent to a host it was not meant for.
//!
//! All three must be 0 in every case; a case also fails when freshet hangs or
//! panics. The table is printed (`scripts/faults`, or `--no-capture`) and recorded
//! in `docs/reliability.md`.

#[allow(dead_code)] // `deploy` is for the other binaries
mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use common::admin;
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_testbed::faults::{FaultServer, Reply, SeenRequest, sha256_digest};
use freshet_testbed::git::{git, identify};
use freshet_testbed::registry::fixtures::{self, RepoFixture};
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::token::{AnonymousAccess, TokenOptions};
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The planted secret.
const SENTINEL: &str = "fr3shet-s3ntinel-7c1d";
/// The longest one freshet run may take before the case counts as hung.
const HUNG: Duration = Duration::from_secs(120);
const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Default, Clone)]
struct Row {
    area: &'static str,
    case: String,
    outcome: String,
    lost: usize,
    clobbered: usize,
    leaked: usize,
    failure: Option<String>,
}

#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    all: String,
}

impl Out {
    /// The class of the first resolve item, `ok`, or the exit code.
    fn outcome(&self) -> String {
        if let Ok(v) = serde_json::from_str::<Value>(&self.stdout)
            && let Some(class) = v[0]["error"]["class"].as_str()
        {
            return class.to_owned();
        }
        match self.code {
            Some(0) => "ok".into(),
            Some(c) => format!("exit {c}"),
            None => "HUNG".into(),
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The forms the sentinel can take: itself and the Basic credentials holding it.
fn sentinel_forms() -> Vec<String> {
    vec![
        SENTINEL.to_owned(),
        b64(format!("ci:{SENTINEL}").as_bytes()),
    ]
}

fn leaks(text: &str) -> usize {
    sentinel_forms()
        .iter()
        .map(|f| text.matches(f.as_str()).count())
        .sum()
}

async fn freshet(args: &[&str], env: &[(&str, String)], dir: Option<&Path>) -> Out {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_freshet"));
    cmd.args(args)
        .env_remove("FRESHET_LOG")
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .env_remove("FRESHET_SELF")
        .env_remove("FRESHET_GIT_TOKEN")
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent-home")
        .env("GIT_AUTHOR_NAME", "freshet test")
        .env("GIT_AUTHOR_EMAIL", "test@freshet.invalid")
        .env("GIT_COMMITTER_NAME", "freshet test")
        .env("GIT_COMMITTER_EMAIL", "test@freshet.invalid")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    match tokio::time::timeout(HUNG, cmd.output()).await {
        Ok(out) => {
            let out = out.expect("run freshet");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
            Out {
                code: out.status.code(),
                stdout,
                all,
            }
        }
        Err(_) => Out {
            code: None,
            stdout: String::new(),
            all: String::new(),
        },
    }
}

/// Checks the invariants every case shares and fills the row.
fn judge(area: &'static str, case: &str, out: &Out, expect: Option<&str>) -> Row {
    let outcome = out.outcome();
    let mut row = Row {
        area,
        case: case.to_owned(),
        leaked: leaks(&out.all),
        outcome: outcome.clone(),
        ..Row::default()
    };
    if out.code.is_none() {
        row.failure = Some("hung".into());
    } else if out.code == Some(101) || out.all.contains("panicked at") {
        row.failure = Some(format!("panicked: {}", out.all));
    } else if out.all.contains('\x1b') || out.all.contains('\x07') {
        row.failure = Some(format!(
            "raw control character in the output: {:?}",
            out.all
        ));
    } else if let Some(e) = expect
        && outcome != e
    {
        row.failure = Some(format!("expected {e}, got {outcome}: {}", out.all));
    }
    row
}

// ---------------------------------------------------------------- registry

struct Registries {
    open: RegistryServer,
    basic: RegistryServer,
    token: RegistryServer,
    proxy: RegistryServer,
    down: RegistryServer,
    api: RepoFixture,
}

async fn registries() -> Registries {
    let open = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&open).unwrap();
    let api = fixtures::seed_api(&pusher).await.unwrap();
    fixtures::seed_multi(&pusher).await.unwrap();
    let basic = RegistryServer::start(RegistryOptions::basic().user("ci", SENTINEL))
        .await
        .unwrap();
    fixtures::seed_api(&Pusher::new(&basic).unwrap())
        .await
        .unwrap();
    let token = RegistryServer::start(
        RegistryOptions::token(TokenOptions::new().anonymous(AnonymousAccess::Deny))
            .user("ci", SENTINEL),
    )
    .await
    .unwrap();
    fixtures::seed_api(&Pusher::new(&token).unwrap())
        .await
        .unwrap();
    let proxy = RegistryServer::start(RegistryOptions::proxy(&open))
        .await
        .unwrap();
    let mut down = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    down.stop().await;
    Registries {
        open,
        basic,
        token,
        proxy,
        down,
        api,
    }
}

fn docker_config(dir: &Path, config: &Value) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir.to_str().unwrap().to_owned()
}

fn auths(host: &str, password: &str) -> Value {
    json!({"auths": {host: {"auth": b64(format!("ci:{password}").as_bytes())}}})
}

/// One registry case: a command (`resolve`/`tags` and its reference), a docker
/// config, extra environment, and the expected outcome (a class, `ok`, or none).
struct RegCase {
    name: String,
    args: Vec<String>,
    config: Value,
    env: Vec<(&'static str, String)>,
    expect: Option<&'static str>,
}

fn resolve(name: &str, reference: String, config: Value, expect: &'static str) -> RegCase {
    RegCase {
        name: name.into(),
        args: vec!["resolve".into(), "-o".into(), "json".into(), reference],
        config,
        env: Vec::new(),
        expect: Some(expect),
    }
}

async fn run_reg_case(area: &'static str, c: RegCase, scratch: &Path) -> Row {
    let dir = scratch.join(format!("dc-{}", c.name.replace([' ', '/'], "-")));
    let dc = docker_config(&dir, &c.config);
    let mut args: Vec<&str> = c.args.iter().map(String::as_str).collect();
    args.extend([
        "--log",
        "debug",
        "--docker-config",
        dc.as_str(),
        "--max-attempts",
        "2",
    ]);
    let env: Vec<(&str, String)> = c.env.iter().map(|(k, v)| (*k, v.clone())).collect();
    let out = freshet(&args, &env, None).await;
    judge(area, &c.name, &out, c.expect)
}

fn real_registry_cases(r: &Registries) -> Vec<RegCase> {
    let none = json!({});
    let (open, basic, token, proxy) = (
        r.open.host(),
        r.basic.host(),
        r.token.host(),
        r.proxy.host(),
    );
    let tags = |name: &str, reference: String, config: Value, expect| RegCase {
        name: name.into(),
        args: vec!["tags".into(), reference],
        config,
        env: Vec::new(),
        expect: Some(expect),
    };
    let mut platform = resolve(
        "open: --platform linux/arm64 of a multi-arch image",
        format!("{open}/team/multi:1.0"),
        none.clone(),
        "ok",
    );
    platform
        .args
        .extend(["--platform".into(), "linux/arm64".into()]);
    platform.expect = None;
    vec![
        resolve(
            "open: resolve a tag",
            format!("{open}/team/api:stable"),
            none.clone(),
            "ok",
        ),
        tags(
            "open: list tags",
            format!("{open}/team/api"),
            none.clone(),
            "ok",
        ),
        resolve(
            "open: missing tag",
            format!("{open}/team/api:nope"),
            none.clone(),
            "not_found",
        ),
        resolve(
            "open: missing repository",
            format!("{open}/team/none:1"),
            none.clone(),
            "not_found",
        ),
        resolve(
            "open: by digest",
            format!("{open}/team/api@{}", r.api.digest("stable")),
            none.clone(),
            "ok",
        ),
        platform,
        resolve(
            "open: credentials for another host configured",
            format!("{open}/team/api:stable"),
            auths(&basic, SENTINEL),
            "ok",
        ),
        resolve(
            "basic: right password",
            format!("{basic}/team/api:stable"),
            auths(&basic, SENTINEL),
            "ok",
        ),
        tags(
            "basic: list tags with password",
            format!("{basic}/team/api"),
            auths(&basic, SENTINEL),
            "ok",
        ),
        resolve(
            "basic: wrong password (holding the sentinel)",
            format!("{basic}/team/api:stable"),
            auths(&basic, &format!("{SENTINEL}-wrong")),
            "unauthorized",
        ),
        resolve(
            "basic: no credentials",
            format!("{basic}/team/api:stable"),
            none.clone(),
            "unauthorized",
        ),
        resolve(
            "basic: credentials only for another host",
            format!("{basic}/team/api:stable"),
            auths(&open, SENTINEL),
            "unauthorized",
        ),
        resolve(
            "token: right password",
            format!("{token}/team/api:stable"),
            auths(&token, SENTINEL),
            "ok",
        ),
        tags(
            "token: list tags",
            format!("{token}/team/api"),
            auths(&token, SENTINEL),
            "ok",
        ),
        resolve(
            "token: wrong password",
            format!("{token}/team/api:stable"),
            auths(&token, "not-it"),
            "unauthorized",
        ),
        resolve(
            "token: anonymous denied",
            format!("{token}/team/api:stable"),
            none.clone(),
            "unauthorized",
        ),
        resolve(
            "proxy: resolve through the cache",
            format!("{proxy}/team/api:stable"),
            none.clone(),
            "ok",
        ),
        tags(
            "proxy: list tags through the cache",
            format!("{proxy}/team/api"),
            none.clone(),
            "ok",
        ),
        resolve(
            "proxy: missing tag upstream",
            format!("{proxy}/team/api:nope"),
            none.clone(),
            "not_found",
        ),
        resolve(
            "stopped registry",
            format!("{}/team/api:1", r.down.host()),
            auths(&r.down.host(), SENTINEL),
            "connect",
        ),
    ]
}

/// A shared late-bound value (a fault server's own address, known after start).
type Late = Arc<OnceLock<String>>;

fn bearer_challenge(realm_base: &str) -> Reply {
    Reply::status(401).header(
        "www-authenticate",
        &format!("Bearer realm=\"{realm_base}/token\",service=\"faults\""),
    )
}

/// The misbehaving registries: each a handler and the case around it.
async fn misbehaving_cases(scratch: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    let area = "registry (fault server)";
    let ok_v2 = |req: &SeenRequest| req.path() == "/v2/";
    type Handler = Box<dyn Fn(&SeenRequest, &str) -> Reply + Send + Sync>;
    fn h(f: impl Fn(&SeenRequest, &str) -> Reply + Send + Sync + 'static) -> Handler {
        Box::new(f)
    }
    /// (name, handler, what the error must say, what it must not say, whether the run fails).
    type Case<'a> = (&'a str, Handler, Vec<&'a str>, Option<&'a str>, bool);
    let cases: Vec<Case> = vec![
        (
            "/v2/ answers 400 declaring a 2 GiB body",
            h(|_, _| {
                Reply::status(400)
                    .body(b"x".repeat(1024))
                    .declare_length(1 << 31)
            }),
            vec![],
            None,
            false,
        ),
        (
            "500 with escape sequences in the body",
            h(move |r, _| {
                if ok_v2(r) {
                    Reply::status(200)
                } else {
                    Reply::json(
                        500,
                        &json!({"errors": [{"code": "X", "message": "\x1b[2J\x07\nFAKE"}]}),
                    )
                }
            }),
            vec![],
            Some("server_error"),
            false,
        ),
        (
            "401 body echoing the Authorization header",
            h(|r, _| {
                let echoed = r.header("authorization").unwrap_or("").to_owned();
                Reply::json(401, &json!({"errors": [{"code": "UNAUTHORIZED", "message": format!("you sent {echoed}")}]}))
                    .header("www-authenticate", "Basic realm=\"x\"")
            }),
            vec![],
            Some("unauthorized"),
            true,
        ),
        (
            "token realm 403 echoing the credentials with escape sequences",
            h(|r, me| {
                if r.path() == "/token" {
                    let echoed = r.header("authorization").unwrap_or("").to_owned();
                    Reply::json(
                        403,
                        &json!({"details": format!("\x1b]0;pwned\x07 denied {echoed}")}),
                    )
                } else {
                    bearer_challenge(me)
                }
            }),
            vec![],
            None,
            true,
        ),
        (
            "token with expires_in 2^64-1",
            h(|r, me| {
                if r.path() == "/token" {
                    Reply::json(200, &json!({"token": "tok", "expires_in": u64::MAX}))
                } else if r.header("authorization") == Some("Bearer tok") {
                    if r.path() == "/v2/" {
                        Reply::status(200)
                    } else {
                        Reply::manifest(MANIFEST, MANIFEST_TYPE)
                    }
                } else {
                    bearer_challenge(me)
                }
            }),
            vec![],
            Some("ok"),
            false,
        ),
        (
            "token with expires_in \"300\" and -1",
            h(|r, me| {
                if r.path() == "/token" {
                    Reply::json(
                        200,
                        &json!({"token": "tok", "expires_in": "300", "issued_at": -1}),
                    )
                } else if r.header("authorization") == Some("Bearer tok") {
                    if r.path() == "/v2/" {
                        Reply::status(200)
                    } else {
                        Reply::manifest(MANIFEST, MANIFEST_TYPE)
                    }
                } else {
                    bearer_challenge(me)
                }
            }),
            vec![],
            Some("ok"),
            false,
        ),
        (
            "302 loop",
            h(move |r, me| {
                if ok_v2(r) {
                    Reply::status(200)
                } else {
                    Reply::status(302).header("location", &format!("{me}{}", r.path()))
                }
            }),
            vec![],
            None,
            false,
        ),
        (
            "oversized response headers",
            h(move |r, _| {
                if ok_v2(r) {
                    Reply::status(200)
                } else {
                    Reply::status(200).header("x-big", &"a".repeat(512 * 1024))
                }
            }),
            vec![],
            None,
            false,
        ),
        (
            "silent (answers after an hour), --registry-timeout 1s",
            h(|_, _| Reply::status(200).delayed(Duration::from_secs(3600))),
            vec!["--registry-timeout", "1s"],
            Some("timeout"),
            false,
        ),
        (
            "manifest cut off mid-body",
            h(move |r, _| {
                if ok_v2(r) {
                    Reply::status(200)
                } else {
                    Reply::manifest(MANIFEST, MANIFEST_TYPE).truncated(MANIFEST.len(), 20)
                }
            }),
            vec![],
            None,
            false,
        ),
        (
            "manifest that is not JSON",
            h(move |r, _| {
                if ok_v2(r) {
                    Reply::status(200)
                } else {
                    Reply::manifest(b"{not json", MANIFEST_TYPE)
                }
            }),
            vec![],
            None,
            false,
        ),
        (
            "digest header that does not match the body",
            h(move |r, _| {
                if ok_v2(r) {
                    Reply::status(200)
                } else {
                    Reply::manifest(MANIFEST, MANIFEST_TYPE)
                        .without_header("docker-content-digest")
                        .header("docker-content-digest", &sha256_digest(b"other"))
                }
            }),
            vec![],
            None,
            false,
        ),
        (
            "429 asking to retry in a day",
            h(move |r, _| {
                if ok_v2(r) {
                    Reply::status(200)
                } else {
                    Reply::status(429).header("retry-after", "86400")
                }
            }),
            vec![],
            Some("rate_limited"),
            false,
        ),
        (
            "manifest declaring 1 GiB",
            h(move |r, _| {
                if ok_v2(r) {
                    Reply::status(200)
                } else {
                    Reply::manifest(MANIFEST, MANIFEST_TYPE).declare_length(1 << 30)
                }
            }),
            vec![],
            None,
            false,
        ),
    ];
    for (name, handler, extra, expect, with_creds) in cases {
        let me: Late = Arc::default();
        let me2 = me.clone();
        let server =
            FaultServer::start(move |r| handler(r, me2.get().map(String::as_str).unwrap_or("")))
                .await
                .unwrap();
        me.set(server.base_url()).unwrap();
        let config = if with_creds {
            auths(&server.host(), SENTINEL)
        } else {
            json!({})
        };
        let mut args = vec![
            "resolve".to_owned(),
            "-o".into(),
            "json".into(),
            format!("{}/a/b:1", server.host()),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        rows.push(
            run_reg_case(
                area,
                RegCase {
                    name: name.into(),
                    args,
                    config,
                    env: Vec::new(),
                    expect,
                },
                scratch,
            )
            .await,
        );
    }
    rows.push(endless_pages(scratch).await);
    rows.push(hostile_tags(scratch).await);
    rows.push(foreign_realm(scratch).await);
    rows
}

async fn endless_pages(scratch: &Path) -> Row {
    let server = FaultServer::start(|r| {
        if r.path() == "/v2/" {
            return Reply::status(200);
        }
        let n: u64 = r
            .query("last")
            .and_then(|l| l.trim_start_matches('t').parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        Reply::json(200, &json!({"name": "a/b", "tags": [format!("t{n}")]})).header(
            "link",
            &format!("</v2/a/b/tags/list?n=1&last=t{n}>; rel=\"next\""),
        )
    })
    .await
    .unwrap();
    let c = RegCase {
        name: "endless Link pagination, --max-tag-pages 50".into(),
        args: vec![
            "tags".into(),
            format!("{}/a/b", server.host()),
            "--max-tag-pages".into(),
            "50".into(),
        ],
        config: json!({}),
        env: Vec::new(),
        expect: Some("exit 1"),
    };
    let mut row = run_reg_case("registry (fault server)", c, scratch).await;
    if server.count("GET", "/v2/a/b/tags/list") > 50 {
        row.failure = Some("read more pages than the cap".into());
    }
    row
}

async fn hostile_tags(scratch: &Path) -> Row {
    let server = FaultServer::start(|r| {
        if r.path() == "/v2/" {
            return Reply::status(200);
        }
        Reply::json(
            200,
            &json!({"name": "a/b", "tags": ["1.0", "1.1\n9.9.9", "\x1b[2J", "2.0\x07"]}),
        )
    })
    .await
    .unwrap();
    let c = RegCase {
        name: "tags holding newlines, BEL and escape sequences".into(),
        args: vec!["tags".into(), format!("{}/a/b", server.host())],
        config: json!({}),
        env: Vec::new(),
        expect: Some("ok"),
    };
    let dir = scratch.join("hostile-tags");
    let dc = docker_config(&dir, &c.config);
    let out = freshet(&["tags", &c.args[1], "--docker-config", &dc], &[], None).await;
    let mut row = judge("registry (fault server)", &c.name, &out, c.expect);
    if out.stdout.lines().any(|l| l == "9.9.9") {
        row.failure = Some(format!("a forged tag line: {}", out.stdout));
    }
    row
}

async fn foreign_realm(scratch: &Path) -> Row {
    let realm = FaultServer::start_on("127.0.0.2".parse().unwrap(), |_| {
        Reply::json(200, &json!({"token": "tok"}))
    })
    .await
    .unwrap();
    let realm_url = realm.base_url();
    let server = FaultServer::start(move |_| bearer_challenge(&realm_url))
        .await
        .unwrap();
    let c = RegCase {
        name: "token realm on another host, credentials configured".into(),
        args: vec![
            "resolve".into(),
            "-o".into(),
            "json".into(),
            format!("{}/a/b:1", server.host()),
        ],
        config: auths(&server.host(), SENTINEL),
        env: Vec::new(),
        expect: Some("foreign_realm"),
    };
    let mut row = run_reg_case("registry (fault server)", c, scratch).await;
    let sent: usize = realm
        .requests()
        .iter()
        .map(|r| leaks(r.header("authorization").unwrap_or("")))
        .sum();
    row.leaked += sent;
    row
}

// ---------------------------------------------------------------- credentials

fn helper(dir: &Path, name: &str, body: &str) {
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

async fn credential_cases(r: &Registries, scratch: &Path) -> Vec<Row> {
    let bin = scratch.join("helpers");
    std::fs::create_dir_all(&bin).unwrap();
    helper(&bin, "hang", "exec sleep 3600");
    helper(
        &bin,
        "fail",
        &format!("echo 'cannot reach the vault, token={SENTINEL}' >&2; exit 1"),
    );
    helper(
        &bin,
        "garbage",
        &format!("echo 'not json {SENTINEL} \x1b[2J'; echo '{SENTINEL}' >&2"),
    );
    helper(
        &bin,
        "flood",
        &format!("yes '{SENTINEL}' | head -c 20000000"),
    );
    helper(
        &bin,
        "wrong",
        &format!(
            "read s; printf '{{\"ServerURL\":\"%s\",\"Username\":\"ci\",\"Secret\":\"{SENTINEL}-bad\"}}' \"$s\""
        ),
    );
    helper(
        &bin,
        "right",
        &format!(
            "read s; printf '{{\"ServerURL\":\"%s\",\"Username\":\"ci\",\"Secret\":\"{SENTINEL}\"}}' \"$s\""
        ),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let basic = r.basic.host();
    let public = format!("{}/team/api:stable", r.open.host());
    let private = format!("{basic}/team/api:stable");
    let area = "credentials";
    let mut rows = Vec::new();
    for (name, config, expect) in [
        (
            "helper that never returns, --credential-helper-timeout 1s",
            json!({"credHelpers": {basic.clone(): "hang"}}),
            "credentials",
        ),
        (
            "helper failing with the token on stderr",
            json!({"credHelpers": {basic.clone(): "fail"}}),
            "credentials",
        ),
        (
            "helper printing garbage and the token",
            json!({"credHelpers": {basic.clone(): "garbage"}}),
            "credentials",
        ),
        (
            "helper flooding 20 MB of output",
            json!({"credHelpers": {basic.clone(): "flood"}}),
            "credentials",
        ),
        (
            "helper giving a wrong secret",
            json!({"credHelpers": {basic.clone(): "wrong"}}),
            "unauthorized",
        ),
        (
            "helper giving the right secret",
            json!({"credHelpers": {basic.clone(): "right"}}),
            "ok",
        ),
        (
            "credHelpers naming a missing helper",
            json!({"credHelpers": {basic.clone(): "missing-helper"}}),
            "credentials",
        ),
    ] {
        let mut c = resolve(name, private.clone(), config, expect);
        c.env.push(("PATH", path.clone()));
        c.args.push(public.clone());
        c.args
            .extend(["--credential-helper-timeout".into(), "1s".into()]);
        let dir = scratch.join(format!("cred-{}", rows.len()));
        let dc = docker_config(&dir, &c.config);
        let mut args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        args.extend(["--log", "debug", "--docker-config", dc.as_str()]);
        let out = freshet(&args, &[("PATH", path.clone())], None).await;
        let mut row = judge(area, name, &out, Some(expect));
        // A failure of the private image's credentials fails only it.
        if let Ok(v) = serde_json::from_str::<Value>(&out.stdout)
            && !v[1]["error"].is_null()
        {
            row.failure = Some(format!("the public image failed too: {}", v[1]));
        }
        rows.push(row);
    }
    let dir = scratch.join("cred-broken");
    let dc = docker_config(
        &dir,
        &json!({"auths": {basic.clone(): {"auth": format!("{SENTINEL}!!not-base64")}}}),
    );
    let out = freshet(&["resolve", &private, "--docker-config", &dc], &[], None).await;
    rows.push(judge(
        area,
        "docker config auth that is not base64",
        &out,
        None,
    ));
    rows
}

// ---------------------------------------------------------------- git and files

struct Repo {
    _dir: tempfile::TempDir,
    work: PathBuf,
    remote: PathBuf,
}

fn manifest(host: &str, tag: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: \"{host}/team/api:{tag}\" # freshet: policy=semver:minor\n"
    )
}

/// A repository with `files` (name, text) committed and a bare remote `origin`.
fn repo(files: &[(&str, String)]) -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let remote = dir.path().join("remote.git");
    std::fs::create_dir_all(&work).unwrap();
    git(
        dir.path(),
        &[
            "init",
            "--quiet",
            "--bare",
            "-b",
            "main",
            remote.to_str().unwrap(),
        ],
    );
    git(&work, &["init", "--quiet", "-b", "main"]);
    identify(&work);
    for (name, text) in files {
        let p = work.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "seed"]);
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    git(&work, &["push", "--quiet", "origin", "main"]);
    Repo {
        _dir: dir,
        work,
        remote,
    }
}

/// What `git log -p` of the work tree and the remote say (for leaks).
fn history(r: &Repo) -> String {
    let mut out = git(&r.work, &["log", "-p", "--all"]);
    out.push_str(&git(&r.remote, &["log", "-p", "--all"]));
    out
}

async fn apply(r: &Repo, dc: &str, extra: &[&str], env: &[(&str, String)]) -> Out {
    let mut args = vec![
        "apply",
        "--commit",
        "-o",
        "json",
        "--log",
        "debug",
        "--docker-config",
        dc,
    ];
    args.extend(extra);
    args.push(".");
    freshet(&args, env, Some(&r.work)).await
}

fn new_files(r: &Repo, host: &str, names: &[&str]) -> usize {
    names
        .iter()
        .filter(|n| std::fs::read_to_string(r.work.join(n)).ok() != Some(manifest(host, "1.1.0")))
        .count()
}

async fn git_cases(r: &Registries, scratch: &Path) -> Vec<Row> {
    let host = r.open.host();
    let dc = docker_config(&scratch.join("git-dc"), &json!({}));
    let area = "git";
    let mut rows = Vec::new();

    // A link out of the repository, and one inside.
    let outside = scratch.join("outside.yaml");
    std::fs::write(&outside, manifest(&host, "1.0.0")).unwrap();
    let rp = repo(&[
        ("a.yaml", manifest(&host, "1.0.0")),
        ("in-target.yaml", manifest(&host, "1.0.0")),
    ]);
    std::os::unix::fs::symlink(&outside, rp.work.join("out.yaml")).unwrap();
    std::os::unix::fs::symlink("in-target.yaml", rp.work.join("in.yaml")).unwrap();
    git(&rp.work, &["add", "."]);
    git(&rp.work, &["commit", "--quiet", "-m", "links"]);
    let out = apply(&rp, &dc, &[], &[]).await;
    let mut row = judge(
        area,
        "committed links: out of the repository, and inside",
        &out,
        None,
    );
    row.lost = new_files(&rp, &host, &["a.yaml", "in-target.yaml"]);
    if std::fs::read_to_string(&outside).unwrap() != manifest(&host, "1.0.0")
        || !rp.work.join("out.yaml").is_symlink()
        || !rp.work.join("in.yaml").is_symlink()
    {
        row.failure = Some("a link was followed out or replaced".into());
    }
    rows.push(row);

    // Remotes that are options, and push failures carrying a password.
    for (name, remote) in [
        (
            "remote named --receive-pack=…",
            "--receive-pack=touch /tmp/freshet-pwned",
        ),
        (
            "remote URL with a password, unreachable",
            "http://ci:PASS@127.0.0.1:9/repo.git",
        ),
        (
            "ext:: remote helper",
            "ext::sh -c touch% /tmp/freshet-pwned",
        ),
    ] {
        let remote = remote.replace("PASS", SENTINEL);
        let rp = repo(&[("a.yaml", manifest(&host, "1.0.0"))]);
        let out = apply(&rp, &dc, &["--push", "--remote", &remote], &[]).await;
        let mut row = judge(area, name, &out, None);
        row.leaked += leaks(&history(&rp));
        if Path::new("/tmp/freshet-pwned").exists() {
            row.failure = Some("the remote ran a command".into());
        }
        rows.push(row);
    }

    // A pre-receive hook that fails, printing a URL with a password and escapes.
    let rp = repo(&[("a.yaml", manifest(&host, "1.0.0"))]);
    let hook = rp.remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho 'denied: see https://ci:{SENTINEL}@git.example/x \x1b[2J'\nexit 1\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = apply(&rp, &dc, &["--push"], &[]).await;
    let mut row = judge(
        area,
        "pre-receive hook fails, printing a password URL",
        &out,
        None,
    );
    row.lost = new_files(&rp, &host, &["a.yaml"]);
    rows.push(row);

    // The remote moved meanwhile (a concurrent push of another file).
    let rp = repo(&[
        ("a.yaml", manifest(&host, "1.0.0")),
        ("b.txt", "b\n".into()),
    ]);
    let other = scratch.join("other-clone");
    git(
        scratch,
        &[
            "clone",
            "--quiet",
            rp.remote.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    identify(&other);
    std::fs::write(other.join("b.txt"), "changed by someone else\n").unwrap();
    git(&other, &["commit", "--quiet", "-am", "concurrent"]);
    git(&other, &["push", "--quiet", "origin", "main"]);
    let out = apply(&rp, &dc, &["--push"], &[]).await;
    let mut row = judge(
        area,
        "concurrent push to the remote meanwhile",
        &out,
        Some("ok"),
    );
    let remote_a = git(&rp.remote, &["show", "main:a.yaml"]);
    let remote_b = git(&rp.remote, &["show", "main:b.txt"]);
    // (`git` returns its output trimmed.)
    row.lost = usize::from(remote_a.trim() != manifest(&host, "1.1.0").trim());
    row.clobbered = usize::from(remote_b.trim() != "changed by someone else");
    rows.push(row);

    // A file name that looks like a template placeholder.
    let rp = repo(&[("{files}.yaml", manifest(&host, "1.0.0"))]);
    let out = apply(&rp, &dc, &["--message", "update {files}"], &[]).await;
    let mut row = judge(area, "file named {files}.yaml", &out, Some("ok"));
    row.lost = new_files(&rp, &host, &["{files}.yaml"]);
    let message = git(&rp.work, &["log", "-1", "--format=%B"]);
    if message.lines().count() > 3 {
        row.failure = Some(format!("the message grew: {message}"));
    }
    rows.push(row);

    // A token bound for plain http.
    let rp = repo(&[("a.yaml", manifest(&host, "1.0.0"))]);
    git(
        &rp.work,
        &[
            "remote",
            "set-url",
            "--push",
            "origin",
            "http://git.example.invalid/r.git",
        ],
    );
    let out = apply(
        &rp,
        &dc,
        &["--push"],
        &[("FRESHET_GIT_TOKEN", SENTINEL.to_owned())],
    )
    .await;
    let mut row = judge(
        area,
        "FRESHET_GIT_TOKEN towards a plain-http remote",
        &out,
        None,
    );
    row.leaked += leaks(&history(&rp));
    rows.push(row);
    rows
}

async fn file_cases(r: &Registries, scratch: &Path) -> Vec<Row> {
    let host = r.open.host();
    let dc = docker_config(&scratch.join("file-dc"), &json!({}));
    let area = "files";
    let mut rows = Vec::new();
    /// (name, files (path, content), what the output must say).
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "broken YAML next to a good file",
            vec![
                ("good.yaml", manifest(&host, "1.0.0")),
                ("bad.yaml", "a: [unclosed\n  b: {".into()),
            ],
            vec!["good.yaml"],
        ),
        (
            "one reference failing its lookup, one fine",
            vec![
                ("good.yaml", manifest(&host, "1.0.0")),
                (
                    "missing.yaml",
                    manifest(&host, "1.0.0").replace("team/api", "team/none"),
                ),
            ],
            vec!["good.yaml"],
        ),
        (
            "binary file next to a good one",
            vec![
                ("good.yaml", manifest(&host, "1.0.0")),
                ("blob.yaml", "\0\u{1}\u{2}binary".into()),
            ],
            vec!["good.yaml"],
        ),
        (
            "broken freshet.yaml",
            vec![
                ("good.yaml", manifest(&host, "1.0.0")),
                ("freshet.yaml", "defaultPolicy: [".into()),
            ],
            vec![],
        ),
    ];
    for (name, files, must_be_new) in cases {
        let rp = repo(&files);
        let out = apply(&rp, &dc, &[], &[]).await;
        let mut row = judge(area, name, &out, None);
        row.lost = new_files(&rp, &host, &must_be_new);
        for (n, text) in &files {
            if !must_be_new.contains(n)
                && std::fs::read_to_string(rp.work.join(n)).unwrap() != *text
            {
                row.clobbered += 1;
            }
        }
        rows.push(row);
    }
    // Links that point at each other: never followed forever.
    let rp = repo(&[("good.yaml", manifest(&host, "1.0.0"))]);
    std::os::unix::fs::symlink("b.yaml", rp.work.join("a.yaml")).unwrap();
    std::os::unix::fs::symlink("a.yaml", rp.work.join("b.yaml")).unwrap();
    git(&rp.work, &["add", "."]);
    git(&rp.work, &["commit", "--quiet", "-m", "loop"]);
    let out = apply(&rp, &dc, &[], &[]).await;
    let mut row = judge(area, "links pointing at each other", &out, None);
    row.lost = new_files(&rp, &host, &["good.yaml"]);
    rows.push(row);
    // A file with an uncommitted edit by hand: the edit is kept.
    let rp = repo(&[("good.yaml", manifest(&host, "1.0.0"))]);
    std::fs::write(
        rp.work.join("good.yaml"),
        manifest(&host, "1.0.0") + "# local edit\n",
    )
    .unwrap();
    let out = apply(&rp, &dc, &[], &[]).await;
    let mut row = judge(area, "uncommitted local edit in the file", &out, None);
    let now = std::fs::read_to_string(rp.work.join("good.yaml")).unwrap();
    row.clobbered = usize::from(!now.ends_with("# local edit\n"));
    rows.push(row);
    rows
}

// ---------------------------------------------------------------- API server

#[derive(Debug, Clone, Copy, PartialEq)]
enum ApiFault {
    Status(u16),
    Hang,
    /// Another writer changes the workload, then 409.
    Conflict,
}

#[derive(Debug, Clone)]
struct ApiRule {
    method: &'static str,
    path: &'static str,
    fault: ApiFault,
    times: usize,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    rules: Arc<Mutex<Vec<ApiRule>>>,
    admin: kube::Client,
}

async fn proxy_handler(State(p): State<Proxy>, req: Request) -> Response {
    let method = req.method().clone();
    let pq = req
        .uri()
        .path_and_query()
        .map(|x| x.as_str().to_owned())
        .unwrap_or_default();
    let path = req.uri().path().to_owned();
    let hit = {
        let mut rules = p.rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method.as_str() && path.contains(r.path))
            .map(|r| {
                r.times -= 1;
                r.fault
            })
    };
    let status_body = |code: u16| {
        let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "injected fault \x1b[2J\x07\nFAKE-LINE", "reason": "Injected", "code": code});
        axum::http::Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    match hit {
        Some(ApiFault::Status(code)) => return status_body(code),
        Some(ApiFault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return status_body(504);
        }
        Some(ApiFault::Conflict) => {
            if let Some(name) = path.rsplit('/').next() {
                concurrent_write(&p.admin, name).await;
            }
            return status_body(409);
        }
        None => {}
    }
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let mut fwd =
        freshet_testbed::registry::http_client().request(method, format!("{}{pq}", p.upstream));
    for (k, v) in &headers {
        if k != "host" && k != "authorization" && k != "content-length" {
            fwd = fwd.header(k, v);
        }
    }
    match fwd.body(body).send().await {
        Ok(resp) => {
            let status = resp.status();
            let ct = resp.headers().get("content-type").cloned();
            let bytes = resp.bytes().await.unwrap_or_default();
            let mut b = axum::http::Response::builder().status(status);
            if let Some(ct) = ct {
                b = b.header("content-type", ct);
            }
            b.body(Body::from(bytes)).unwrap()
        }
        Err(_) => status_body(502),
    }
}

/// Another writer: an annotation, a label and the replica count, set while freshet
/// holds an older read.
async fn concurrent_write(admin: &kube::Client, name: &str) {
    let api: Api<Deployment> = Api::namespaced(admin.clone(), "default");
    let n = api
        .get(name)
        .await
        .ok()
        .and_then(|d| d.spec.replicas)
        .unwrap_or(1);
    let patch = json!({"metadata": {"annotations": {"team.io/other-writer": format!("r{}", n + 1)},
        "labels": {"other-writer": format!("r{}", n + 1)}}, "spec": {"replicas": n + 1}});
    let _ = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
}

struct Cluster {
    cluster: TestCluster,
    admin: kube::Client,
    rules: Arc<Mutex<Vec<ApiRule>>>,
    kubeconfig: String,
    _dir: tempfile::TempDir,
}

const WORKLOADS: [&str; 3] = ["w1", "w2", "w3"];

async fn cluster(image: &str) -> Cluster {
    let cluster = TestCluster::start(ClusterOptions::default().plain_http())
        .await
        .unwrap();
    let admin = admin(&cluster).await;
    let api: Api<Deployment> = Api::namespaced(admin.clone(), "default");
    for name in WORKLOADS {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {"freshet.io/policy": "digest", "freshet.io/failure-threshold": "1", "team.io/other-writer": "r1"}, "labels": {"other-writer": "r1"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"nodeSelector": {"kubernetes.io/arch": "amd64"}, "containers": [{"name": "app", "image": image, "imagePullPolicy": "Always"}]}}}
        }))
        .unwrap();
        api.create(&PostParams::default(), &d).await.unwrap();
    }
    let rules: Arc<Mutex<Vec<ApiRule>>> = Arc::default();
    let proxy = Proxy {
        upstream: cluster.url().trim_end_matches('/').to_owned(),
        rules: rules.clone(),
        admin: admin.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(proxy_handler)
        .with_state(proxy);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": format!("http://{addr}")}}],
        "users": [{"name": "u", "user": {"token": SENTINEL}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
        "current-context": "c"
    });
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kc.to_string()).unwrap();
    Cluster {
        cluster,
        admin,
        rules,
        kubeconfig: path.to_str().unwrap().to_owned(),
        _dir: dir,
    }
}

/// (workloads whose record is not `digest`, workloads whose other writer's fields
/// are gone, sentinel hits in annotations and Events).
async fn cluster_state(c: &Cluster, image: &str, digest: &str) -> (usize, usize, usize) {
    let api: Api<Deployment> = Api::namespaced(c.admin.clone(), "default");
    let (mut lost, mut clobbered, mut leaked) = (0, 0, 0);
    for d in api.list(&ListParams::default()).await.unwrap() {
        let ann = d.metadata.annotations.clone().unwrap_or_default();
        let labels = d.metadata.labels.clone().unwrap_or_default();
        leaked += leaks(&serde_json::to_string(&ann).unwrap());
        let rec: Value = ann
            .get("freshet.io/refreshed")
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or(Value::Null);
        if rec[image]["digest"] != digest {
            lost += 1;
        }
        let owner = ann.get("team.io/other-writer");
        let replicas = d.spec.replicas.unwrap_or(0);
        if owner.is_none()
            || labels.get("other-writer") != owner
            || owner.map(|o| o.trim_start_matches('r')) != Some(&replicas.to_string())
        {
            clobbered += 1;
        }
    }
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(c.admin.clone(), "default");
    for e in events.list(&ListParams::default()).await.unwrap() {
        leaked += leaks(&serde_json::to_string(&e).unwrap());
    }
    (lost, clobbered, leaked)
}

async fn api_cases(r: &Registries) -> Vec<Row> {
    let image = format!("{}/team/api:stable", r.open.host());
    let canonical = image.clone();
    let c = cluster(&image).await;
    let run = [
        "run",
        "--once",
        "--kubeconfig",
        c.kubeconfig.as_str(),
        "--api-timeout",
        "3s",
        "-o",
        "json",
        "--log",
        "debug",
    ];
    let baseline = freshet(&run, &[], None).await;
    assert_eq!(baseline.code, Some(0), "baseline run: {}", baseline.all);
    let pusher = Pusher::new(&r.open).unwrap();
    let cases: Vec<(&str, Vec<ApiRule>)> = vec![
        (
            "409 on the first patch after another writer's change",
            vec![rule("PATCH", "/deployments/w1", ApiFault::Conflict, 1)],
        ),
        (
            "409 on every patch of one workload",
            vec![rule("PATCH", "/deployments/w2", ApiFault::Conflict, 100)],
        ),
        (
            "403 on patches",
            vec![rule("PATCH", "/deployments/", ApiFault::Status(403), 100)],
        ),
        (
            "500 on one patch",
            vec![rule("PATCH", "/deployments/w3", ApiFault::Status(500), 1)],
        ),
        (
            "429 on patches",
            vec![rule("PATCH", "/deployments/", ApiFault::Status(429), 2)],
        ),
        (
            "500 on listing deployments",
            vec![rule("GET", "/deployments", ApiFault::Status(500), 100)],
        ),
        (
            "403 on listing deployments",
            vec![rule("GET", "/deployments", ApiFault::Status(403), 100)],
        ),
        (
            "500 on listing statefulsets",
            vec![rule("GET", "/statefulsets", ApiFault::Status(500), 100)],
        ),
        (
            "silent on one patch, --api-timeout 3s",
            vec![rule("PATCH", "/deployments/w1", ApiFault::Hang, 1)],
        ),
        (
            "silent on listing, --api-timeout 3s",
            vec![rule("GET", "/deployments", ApiFault::Hang, 100)],
        ),
        (
            "500 on creating Events",
            vec![rule("POST", "/events", ApiFault::Status(500), 100)],
        ),
        (
            "silent on creating Events",
            vec![rule("POST", "/events", ApiFault::Hang, 100)],
        ),
    ];
    let mut fx = r.api.clone();
    let mut rows = Vec::new();
    for (i, (name, rules)) in cases.into_iter().enumerate() {
        fixtures::move_tag(&pusher, &mut fx, "stable", &format!("f{i}"))
            .await
            .unwrap();
        *c.rules.lock().unwrap() = rules;
        let out = freshet(&run, &[], None).await;
        let mut row = judge("API server", name, &out, None);
        let mut only_one_failed = false;
        if let Ok(report) = serde_json::from_str::<Value>(&out.stdout) {
            let mut counts = std::collections::BTreeMap::<String, usize>::new();
            for w in report["workloads"].as_array().into_iter().flatten() {
                *counts
                    .entry(w["status"].as_str().unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            // The others refresh, or follow a rollout an earlier case started.
            only_one_failed = counts.get("failed") == Some(&1)
                && counts
                    .keys()
                    .all(|k| ["failed", "refreshed", "following"].contains(&k.as_str()));
            let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
            row.outcome = format!("{}: {}", row.outcome, counts.join(", "));
        }
        if name.starts_with("silent on one patch") && !only_one_failed {
            row.failure = Some(format!(
                "the timeout failed more than its workload: {}",
                row.outcome
            ));
        }
        c.rules.lock().unwrap().clear();
        // Re-run without the fault until the cluster holds the new digest: a pass
        // starts no rollout while the one before it is in progress, so a workload a
        // faulty pass did roll can take a second pass.
        let rerun = std::sync::Mutex::new((0, None::<String>));
        freshet_testbed::wait::wait_for("a re-run without the fault to converge", || async {
            let again = freshet(&run, &[], None).await;
            let failed = {
                let mut r = rerun.lock().unwrap();
                r.0 += leaks(&again.all);
                if again.code != Some(0) {
                    r.1 = Some(format!(
                        "the re-run without the fault failed: {}",
                        again.all
                    ));
                }
                r.1.is_some()
            };
            if failed {
                return Some(());
            }
            // Converged: the new digest everywhere, and a run that found every
            // workload current (no rollout started or still followed: a workload
            // whose rollout is followed is not patched by the next case, which would
            // leave a fault on its patch untried).
            let current = serde_json::from_str::<Value>(&again.stdout).is_ok_and(|r| {
                r["workloads"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|w| w["status"] == "current")
            });
            let (lost, _, _) = cluster_state(&c, &canonical, fx.digest("stable")).await;
            (lost == 0 && current).then_some(())
        })
        .await;
        let (rerun_leaked, rerun_failure) = rerun.into_inner().unwrap();
        row.leaked += rerun_leaked;
        if rerun_failure.is_some() {
            row.failure = rerun_failure;
        }
        let (lost, clobbered, leaked) = cluster_state(&c, &canonical, fx.digest("stable")).await;
        row.lost = lost;
        row.clobbered = clobbered;
        row.leaked += leaked;
        rows.push(row);
    }
    drop(c.cluster);
    rows
}

fn rule(method: &'static str, path: &'static str, fault: ApiFault, times: usize) -> ApiRule {
    ApiRule {
        method,
        path,
        fault,
        times,
    }
}

// ---------------------------------------------------------------- the matrix

fn print_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| area | case | outcome | writes lost | fields clobbered | secrets leaked |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.area, r.case, r.outcome, r.lost, r.clobbered, r.leaked
        ));
    }
    let sum = |f: fn(&Row) -> usize| rows.iter().map(f).sum::<usize>();
    out.push_str(&format!(
        "| **total** | **{} cases** | {} failed | **{}** | **{}** | **{}** |\n",
        rows.len(),
        rows.iter().filter(|r| r.failure.is_some()).count(),
        sum(|r| r.lost),
        sum(|r| r.clobbered),
        sum(|r| r.leaked)
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_matrix() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scratch = tempfile::tempdir().unwrap();
    let r = registries().await;
    let mut rows = Vec::new();
    for c in real_registry_cases(&r) {
        rows.push(run_reg_case("registry", c, scratch.path()).await);
    }
    rows.extend(misbehaving_cases(scratch.path()).await);
    rows.extend(credential_cases(&r, scratch.path()).await);
    rows.extend(git_cases(&r, scratch.path()).await);
    rows.extend(file_cases(&r, scratch.path()).await);
    rows.extend(api_cases(&r).await);
    let table = print_table(&rows);
    println!("{table}");
    if let Ok(path) = std::env::var("FRESHET_FAULTS_TABLE") {
        std::fs::write(path, &table).unwrap();
    }
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| r.failure.is_some() || r.lost + r.clobbered + r.leaked > 0)
        .map(|r| {
            format!(
                "{} / {}: {:?} (lost {}, clobbered {}, leaked {})",
                r.area, r.case, r.failure, r.lost, r.clobbered, r.leaked
            )
        })
        .collect();
    assert!(rows.len() >= 60, "{} cases", rows.len());
    assert!(bad.is_empty(), "{}\n{table}", bad.join("\n"));
}
