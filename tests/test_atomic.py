"""Atomic writes leave files with the permissions a plain open() would give them."""

import os
import stat

import pytest

from nmt.atomic import atomic_path, atomic_write_text


@pytest.fixture
def umask():
    """Sets the process umask for one test and restores it after."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_new_file_gets_0666_less_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_text(tmp_path / "best.json", "{}\n")
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("translated\n")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert _mode(plain) == expected
    assert _mode(tmp_path / "best.json") == expected
    assert _mode(tmp_path / "out.txt") == expected


def test_replacing_a_file_keeps_its_permissions(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "config.yaml"
    target.write_text("old\n")
    target.chmod(0o600)
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert _mode(target) == 0o600


def test_a_writer_that_recreates_the_temporary_file_still_gets_the_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "model.weights.h5"
    with atomic_path(target, suffix=".weights.h5") as tmp:
        tmp.unlink()  # as h5py and other libraries do: delete, then create with their own mode
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    assert _mode(target) == 0o644
