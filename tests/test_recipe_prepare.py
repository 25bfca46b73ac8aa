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
