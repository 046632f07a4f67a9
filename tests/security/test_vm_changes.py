"""What a micro-VM guest sends back is untrusted: its tar of changes cannot
write outside the preview's layer, follow a link, or make a device."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from luminaguard.errors import SandboxError
from luminaguard.vm.backend import unpack


def tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as out:
        for info, data in members:
            info.size = len(data) if data is not None else 0
            out.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    return info


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    upper = tmp_path / "upper"
    upper.mkdir()
    return upper


def test_names_that_climb_out_or_are_absolute_land_nowhere(layer: Path, tmp_path: Path) -> None:
    unpack(
        tar(
            (entry("../escaped"), b"x"),
            (entry("/abs-escaped"), b"x"),
            (entry("./ok.txt"), b"kept"),
        ),
        layer,
    )
    assert not (tmp_path / "escaped").exists()
    assert not Path("/abs-escaped").exists()
    assert sorted(os.listdir(layer)) == ["abs-escaped", "ok.txt"]  # absolute: made relative
    assert (layer / "ok.txt").read_text() == "kept"


def test_a_symlink_is_never_followed_by_a_later_entry(layer: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(SandboxError, match="non-directory"):
        unpack(
            tar(
                (entry("link", tarfile.SYMTYPE, linkname=str(outside)), None),
                (entry("link/planted"), b"x"),
            ),
            layer,
        )
    assert list(outside.iterdir()) == []
    assert os.readlink(layer / "link") == str(outside)  # kept as a link: the card shows it


def test_a_file_over_an_existing_link_is_refused(layer: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("host")
    with pytest.raises(OSError):
        unpack(
            tar(
                (entry("f", tarfile.SYMTYPE, linkname=str(target)), None),
                (entry("f"), b"through the link"),
            ),
            layer,
        )
    assert target.read_text() == "host"


def test_devices_other_than_whiteouts_and_hard_links_are_refused(layer: Path) -> None:
    with pytest.raises(SandboxError, match="unsupported kind"):
        unpack(tar((entry("disk", tarfile.BLKTYPE, devmajor=8, devminor=0), None)), layer)
    with pytest.raises(SandboxError, match="unsupported kind"):
        unpack(tar((entry("null", tarfile.CHRTYPE, devmajor=1, devminor=3), None)), layer)
    with pytest.raises(SandboxError, match="unsupported kind"):
        unpack(tar((entry("hard", tarfile.LNKTYPE, linkname="/etc/passwd"), None)), layer)


@pytest.mark.skipif(os.geteuid() != 0, reason="a whiteout is a device node: root makes it")
def test_a_whiteout_becomes_a_whiteout(layer: Path) -> None:
    unpack(tar((entry("gone", tarfile.CHRTYPE, devmajor=0, devminor=0), None)), layer)
    st = os.lstat(layer / "gone")
    assert st.st_rdev == 0 and (st.st_mode & 0o170000) == 0o020000
