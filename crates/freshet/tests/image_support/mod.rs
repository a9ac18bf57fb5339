//! Test support for freshet's container image: builds it with `scripts/image` from
//! the binary under test, reads the OCI layout (checking every blob's digest),
//! lists a layer's tar entries with an independent USTAR reader, pushes it with
//! skopeo, unpacks its root filesystem and runs commands in it with `chroot`.
//!
//! The build is cached on disk per binary (size and mtime) and commit, shared by the
//! test processes under a file lock, so several tests cost one build. It must not
//! decide anything about the image: the tests assert, this only reads.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The image's non-root user.
pub const UID: u32 = 65532;
/// Where the binary lives in the image (its entrypoint).
pub const BIN: &str = "usr/local/bin/freshet";
/// The tag the tests build.
pub const TAG: &str = "test";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct Image {
    /// The layout's folder.
    pub layout: PathBuf,
    /// The digest of the image index `index.json` names.
    pub digest: String,
}

/// Runs `cmd`, panicking with its stderr when it fails; returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `scripts/image --binary BIN --out OUT --tag test` plus `extra`; returns the
/// digest it prints last (`REPO:TAG@sha256:…`).
pub fn build_with_script(binary: &Path, out: &Path, extra: &[&str]) -> (String, String) {
    let mut cmd = Command::new(repo_root().join("scripts/image"));
    cmd.arg("--binary")
        .arg(binary)
        .arg("--out")
        .arg(out)
        .args(["--tag", TAG])
        .args(extra);
    let output = cmd.output().expect("scripts/image runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "scripts/image failed: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reference = stdout.lines().last().expect("a reference").to_owned();
    let digest = reference
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .expect("REPO:TAG@DIGEST");
    (digest, stderr)
}

/// The image of the binary under test, built once per binary and commit (cached
/// under the target dir, shared by the test processes).
pub fn image() -> Image {
    let binary = Path::new(env!("CARGO_BIN_EXE_freshet"));
    let meta = std::fs::metadata(binary).expect("the binary");
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("freshet-image");
    std::fs::create_dir_all(&cache).expect("cache dir");
    // The image's labels name the commit (and whether the tree is dirty): part of the key.
    let git = |args: &[&str]| run(Command::new("git").arg("-C").arg(repo_root()).args(args));
    let head = git(&["rev-parse", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let key = format!("{}-{mtime}-{}-{dirty}", meta.len(), head.trim());
    let layout = cache.join(&key);
    let lock = std::fs::File::create(cache.join("lock")).expect("lock file");
    lock.lock().expect("lock");
    if !layout.join("index.json").exists() {
        // Older builds of other binaries go: one image at a time is kept.
        for old in std::fs::read_dir(&cache).expect("cache").flatten() {
            if old.path().is_dir() {
                let _ = std::fs::remove_dir_all(old.path());
            }
        }
        build_with_script(binary, &layout, &[]);
    }
    lock.unlock().expect("unlock");
    let index: Value = read_json(&layout.join("index.json"));
    Image {
        digest: index["manifests"][0]["digest"]
            .as_str()
            .expect("index digest")
            .to_owned(),
        layout,
    }
}

/// Parses a JSON file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl Image {
    /// The path of blob `digest`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.layout.join("blobs/sha256").join(hex)
    }

    /// Blob `digest`, after checking that its sha256 is its name (with `sha256sum`).
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let path = self.blob_path(digest);
        let sum = run(Command::new("sha256sum").arg(&path));
        assert_eq!(
            format!("sha256:{}", sum.split_whitespace().next().unwrap_or("")),
            digest,
            "blob {} holds other bytes",
            path.display()
        );
        std::fs::read(&path).expect("blob")
    }

    /// Blob `digest` as JSON.
    pub fn json(&self, digest: &str) -> Value {
        serde_json::from_slice(&self.blob(digest)).expect("JSON blob")
    }

    /// The image index.
    pub fn index(&self) -> Value {
        self.json(&self.digest)
    }

    /// The manifest for `arch`.
    pub fn manifest(&self, arch: &str) -> Value {
        let index = self.index();
        let entry = index["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap_or_else(|| panic!("no {arch} manifest in {index}"))
            .clone();
        self.json(entry["digest"].as_str().expect("digest"))
    }

    /// Unpacks the `arch` image's layers, in order, into a new folder under `dir`.
    pub fn unpack(&self, arch: &str, dir: &Path) -> PathBuf {
        let root = dir.join("rootfs");
        std::fs::create_dir_all(&root).expect("rootfs dir");
        for layer in self.manifest(arch)["layers"].as_array().expect("layers") {
            let digest = layer["digest"].as_str().expect("digest");
            self.blob(digest);
            run(Command::new("tar")
                .arg("--numeric-owner")
                .arg("-xzf")
                .arg(self.blob_path(digest))
                .arg("-C")
                .arg(&root));
        }
        root
    }
}

/// One entry of a tar archive, as its USTAR header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// The path (prefix and name joined), directories without their final `/`.
    pub path: String,
    /// `b'0'` a file, `b'5'` a directory, `b'2'` a symlink, …
    pub kind: u8,
    /// Permission bits.
    pub mode: u32,
    /// Owner and group ids.
    pub uid: u64,
    /// The group id.
    pub gid: u64,
    /// The owner and group names.
    pub names: (String, String),
    /// Seconds since the epoch.
    pub mtime: u64,
    /// Bytes of content.
    pub size: u64,
}

