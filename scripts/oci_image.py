#!/usr/bin/env python3
"""Writes freshet's container image as an OCI image layout, without Docker.

Used by scripts/image (which builds the binary, pushes and pins); Python standard
library only. It owns what goes into the image and how the bytes are laid out:

- the root filesystem: the binary, exactly the shared objects it loads (glibc's
  loader and libraries: those `ldd` lists for this machine's architecture; for
  another, its ELF NEEDED entries found in Debian's cross C library), the CA bundle rustls reads through
  rustls-native-certs / rustls-platform-verifier, /etc/passwd and /etc/group with a
  non-root user (65532, as distroless), /etc/nsswitch.conf, an empty /tmp. No shell,
  no package manager, nothing else.
- reproducible layers: entries sorted, every mtime the given creation time, owner
  0:0 with no user or group names, modes normalised, USTAR headers; gzip with no
  name and mtime 0. The same inputs give the same digests.
- the OCI objects: one config and one manifest per platform, an image index over
  them, `index.json` (tagged by `org.opencontainers.image.ref.name`) and
  `oci-layout`.

It must not run the binary, touch a registry or write outside the output folder.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = ("nonroot", 65532)
BIN_PATH = "usr/local/bin/freshet"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# Debian's architecture names for the Go/OCI ones.
ARCH_DIRS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}


class ImageError(Exception):
    """A fact about the inputs that makes the image impossible to build."""


@dataclass(frozen=True)
class Entry:
    """One regular file of a layer: its path in the image, its source, its mode."""

    path: str
    source: Path | None
    data: bytes | None
    mode: int


def shared_objects(binary: Path) -> list[Path]:
    """The files the dynamic loader maps for `binary`, as `ldd` lists them (the
    vDSO excluded). A static binary needs none."""
    out = subprocess.run(
        ["ldd", str(binary)], capture_output=True, text=True, check=False
    )
    text = out.stdout + out.stderr
    if "not a dynamic executable" in text or "statically linked" in text:
        return []
    if out.returncode != 0:
        raise ImageError(f"ldd {binary} failed: {text.strip()}")
    found = []
    for line in out.stdout.splitlines():
        line = line.strip()
        if "=> not found" in line:
            raise ImageError(f"{binary} needs a library the host lacks: {line}")
        m = re.match(r"^(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$", line)
        if m:
            found.append(Path(m.group(1)))
    if not found:
        raise ImageError(f"ldd listed no libraries for dynamic {binary}:\n{text}")
    return found


def host_arch() -> str:
    """The OCI name of this machine's architecture."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def elf_dynamic(binary: Path, triple: str) -> tuple[str | None, list[str]]:
    """A foreign binary's program interpreter and NEEDED entries, read with the
    cross binutils' readelf (`TRIPLE-readelf`, never by running the binary)."""
    readelf = f"{triple}-readelf"
    if shutil.which(readelf) is None:
        raise ImageError(f"{readelf} is missing (scripts/setup --arm64 installs it)")
    out = subprocess.run(
        [readelf, "--wide", "-l", "-d", str(binary)], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise ImageError(f"{readelf} {binary} failed: {out.stderr.strip()}")
    interp = re.search(r"\[Requesting program interpreter: (\S+)\]", out.stdout)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]", out.stdout)
    return (interp.group(1) if interp else None), needed


def cross_objects(binary: Path, arch: str) -> list[tuple[str, Path]]:
    """For a binary of another architecture: (path in the image, file on this host)
    of its loader and every library it needs, transitively, taken from Debian's
    cross C library (`/usr/TRIPLE/lib`, package libc6-TRIPLE-cross) and placed where
    that loader looks (`/lib/TRIPLE/`)."""
    triple = ARCH_DIRS[arch]
    sysroot = Path(f"/usr/{triple}/lib")
    interp, needed = elf_dynamic(binary, triple)
    if interp is None:
        return []
    found: list[tuple[str, Path]] = []
    loader = sysroot / Path(interp).name
    if not loader.is_file():
        raise ImageError(f"no {arch} loader at {loader} (scripts/setup --arm64 installs it)")
    found.append((interp, loader))
    seen: set[str] = set()
    while needed:
        name = needed.pop()
        if name in seen or name == Path(interp).name:
            continue
        seen.add(name)
        source = sysroot / name
        if not source.is_file():
            raise ImageError(f"{binary} needs {name}, which {sysroot} lacks")
        found.append((f"/lib/{triple}/{name}", source))
        needed.extend(elf_dynamic(source, triple)[1])
    return found


