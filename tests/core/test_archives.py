"""Source bundles and model archives: unsafe ones refused whole, packing deterministic."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from ketch.core.archives import (
    ArchiveLimits,
    UnsafeArchive,
    check_archive,
    extract_archive,
    pack_folder,
)


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, mode="w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_file("../escape.py"), "climbs out"),
        (_file("src/../../escape.py"), "climbs out"),
        (_file("/etc/cron.d/evil"), "absolute"),
        (_special("link", tarfile.SYMTYPE, "/etc/passwd"), "a link"),
        (_special("hard", tarfile.LNKTYPE, "train.py"), "a link"),
        (_special("dev", tarfile.CHRTYPE), "device"),
        (_special("fifo", tarfile.FIFOTYPE), "device"),
        (_file("C:/windows/x"), "drive"),
        (_file("a\\b"), "backslash"),
    ],
)
def test_an_unsafe_member_refuses_the_whole_archive(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], reason: str
) -> None:
    archive = _tar(tmp_path / "sourcedir.tar.gz", [_file("train.py", b"print(1)"), member])
    destination = tmp_path / "out"
    with pytest.raises(UnsafeArchive, match=reason):
        extract_archive(archive, destination)
    assert not destination.exists()  # nothing at all was extracted, not even train.py


def test_a_decompression_bomb_is_refused(tmp_path: Path) -> None:
    zeros = b"\0" * (4 * 1024 * 1024)
    archive = _tar(tmp_path / "model.tar.gz", [_file("weights.bin", zeros)])
    limits = ArchiveLimits(min_ratio_checked_bytes=1024 * 1024, max_ratio=50)
    with pytest.raises(UnsafeArchive, match="decompression bomb"):
        check_archive(archive, limits)


def test_member_count_and_total_size_are_bounded(tmp_path: Path) -> None:
    many = _tar(tmp_path / "many.tar.gz", [_file(f"f{i}") for i in range(11)])
    with pytest.raises(UnsafeArchive, match="more than 10 members"):
        check_archive(many, ArchiveLimits(max_members=10))
    big = _tar(tmp_path / "big.tar.gz", [_file("a", b"y" * 2048)])
    with pytest.raises(UnsafeArchive, match="more than 1024 bytes"):
        check_archive(big, ArchiveLimits(max_total_bytes=1024))


def test_a_file_that_is_not_a_tar_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"definitely not a tar")
    with pytest.raises(UnsafeArchive, match="not a readable tar"):
        check_archive(junk)


def test_pack_then_extract_round_trips_and_packing_is_deterministic(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "model.joblib").write_bytes(b"weights")
    (model / "sub" / "config.json").write_text("{}")
    first, second = tmp_path / "a" / "model.tar.gz", tmp_path / "b" / "model.tar.gz"
    pack_folder(model, first)
    pack_folder(model, second)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as archive:
        assert archive.getnames() == ["model.joblib", "sub", "sub/config.json"]
    summary = extract_archive(first, tmp_path / "unpacked")
    assert summary.members == 3
    assert (tmp_path / "unpacked" / "sub" / "config.json").read_text() == "{}"


def test_packing_refuses_a_link_in_the_folder(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "leak").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeArchive, match="not a file or folder"):
        pack_folder(model, tmp_path / "model.tar.gz")
    assert not (tmp_path / "model.tar.gz").exists()


def test_tick_is_called_per_member_and_per_mib(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for i in range(5):
        (model / f"small-{i}.txt").write_text(str(i))
    (model / "weights.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # incompressible
    ticks: list[str] = []
    archive = pack_folder(model, tmp_path / "model.tar.gz", tick=lambda: ticks.append("pack"))
    assert ticks.count("pack") >= 6 + 3  # six members, three MiB of weights
    checked = extract_archive(archive, tmp_path / "out", tick=lambda: ticks.append("extract"))
    assert checked.members == 6
    # Checked, then extracted: each pass ticks per member and per whole MiB read (of
    # the ~3 MiB archive, at least two whole MiB by the end of the last member).
    assert ticks.count("extract") >= 2 * (6 + 2)
    assert (tmp_path / "out" / "weights.bin").read_bytes() == (model / "weights.bin").read_bytes()


class Stop(Exception):
    pass


def test_what_tick_raises_stops_the_work_unchanged(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for i in range(3):
        (model / f"f{i}").write_text("x")
    archive = pack_folder(model, tmp_path / "model.tar.gz")
    calls = iter(range(100))

    def tick() -> None:
        if next(calls) == 4:  # in the extraction pass, after the check's three members
            raise Stop

    with pytest.raises(Stop):
        extract_archive(archive, tmp_path / "out", tick=tick)
    assert len(list((tmp_path / "out").iterdir())) < 3

    def refuse() -> None:
        raise Stop

    with pytest.raises(Stop):
        pack_folder(model, tmp_path / "again.tar.gz", tick=refuse)
    assert not (tmp_path / "again.tar.gz").exists()
    assert [p.name for p in tmp_path.iterdir() if "again" in p.name] == []
