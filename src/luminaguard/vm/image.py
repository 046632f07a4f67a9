"""`luminaguard vm build-image`: the micro-VM's kernel and initramfs.

One command, cached, reproducible:

- **Kernel:** Debian's ``linux-image-cloud-amd64`` (the versioned package it
  depends on), fetched with ``apt-get download`` and unpacked with
  ``dpkg-deb -x``. The bzImage's payload is decompressed to the plain
  ``vmlinux`` ELF, which QEMU boots directly through its PVH entry (no
  firmware, no decompression at every boot).
- **Initramfs:** busybox (Debian's ``busybox-static``), the virtio modules the
  cloud kernel builds as modules (``virtio_mmio``, ``virtio_console``,
  ``virtio-rng``, ``overlay`` and what they depend on), an ``/init`` that
  loads them and execs the guest agent, and the agent itself (``agent.c``,
  compiled static here: it needs nothing in the guest).
- **Reproducible:** the archive lists its entries sorted, with fixed owners
  and times, so the same inputs give the same bytes; the image's name is the
  hash of its inputs (kernel and busybox package versions, the agent's
  source, the init script), so a changed input is a new image and an
  unchanged one is built once.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from luminaguard.errors import CompileError, ImageError
from luminaguard.sandbox import native
from luminaguard.store import exclusive

KERNEL_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
MODULES = (
    "virtio_ring", "virtio", "virtio_mmio", "virtio_console", "virtio-rng", "virtio_blk", "overlay",
)  # fmt: skip
"""Loaded in this order by /init: each after what it depends on."""
AGENT_PORT = "agent"
"""The name of the agent's virtio-serial port (QEMU's ``virtserialport,name=``)."""
INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t tmpfs -o mode=1777 tmp /tmp
for m in {modules}; do /bin/busybox insmod /lib/modules/$m.ko || exit 1; done
# The guest's root for commands: the read-only root image, with its own /proc,
# /tmp and a /dev of the harmless devices only.
if [ -b /dev/vda ]; then
    /bin/busybox mount -t ext4 -o ro /dev/vda /newroot || exit 1
    /bin/busybox mount -t proc proc /newroot/proc
    /bin/busybox mount -t tmpfs -o mode=1777,nosuid,nodev tmp /newroot/tmp
    /bin/busybox mount -t tmpfs -o mode=755,nosuid dev /newroot/dev
    for d in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
        set -- $d
        /bin/busybox mknod -m 666 /newroot/dev/$1 c $2 $3
    done
    /bin/busybox ln -s /proc/self/fd /newroot/dev/fd
fi
# The agent's port, by the name the host gave it (the numbering depends on
# which devices the VM has).
for try in 1 2 3 4 5 6 7 8 9 10; do
    for p in /sys/class/virtio-ports/*; do
        [ "$(/bin/busybox cat $p/name 2>/dev/null)" = {port} ] && exec /agent /dev/${{p##*/}}
    done
    /bin/busybox usleep 50000
done
echo "no virtio-serial port named {port}"
"""
ROOTFS_SUITE = "bookworm"
ROOTFS_PACKAGES = ("python3", "git", "ca-certificates")
"""The guest's userland beyond Debian's minimal base: what the tools run."""
IMAGE_VERSION = 3
"""Bumped when the layout of an image changes, or when an older image must
not be used again (3: version 2's agent could lose a command's exit)."""


@dataclass(frozen=True)
class Image:
    """A built image: files in ``directory``, described by ``image.json``."""

    directory: Path
    kernel_version: str
    rootfs: Path | None = None
    """The read-only root the guest runs commands in (None: busybox only)."""

    @property
    def vmlinux(self) -> Path:
        return self.directory / "vmlinux"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.cpio"

    @property
    def key(self) -> str:
        return self.directory.name


def images_dir(data_dir: Path) -> Path:
    return data_dir / "vm" / "images"