def etc_files() -> list[Entry]:
    """The identity and resolver files: root and the non-root user, no login shell."""
    name, uid = USER
    passwd = (
        "root:x:0:0:root:/root:/sbin/nologin\n"
        f"{name}:x:{uid}:{uid}:{name}:/home/{name}:/sbin/nologin\n"
    )
    group = f"root:x:0:\n{name}:x:{uid}:\n"
    nsswitch = "hosts: files dns\n"
    return [
        Entry("etc/passwd", None, passwd.encode(), 0o644),
        Entry("etc/group", None, group.encode(), 0o644),
        Entry("etc/nsswitch.conf", None, nsswitch.encode(), 0o644),
    ]


def runtime_entries(binary: Path, ca_bundle: Path, arch: str) -> list[Entry]:
    """The base layer: libraries at the paths the loader asks for (symlinks
    followed: the image holds plain files), the CA bundle and /etc. The host's own
    architecture takes what `ldd` lists; another takes Debian's cross C library."""
    if not ca_bundle.is_file():
        raise ImageError(f"no CA bundle at {ca_bundle} (install ca-certificates)")
    entries = etc_files()
    entries.append(Entry(CA_BUNDLE.lstrip("/"), ca_bundle, None, 0o644))
    if arch == host_arch():
        libs = [(str(lib), lib) for lib in shared_objects(binary)]
    else:
        libs = cross_objects(binary, arch)
    for path, lib in libs:
        entries.append(Entry(path.lstrip("/"), lib.resolve(), None, 0o755))
    return entries


def parents(paths: list[str]) -> set[str]:
    """Every directory above `paths`."""
    dirs = set()
    for p in paths:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return dirs


def write_tar(entries: list[Entry], extra_dirs: dict[str, int], mtime: int, out) -> None:
    """A reproducible tar of `entries` and their parent directories, sorted by path,
    owned by 0:0, every mtime `mtime`."""
    dirs = {d: 0o755 for d in parents([e.path for e in entries] + [d + "/" for d in extra_dirs])}
    dirs.update(extra_dirs)
    items = [(d, None) for d in dirs] + [(e.path, e) for e in entries]
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, entry in sorted(items, key=lambda i: i[0]):
            info = tarfile.TarInfo(path)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry is None:
                info.type = tarfile.DIRTYPE
                info.mode = dirs[path]
                tar.addfile(info)
                continue
            info.mode = entry.mode
            if entry.data is not None:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                info.size = entry.source.stat().st_size
                with entry.source.open("rb") as f:
                    tar.addfile(info, f)


class Layout:
    """An OCI image layout being written: blobs by digest."""

    def __init__(self, root: Path):
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes, media_type: str) -> dict:
        """Stores `data` as a blob; returns its descriptor."""
        digest = hashlib.sha256(data).hexdigest()
        (self.blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def put_layer(self, entries: list[Entry], extra_dirs: dict[str, int], mtime: int):
        """Writes a gzipped layer; returns (descriptor, diff_id)."""
        with tempfile.TemporaryFile() as raw, tempfile.NamedTemporaryFile(
            dir=self.blobs, delete=False
        ) as gz:
            write_tar(entries, extra_dirs, mtime, raw)
            raw.seek(0)
            diff_id = hashlib.sha256()
            with gzip.GzipFile(filename="", mode="wb", fileobj=gz, compresslevel=9, mtime=0) as z:
                while chunk := raw.read(1 << 20):
                    diff_id.update(chunk)
                    z.write(chunk)
            gz.flush()
            size = gz.tell()
        digest = sha256_file(Path(gz.name))
        os.chmod(gz.name, 0o644)
        os.replace(gz.name, self.blobs / digest)
        descriptor = {"mediaType": MEDIA_LAYER, "digest": f"sha256:{digest}", "size": size}
        return descriptor, f"sha256:{diff_id.hexdigest()}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def rfc3339(epoch: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def labels_of(args) -> dict:
    """The image's labels (config) and annotations (manifests, index)."""
    return {
        "org.opencontainers.image.source": args.source,
        "org.opencontainers.image.version": args.version,
        "org.opencontainers.image.revision": args.revision,
        "org.opencontainers.image.title": "freshet",
        "org.opencontainers.image.created": rfc3339(args.created),
    }


def build_platform(layout: Layout, args, arch: str, binary: Path) -> dict:
    """One platform's layers, config and manifest; returns the manifest descriptor."""
    base, base_diff = layout.put_layer(
        runtime_entries(binary, Path(args.ca_bundle), arch),
        {"tmp": 0o1777, f"home/{USER[0]}": 0o755},
        args.created,
    )
    app, app_diff = layout.put_layer(
        [Entry(BIN_PATH, binary, None, 0o755)], {}, args.created
    )
    created = rfc3339(args.created)
    labels = labels_of(args)
    config = {
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": {
            "User": f"{USER[1]}:{USER[1]}",
            "Entrypoint": [f"/{BIN_PATH}"],
            "Env": [f"HOME=/home/{USER[0]}"],
            "WorkingDir": "/",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [base_diff, app_diff]},
        "history": [
            {"created": created, "created_by": "scripts/image: glibc, CA bundle, /etc"},
            {"created": created, "created_by": "scripts/image: freshet"},
        ],
    }
    cfg = layout.put(canonical(config), MEDIA_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": cfg,
        "layers": [base, app],
        "annotations": labels,
    }
    desc = layout.put(canonical(manifest), MEDIA_MANIFEST)
    desc["platform"] = {"architecture": arch, "os": "linux"}
    if arch == "arm64":
        desc["platform"]["variant"] = "v8"
    return desc


