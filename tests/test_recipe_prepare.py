"""The Multi30k recipe keeps only files whose SHA-256 matches the official one."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "multi30k"


def load_prepare():
    spec = importlib.util.spec_from_file_location("prepare", ROOT / "recipes/multi30k/prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_file_with_the_wrong_checksum_is_rejected_and_not_kept(tmp_path):
    prepare = load_prepare()
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir()
    for name in prepare.CHECKSUMS:
        (source / name).write_bytes(b"not the official data")
    status = prepare.main(["--data-dir", str(source), "--out", str(out), "--languages", "en"])
    assert status == 1
    assert list(out.iterdir()) == []


def test_missing_local_file_is_an_error(tmp_path):
    prepare = load_prepare()
    status = prepare.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
    assert status == 1


@pytest.mark.skipif(not SHARED.is_dir(), reason="no local Multi30k copy beside the checkout")
def test_official_files_pass(tmp_path):
    prepare = load_prepare()
    status = prepare.main(
        ["--data-dir", str(SHARED), "--out", str(tmp_path), "--languages", "en,de"]
    )
    assert status == 0
    assert len(list(tmp_path.glob("*.gz"))) == 6


def test_archive_members_that_escape_are_refused(tmp_path):
    import io
    import tarfile

    prepare = load_prepare()
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("../escaped.txt", "/tmp/absolute-escape.txt"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    out = tmp_path / "out"
    for name in ("../escaped.txt", "/tmp/absolute-escape.txt"):
        single = tmp_path / "single.tar"
        with tarfile.open(single, "w") as tar:
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
        status = prepare.main(["--archive", str(single), "--out", str(out), "--languages", "en"])
        assert status == 1, name
    assert prepare.main(["--archive", str(archive), "--out", str(out), "--languages", "en"]) == 1
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/absolute-escape.txt").exists()
    assert list(out.iterdir()) == []


def test_archive_with_the_official_files_is_accepted(tmp_path):
    import tarfile

    if not SHARED.is_dir():
        pytest.skip("no local Multi30k copy beside the checkout")
    prepare = load_prepare()
    archive = tmp_path / "raw.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("train.en.gz", "val.en.gz", "test_2016_flickr.en.gz"):
            tar.add(SHARED / name, arcname=f"data/task1/raw/{name}")
    status = prepare.main(
        ["--archive", str(archive), "--out", str(tmp_path / "o"), "--languages", "en"]
    )
    assert status == 0
    assert len(list((tmp_path / "o").glob("*.gz"))) == 3


def test_verified_files_get_the_permissions_of_a_plain_open(tmp_path, monkeypatch):
    import hashlib
    import os
    import stat

    prepare = load_prepare()
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir()
    names = [n for n in prepare.CHECKSUMS if n.split(".")[-2] == "en"]
    for name in names:
        (source / name).write_bytes(name.encode())
    # Stand-in checksums for stand-in files: what is tested is how a verified file is written.
    fake = {n: hashlib.sha256(n.encode()).hexdigest() for n in names}
    monkeypatch.setattr(prepare, "CHECKSUMS", fake)
    previous = os.umask(0o022)
    try:
        status = prepare.main(["--data-dir", str(source), "--out", str(out), "--languages", "en"])
    finally:
        os.umask(previous)
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o644}


def test_extra_test_sets_are_taken_when_there_and_named_when_not(tmp_path, monkeypatch, capsys):
    """A local folder like ../shared (no 2017/2018 test sets) works; what it has is verified."""
    import hashlib

    prepare = load_prepare()
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir()
    names = [n for n in prepare.CHECKSUMS if n.split(".")[-2] == "en"]
    there = [n for n in names if not n.startswith(("test_2017_mscoco", "test_2018"))]
    for name in there:
        (source / name).write_bytes(name.encode())
    fake = {n: hashlib.sha256(n.encode()).hexdigest() for n in names}
    monkeypatch.setattr(prepare, "CHECKSUMS", fake)
    argv = ["--data-dir", str(source), "--out", str(out), "--languages", "en"]
    assert prepare.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(there)
    printed = capsys.readouterr().out
    assert "skip test_2017_mscoco.en.gz: not in" in printed
    assert "skip test_2018_flickr.en.gz: not in" in printed
    assert "test_2017_flickr.en.gz" in "".join(p.name for p in out.iterdir())

    (source / "test_2018_flickr.en.gz").write_bytes(b"a corrupted copy")
    assert prepare.main(argv) == 1
    assert not (out / "test_2018_flickr.en.gz").exists()


def test_a_bad_file_left_in_the_output_without_a_copy_to_replace_it_is_an_error(
    tmp_path, monkeypatch, capsys
):
    import hashlib

    prepare = load_prepare()
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir()
    out.mkdir()
    names = [n for n in prepare.CHECKSUMS if n.split(".")[-2] == "en"]
    for name in names:
        (source / name).write_bytes(name.encode())
    monkeypatch.setattr(
        prepare, "CHECKSUMS", {n: hashlib.sha256(n.encode()).hexdigest() for n in names}
    )
    (source / "test_2017_mscoco.en.gz").unlink()
    (out / "test_2017_mscoco.en.gz").write_bytes(b"left half written by something else")
    argv = ["--data-dir", str(source), "--out", str(out), "--languages", "en"]
    assert prepare.main(argv) == 1
    assert "test_2017_mscoco.en.gz: fails its SHA-256 check" in capsys.readouterr().err


@pytest.mark.parametrize("pair", ["en-de", "de-en", "en-fr", "fr-en", "en-cs", "cs-en"])
def test_every_recipe_pair_reads_its_own_languages_and_prepare_verifies_them(pair):
    """A config copied from another pair and half edited would train on the wrong language."""
    from nmt.config import load_config

    source, target = pair.split("-")
    config = load_config(ROOT / "recipes/multi30k" / f"{pair}.yaml")
    names = [
        Path(getattr(config.data, field)).name
        for field in ("train_source", "train_target", "valid_source", "valid_target")
    ]
    assert names == [
        f"train.{source}.gz",
        f"train.{target}.gz",
        f"val.{source}.gz",
        f"val.{target}.gz",
    ]
    checksums = load_prepare().CHECKSUMS
    for language in (source, target):
        for split in ("train", "val", "test_2016_flickr"):
            assert f"{split}.{language}.gz" in checksums
        for split in load_prepare().EXTRA_TEST_SETS:  # the 2017 sets have no Czech
            if language != "cs" or split == "test_2018_flickr":
                assert f"{split}.{language}.gz" in checksums