def find_image(data_dir: Path) -> Image | None:
    """The newest built image, or None (``luminaguard vm build-image`` makes one)."""
    best: tuple[float, Image] | None = None
    root = images_dir(data_dir)
    if not root.is_dir():
        return None
    for entry in root.iterdir():
        meta = entry / "image.json"
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            when = meta.stat().st_mtime
        except (OSError, ValueError):
            continue
        if info.get("version") != IMAGE_VERSION:
            continue
        rootfs = Path(info["rootfs"]) if info.get("rootfs") else None
        image = Image(entry, str(info["kernel_version"]), rootfs)
        if (
            (rootfs is None or rootfs.exists())
            and image.vmlinux.exists()
            and image.initrd.exists()
            and (best is None or when > best[0])
        ):
            best = (when, image)
    return best[1] if best else None


def build_image(
    data_dir: Path, *, say: Callable[[str], None] = print, rootfs: bool = True
) -> tuple[Image, bool]:
    """The image for the current inputs, built unless it is already there;
    returns it and whether it was built now. ``say`` hears each step;
    ``rootfs``: with the guest's root image (debootstrap, a minute the first time).
    One build at a time per data dir: a second process waits, then finds it built."""
    with exclusive(data_dir / "vm" / ".build.lock"):
        return _build_image(data_dir, say=say, rootfs=rootfs)