def build(args) -> None:
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    layout = Layout(out)
    manifests = []
    for spec in args.binary:
        arch, _, path = spec.partition("=")
        if arch not in ARCH_DIRS or not path:
            raise ImageError(f"--binary wants ARCH=PATH with ARCH in {sorted(ARCH_DIRS)}: {spec}")
        manifests.append(build_platform(layout, args, arch, Path(path)))
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": manifests,
        "annotations": labels_of(args),
    }
    desc = layout.put(canonical(index), MEDIA_INDEX)
    desc["annotations"] = {"org.opencontainers.image.ref.name": args.tag}
    (out / "index.json").write_bytes(
        canonical({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [desc]})
    )
    (out / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    print(desc["digest"])


# A reference of the image in deploy/: `registry/repo:tag@sha256:<hex>`.
PIN = re.compile(r"(?P<repo>[a-z0-9][\w.:/-]*/freshet):(?P<tag>[\w.-]+)@sha256:[0-9a-f]{64}")
# The chart's values.yaml: the three keys of its top-level `image:` block.
VALUES = re.compile(
    r"^image:\n  repository: \S+\n  tag: \"[\w.-]+\"\n((?:  #.*\n)*)  digest: sha256:[0-9a-f]{64}\n",
    re.M,
)


def pin(args) -> None:
    """Rewrites the pinned reference (repository, tag and digest) in `files`: a
    manifest's `image:` string, or the chart's `image:` values."""
    new = f"{args.repository}:{args.tag}@{args.digest}"
    if not PIN.fullmatch(new):
        raise ImageError(f"not a pinned freshet reference: {new}")
    for name in args.files:
        path = Path(name)
        text = path.read_text()
        if path.name == "values.yaml":
            block = (
                f"image:\n  repository: {args.repository}\n  tag: \"{args.tag}\"\n"
                f"\\1  digest: {args.digest}\n"
            )
            changed, count = VALUES.subn(block, text)
        else:
            changed, count = PIN.subn(new, text)
        if count == 0:
            raise ImageError(f"{path}: no pinned freshet reference to replace")
        path.write_text(changed)
        print(f"{path}: {count} reference(s) -> {new}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the OCI layout; prints the index digest")
    b.add_argument("--binary", action="append", required=True, metavar="ARCH=PATH")
    b.add_argument("--out", required=True)
    b.add_argument("--tag", required=True)
    b.add_argument("--version", required=True)
    b.add_argument("--revision", required=True)
    b.add_argument("--source", required=True)
    b.add_argument("--created", type=int, required=True, help="seconds since the epoch")
    b.add_argument("--ca-bundle", default=CA_BUNDLE)
    q = sub.add_parser("pin", help="rewrite the pinned reference in files")
    q.add_argument("--repository", required=True)
    q.add_argument("--tag", required=True)
    q.add_argument("--digest", required=True)
    q.add_argument("files", nargs="+")
    args = p.parse_args()
    try:
        {"build": build, "pin": pin}[args.cmd](args)
    except ImageError as e:
        print(f"oci_image: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