fn octal(field: &[u8]) -> u64 {
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    u64::from_str_radix(text.trim(), 8).unwrap_or_else(|_| panic!("octal field {text:?}"))
}

fn cstr(field: &[u8]) -> String {
    String::from_utf8_lossy(field.split(|b| *b == 0).next().unwrap_or(&[])).into_owned()
}

/// The entries of a gzipped tar (decompressed with the system `gzip`); panics on a
/// header that is not USTAR (no PAX or GNU extensions are expected).
pub fn tar_entries(gz: &Path) -> Vec<TarEntry> {
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(gz)
        .output()
        .expect("gzip runs");
    assert!(out.status.success(), "gzip -dc {}", gz.display());
    let data = out.stdout;
    let mut entries = Vec::new();
    let mut at = 0;
    while at + 512 <= data.len() {
        let h = &data[at..at + 512];
        if h.iter().all(|b| *b == 0) {
            break;
        }
        assert_eq!(&h[257..263], b"ustar\0", "a USTAR header at {at}");
        let (prefix, name) = (cstr(&h[345..500]), cstr(&h[0..100]));
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let size = octal(&h[124..136]);
        entries.push(TarEntry {
            path: path.trim_end_matches('/').to_owned(),
            kind: h[156],
            mode: octal(&h[100..108]) as u32,
            uid: octal(&h[108..116]),
            gid: octal(&h[116..124]),
            names: (cstr(&h[265..297]), cstr(&h[297..329])),
            mtime: octal(&h[136..148]),
            size,
        });
        at += 512 + size.div_ceil(512) as usize * 512;
    }
    entries
}

/// Copies the image to `REPO:TAG` on a plain-http test registry with skopeo (the
/// whole index, digests kept); returns `REPO@DIGEST`.
pub fn push(image: &Image, repository: &str) -> String {
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:{TAG}", image.layout.display()),
        &format!("docker://{repository}:{TAG}"),
    ]));
    format!("{repository}@{}", image.digest)
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

/// A command running `args` inside `root` with `chroot`, as the image's user when
/// this process is root (else as the mapped root of a user namespace, through
/// `unshare`), with an empty environment plus `env`.
pub fn chroot(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = if is_root() {
        let mut c = Command::new(which("chroot"));
        c.arg(format!("--userspec={UID}:{UID}"));
        c
    } else {
        let mut c = Command::new(which("unshare"));
        c.args(["--map-root-user", "chroot"]);
        c
    };
    cmd.arg(root).args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The absolute path of program `name` on `$PATH` (the commands run with an empty
/// environment, so they cannot look it up themselves).
pub fn which(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed"))
}

/// Runs `cmd` and returns its output (whatever its status).
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// The path of `target` relative to `from` (both absolute), for kustomize, which
/// refuses absolute resource paths.
pub fn relative(from: &Path, target: &Path) -> String {
    let ups = from.components().count().saturating_sub(1);
    let target = target.canonicalize().expect("target exists");
    format!(
        "{}{}",
        "../".repeat(ups),
        target.to_string_lossy().trim_start_matches('/')
    )
}

/// A kustomize overlay in `dir` over `base` (a folder) that points the freshet
/// image at `repository@digest`, as a user pins a mirror.
pub fn overlay(dir: &Path, base: &Path, repository: &str, digest: &str) -> PathBuf {
    let overlay = dir.join("overlay");
    std::fs::create_dir_all(&overlay).expect("overlay dir");
    let text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\nimages:\n  - name: ghcr.io/freshet/freshet\n    newName: {repository}\n    digest: {digest}\n",
        relative(&overlay.canonicalize().expect("overlay"), base)
    );
    std::fs::write(overlay.join("kustomization.yaml"), text).expect("kustomization");
    overlay
}