def _build_image(data_dir: Path, *, say: Callable[[str], None], rootfs: bool) -> tuple[Image, bool]:
    root_image = build_rootfs(data_dir, say=say) if rootfs else None
    for tool in ("apt-get", "apt-cache", "dpkg-deb", "gcc"):
        if shutil.which(tool) is None:
            raise ImageError(f"building the micro-VM image needs {tool} (Debian)")
    kernel_pkg = _depends_on(KERNEL_PACKAGE)
    versions = {
        "kernel": f"{kernel_pkg} {_version(kernel_pkg)}",
        "busybox": f"{BUSYBOX_PACKAGE} {_version(BUSYBOX_PACKAGE)}",
    }
    agent_source = resources.files("luminaguard.vm").joinpath("agent.c").read_bytes()
    init = INIT.format(modules=" ".join(MODULES), port=AGENT_PORT).encode()
    from luminaguard.sandbox.seccomp import filter_program

    bpf = filter_program()
    key = hashlib.sha256(
        json.dumps(
            [
                IMAGE_VERSION,
                versions,
                hashlib.sha256(agent_source + bpf).hexdigest(),
                init.decode(),
                str(root_image),
            ]
        ).encode()
    ).hexdigest()[:16]
    target = images_dir(data_dir) / key
    if (target / "image.json").exists():
        return Image(target, versions["kernel"], root_image), False
    images_dir(data_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=images_dir(data_dir)))
    try:
        say(
            f"luminaguard: fetching {versions['kernel']} and {versions['busybox']} (apt-get download)"
        )
        kernel_root = _unpack(kernel_pkg, work / "kernel")
        busybox_root = _unpack(BUSYBOX_PACKAGE, work / "busybox")
        say("luminaguard: extracting vmlinux, compiling the guest agent, writing the initramfs")
        vmlinuz = next((kernel_root / "boot").glob("vmlinuz-*"), None)
        if vmlinuz is None:
            raise ImageError(f"{kernel_pkg} holds no /boot/vmlinuz-*")
        (work / "vmlinux").write_bytes(extract_vmlinux(vmlinuz.read_bytes()))
        agent = work / "agent"
        (work / "agent.c").write_bytes(agent_source)
        try:
            native.compile_static(work / "agent.c", agent)
        except CompileError as exc:
            raise ImageError(str(exc)) from None
        modules = _modules(kernel_root)
        entries = initramfs_entries(
            busybox=(busybox_root / "bin" / "busybox").read_bytes(),
            agent=agent.read_bytes(),
            modules=modules,
            init=init,
            seccomp=bpf,
        )
        (work / "initrd.cpio").write_bytes(cpio(entries))
        info = {
            "version": IMAGE_VERSION,
            "kernel_version": versions["kernel"],
            "rootfs": str(root_image) if root_image else None,
            **versions,
        }
        (work / "image.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        for scratch in ("kernel", "busybox", "agent.c", "agent"):
            path = work / scratch
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        try:
            work.rename(target)
        except OSError:
            # Another process built the same image meanwhile: use theirs.
            shutil.rmtree(work, ignore_errors=True)
        _prune(data_dir, keep=target.name, keep_rootfs=root_image)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Image(target, versions["kernel"], root_image), True


def rootfs_dir(data_dir: Path) -> Path:
    return data_dir / "vm" / "rootfs"


def build_rootfs(data_dir: Path, *, say: Callable[[str], None] = print) -> Path:
    """The guest's read-only root (ext4): Debian's minimal base and
    ``ROOTFS_PACKAGES``, by debootstrap; the same accounts as the host's
    sandboxes, a ``/workspace`` mount point. Built once per input."""
    from luminaguard.sandbox.profile import GROUP, PASSWD

    key = hashlib.sha256(
        json.dumps([IMAGE_VERSION, ROOTFS_SUITE, ROOTFS_PACKAGES, PASSWD, GROUP]).encode()
    ).hexdigest()[:16]
    target = rootfs_dir(data_dir) / f"{key}.ext4"
    if target.exists():
        return target
    for tool in ("debootstrap", "mke2fs"):
        if shutil.which(tool) is None:
            raise ImageError(
                f"building the guest's root needs {tool} (Debian: apt-get install {tool})"
            )
    if os.geteuid() != 0:
        raise ImageError("building the guest's root needs root (debootstrap); run it once as root")
    rootfs_dir(data_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=rootfs_dir(data_dir)))
    try:
        tree = work / "root"
        say(
            f"luminaguard: the guest's root: debootstrap {ROOTFS_SUITE} minbase with "
            f"{', '.join(ROOTFS_PACKAGES)} (a minute or more, once)"
        )
        _run(
            [
                "debootstrap", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}",
                ROOTFS_SUITE, str(tree), "http://deb.debian.org/debian",
            ],
            "debootstrap",
        )  # fmt: skip
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (tree / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        (tree / "etc" / "passwd").write_text(PASSWD, encoding="utf-8")
        (tree / "etc" / "group").write_text(GROUP, encoding="utf-8")
        for secret in ("shadow", "gshadow"):
            (tree / "etc" / secret).unlink(missing_ok=True)
        (tree / "workspace").mkdir(exist_ok=True)
        used_mb = (
            sum(f.stat().st_size for f in tree.rglob("*") if f.is_file() and not f.is_symlink())
            // 2**20
        )
        image = work / "rootfs.ext4"
        _run(
            [
                "mke2fs", "-q", "-t", "ext4", "-F", "-O", "^has_journal", "-L", "lgroot",
                "-d", str(tree), str(image), f"{used_mb * 13 // 10 + 64}M",
            ],
            "mke2fs",
        )  # fmt: skip
        image.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _prune(data_dir: Path, *, keep: str, keep_rootfs: Path | None) -> None:
    """Older images, their snapshot templates and root images go once a new
    image is built (a VM still running one keeps its open files)."""
    for entry in images_dir(data_dir).iterdir():
        if entry.name != keep and not entry.name.startswith("build-"):
            shutil.rmtree(entry, ignore_errors=True)
    templates = data_dir / "vm" / "templates"
    if templates.is_dir():
        for entry in templates.iterdir():
            if not entry.name.startswith((f"{keep}-", "making-")):
                shutil.rmtree(entry, ignore_errors=True)
    if keep_rootfs is not None:
        for old in rootfs_dir(data_dir).glob("*.ext4"):
            if old != keep_rootfs:
                old.unlink(missing_ok=True)


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF kernel inside a bzImage: its payload found by magic and decompressed."""
    if bzimage[:4] == b"\x7fELF":
        return bzimage
    for magic, decompress in (
        (b"\x02\x21\x4c\x18", _lz4_legacy),
        (b"\x1f\x8b\x08", lambda d: zlib.decompressobj(31).decompress(d)),
        (b"\xfd7zXZ\x00", lambda d: lzma.LZMADecompressor().decompress(d)),
        (b"\x28\xb5\x2f\xfd", _zstd),
    ):
        at = bzimage.find(magic)
        while at >= 0:
            try:
                out = decompress(bzimage[at:])
            except (OSError, ValueError, zlib.error, lzma.LZMAError, ImageError):
                out = b""
            if out[:4] == b"\x7fELF":
                return out
            at = bzimage.find(magic, at + 1)
    raise ImageError("no kernel payload found in the bzImage (lz4, gzip, xz or zstd)")


def _lz4_legacy(data: bytes) -> bytes:
    return _filter(["lz4", "-d", "-c"], data, "lz4 (Debian package lz4)")


def _zstd(data: bytes) -> bytes:
    return _filter(["zstd", "-d", "-c"], data, "zstd (Debian package zstd)")


def _filter(argv: list[str], data: bytes, what: str) -> bytes:
    if shutil.which(argv[0]) is None:
        raise ImageError(f"decompressing the kernel needs {what}")
    # Trailing bytes after the payload make the tool complain; the output is what counts.
    done = subprocess.run(argv, input=data, capture_output=True, check=False)
    return done.stdout


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"{what} failed: {(done.stderr or done.stdout).strip()[:500]}")


def _depends_on(meta: str) -> str:
    """The versioned package a meta package (linux-image-cloud-amd64) stands for."""
    out = subprocess.run(
        ["apt-cache", "depends", meta], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"Depends:\s*(linux-image-\S+)", out)
    if found is None:
        raise ImageError(
            f"apt knows no {meta}: run `apt-get update` (Debian bookworm or newer is needed)"
        )
    return found.group(1)


def _version(package: str) -> str:
    out = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", package],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found = re.search(r"^Version:\s*(\S+)", out, re.MULTILINE)
    if found is None:
        raise ImageError(f"apt knows no {package}: run `apt-get update`")
    return found.group(1)


def _unpack(package: str, into: Path) -> Path:
    into.mkdir(parents=True)
    _run_in(["apt-get", "download", package], into, f"downloading {package}")
    [deb] = list(into.glob("*.deb"))
    _run(["dpkg-deb", "-x", str(deb), str(into / "root")], f"unpacking {deb.name}")
    deb.unlink()
    return into / "root"


def _run_in(argv: list[str], cwd: Path, what: str) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"{what} failed: {(done.stderr or done.stdout).strip()[:500]}")


def _modules(kernel_root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name in MODULES:
        paths = list((kernel_root / "lib" / "modules").glob(f"*/kernel/**/{name}.ko"))
        if not paths:
            raise ImageError(f"the kernel package has no {name}.ko")
        found[name] = paths[0].read_bytes()
    return found


Entry = tuple[str, int, bytes]


def initramfs_entries(
    *, busybox: bytes, agent: bytes, modules: dict[str, bytes], init: bytes, seccomp: bytes
) -> list[Entry]:
    entries: list[Entry] = [
        (d, stat.S_IFDIR | 0o755, b"")
        for d in ("bin", "dev", "lib", "lib/modules", "newroot", "proc", "sys", "tmp")
    ]
    entries += [
        ("agent", stat.S_IFREG | 0o755, agent),
        ("seccomp.bpf", stat.S_IFREG | 0o644, seccomp),
        ("bin/busybox", stat.S_IFREG | 0o755, busybox),
        ("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
        ("init", stat.S_IFREG | 0o755, init),
    ]
    entries += [(f"lib/modules/{n}.ko", stat.S_IFREG | 0o644, b) for n, b in modules.items()]
    return sorted(entries)


def cpio(entries: list[Entry]) -> bytes:
    """A newc ("070701") archive, as the kernel unpacks an initramfs: owners
    root, times zero, inode numbers by position, so it is reproducible."""
    out = bytearray()

    def add(ino: int, name: str, mode: int, data: bytes) -> None:
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0)
        out.extend(b"070701" + "".join(f"{f:08x}" for f in fields).encode())
        out.extend(name.encode() + b"\0")
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data) in enumerate(entries, start=1):
        add(ino, name, mode, data)
    add(0, "TRAILER!!!", 0, b"")
    return bytes(out)


def describe(image: Image) -> dict[str, object]:
    return {
        "directory": str(image.directory),
        "key": image.key,
        "kernel": image.kernel_version,
        "vmlinux_bytes": image.vmlinux.stat().st_size,
        "initrd_bytes": image.initrd.stat().st_size,
        "initrd_sha256": hashlib.sha256(image.initrd.read_bytes()).hexdigest(),
    }
