#!/usr/bin/env python3
"""Fetch Multi30k task 1 (Elliott et al., 2016) and verify it against the official checksums.

Copies the gzipped raw files from a local directory (--data-dir) or downloads them from the
dataset's official repository, checks each SHA-256, and writes them atomically into
recipes/multi30k/data/ (or --out). A file that fails its checksum is never kept.

Besides train, val and test_2016_flickr it fetches the other official test sets
(test_2017_flickr, test_2017_mscoco, test_2018_flickr: what Multi30k papers report beside
test_2016_flickr), which run.sh scores when they are there. They are optional: a --data-dir or
archive without them is fine, and each one skipped is named.

    python recipes/multi30k/prepare.py --data-dir ../shared/data/multi30k
    python recipes/multi30k/prepare.py --archive multi30k-raw.tar.gz
    python recipes/multi30k/prepare.py            # downloads (needs internet)

Archives with an absolute or "../" member name are refused outright; the rest is unpacked with
tarfile's "data" filter (PEP 706), which also refuses links that point outside, so a hostile
archive cannot write elsewhere.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from nmt.atomic import atomic_path

URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{name}"

# SHA-256 of the official files in multi30k/dataset data/task1/raw/.
CHECKSUMS = {
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
    # The extra test sets (no Czech in the 2017 ones).
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test_2017_flickr.fr.gz": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
    "test_2017_mscoco.en.gz": "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
    "test_2017_mscoco.de.gz": "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
    "test_2017_mscoco.fr.gz": "754f3072ba9f124569ba5258b32730fc1d214bbf8e0c6dfb2b74401676220db0",
    "test_2018_flickr.en.gz": "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d",
    "test_2018_flickr.de.gz": "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608",
    "test_2018_flickr.fr.gz": "fb2b83fcceb937a4f7e3e93c1c51c22aba92f1e342391e6b5ba392b16a920501",
    "test_2018_flickr.cs.gz": "7d0a9db904f94c554a8c58049a9f3a5357c27f46cc3d710d70cb0b4a2585b8c2",
}
# Test sets the recipe scores when present but does not need (../shared has none of them).
EXTRA_TEST_SETS = ("test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")


class ChecksumError(Exception):
    pass


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str, out_dir: Path, data_dir: Path | None) -> Path:
    """Puts one verified file into out_dir; the final name appears only once it is verified."""
    target = out_dir / name
    if target.is_file() and sha256(target) == CHECKSUMS[name]:
        return target
    if target.is_file() and data_dir is not None and not (data_dir / name).is_file():
        raise ChecksumError(
            f"{target}: fails its SHA-256 check and {data_dir} has no copy to replace it"
            " (delete it, or give a folder that has the official file)"
        )
    # atomic_path renames the file into place only if the block succeeds, with the permissions
    # a plain open() would give it (a bare mkstemp would leave the data readable by us alone).
    with atomic_path(target) as tmp_path:
        if data_dir is not None:
            source = data_dir / name
            if not source.is_file():
                raise FileNotFoundError(f"{source}: missing from --data-dir")
            shutil.copyfile(source, tmp_path)
        else:
            with urllib.request.urlopen(URL.format(name=name), timeout=60) as response:
                with open(tmp_path, "wb") as f:
                    shutil.copyfileobj(response, f)
        actual = sha256(tmp_path)
        if actual != CHECKSUMS[name]:
            raise ChecksumError(
                f"{name}: SHA-256 {actual} does not match the official {CHECKSUMS[name]}"
            )
    return target


def unpack(archive: Path, into: Path) -> Path:
    """Extracts a .tar(.gz) safely and returns the folder holding the official file names."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if member.name.startswith(("/", "\\")) or ".." in parts:
                    raise tarfile.TarError(f"unsafe member name {member.name!r}")
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise OSError(f"{archive}: refused or unreadable archive ({error})") from None
    for name in CHECKSUMS:
        found = sorted(into.rglob(name))
        if found:
            return found[0].parent
    raise OSError(f"{archive}: none of the official Multi30k file names inside")


def _skipped(name: str, out_dir: Path, data_dir: Path | None) -> bool:
    """An extra test set that the local folder lacks and no earlier run put into out_dir."""
    split = name.split(".")[0]
    return (
        split in EXTRA_TEST_SETS
        and data_dir is not None
        and not (data_dir / name).is_file()
        and not (out_dir / name).is_file()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder that already holds the official .gz files (no download)",
    )
    parser.add_argument(
        "--archive",
        type=Path,
        help="a .tar or .tar.gz holding the official .gz files (no download)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "data",
        help="where the verified files go (default: recipes/multi30k/data)",
    )
    parser.add_argument(
        "--languages",
        default="en,de,fr",
        help="comma-separated language codes to fetch (default: en,de,fr)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    languages = args.languages.split(",")
    names = [n for n in CHECKSUMS if n.split(".")[-2] in languages]
    with tempfile.TemporaryDirectory() as scratch:
        try:
            data_dir = unpack(args.archive, Path(scratch)) if args.archive else args.data_dir
            for name in names:
                if _skipped(name, args.out, data_dir):
                    print(f"skip {name}: not in {data_dir} (an extra test set: scored if there)")
                    continue
                path = fetch(name, args.out, data_dir)
                print(f"ok  {path}")
        except (ChecksumError, OSError) as error:
            print(f"prepare.py: error: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
