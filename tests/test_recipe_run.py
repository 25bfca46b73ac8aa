"""recipes/multi30k/run.sh: its seeds train side by side on one tokenizer and are decoded as an
ensemble, and it stops with its steps: Ctrl-C or `kill` reaches every `nmt train`, which saves a
checkpoint and says how to resume, and no step is left running on its own.

The data step is replaced by a stand-in (`python` on PATH skips prepare.py, which needs the
Multi30k files); `nmt train` is the real one, on the toy corpus with a tiny model via --set.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nmt.data.tokenizer import Tokenizer

_STEP = re.compile(r"^\S+ step +\d", re.MULTILINE)  # a logged training step in train.log
RUN_SH = Path(__file__).resolve().parents[1] / "recipes" / "multi30k" / "run.sh"


def _stand_ins(bin_dir: Path) -> None:
    """`nmt` runs this checkout's nmt; `python` runs everything but prepare.py."""
    bin_dir.mkdir()
    (bin_dir / "nmt").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m nmt "$@"\n')
    (bin_dir / "python").write_text(
        f'#!/bin/sh\ncase "$1" in */prepare.py) exit 0;; esac\nexec "{sys.executable}" "$@"\n'
    )
    for name in ("nmt", "python"):
        (bin_dir / name).chmod(0o755)


def _tiny_overrides(toy_data: dict[str, Path]) -> list[str]:
    settings = {
        "tokenizer.vocab_size": 60,
        "data.train_source": toy_data["train.en"],
        "data.train_target": toy_data["train.de"],
        "data.valid_source": toy_data["valid.en"],
        "data.valid_target": toy_data["valid.de"],
        "data.batch_size": 32,
        "model.embedding_size": 16,
        "model.hidden_size": 16,
        "model.compute_dtype": "float32",
        "training.max_minutes": 0,
        "training.max_steps": 1_000_000,
        "training.log_every": 2,
        "training.validate_every": 1_000_000,
        "training.checkpoint_every": 1_000_000,
    }
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _train_processes(script_pid: int) -> list[int]:
    """The `nmt train` children of run.sh (a `tee` beside one, as run.sh once had, is not one)."""
    return [
        pid
        for pid in _children(script_pid)
        if b"train" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    ]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize(
    "how, status",
    [("kill", 143), ("ctrl-c", 130)],  # SIGTERM to run.sh alone; SIGINT to its process group
)
def test_stopping_the_recipe_stops_training_with_a_checkpoint(toy_data, tmp_path, how, status):
    _stand_ins(tmp_path / "bin")
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", RUN_DIR="run")
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    # Files, not pipes: a step left running would hold a pipe open and hang the test.
    with open(stdout, "w") as out, open(stderr, "w") as err:
        script = subprocess.Popen(
            ["bash", str(RUN_SH), "en-de", *_tiny_overrides(toy_data)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    try:
        deadline = time.monotonic() + 300
        logs = [tmp_path / "run" / f"seed-{seed}" / "train.log" for seed in (1234, 1235)]
        while not all(log.is_file() and _STEP.search(log.read_text()) for log in logs):
            if script.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"no training step logged (exit {script.poll()}):\n{stderr.read_text()}"
                )
            time.sleep(0.2)
        trains = _train_processes(script.pid)
        if how == "kill":
            script.send_signal(signal.SIGTERM)
        else:
            os.killpg(script.pid, signal.SIGINT)
        ended = script.wait(timeout=120)
        time.sleep(1)  # a step that outlives run.sh would still be running now
        orphaned = [pid for pid in trains if _running(pid)]
    finally:
        try:
            os.killpg(script.pid, signal.SIGKILL)  # whatever is left of the group, orphans too
        except ProcessLookupError:
            pass
    assert len(trains) == 2, "run.sh trains its two default seeds side by side"
    assert not orphaned, "nmt train was left running after run.sh ended"
    assert ended == status, stderr.read_text()
    message = stderr.read_text()
    assert message.count("nmt: training interrupted at step ") == 2
    assert "Run the same command again to resume." in message
    for seed in (1234, 1235):
        assert list((tmp_path / "run" / f"seed-{seed}" / "checkpoints").glob("ckpt-*.index"))
    # The stopped try's training time counts towards the run's total (results.md) on resume.
    assert int((tmp_path / "run" / "train_wall_seconds.txt").read_text()) >= 1


@pytest.mark.slow
def test_the_recipe_decodes_its_seeds_as_an_ensemble(toy_data, tmp_path):
    """The whole recipe on the toy corpus: two seeds on one tokenizer, one line out per line in."""
    recipe = tmp_path / "recipe"  # a copy, so that its data/ can hold the toy corpus
    recipe.mkdir()
    for name in ("run.sh", "tokenizer.py", "results.py", "en-de.yaml"):
        shutil.copy(RUN_SH.parent / name, recipe / name)
    shutil.copy(RUN_SH.parents[1] / "steps.sh", tmp_path / "steps.sh")  # run.sh's ../steps.sh
    (recipe / "data").mkdir()
    # An extra test set (test_2017_mscoco) is scored because its files are there; test_2017_flickr
    # and test_2018_flickr are not: no rows, and no scores left from an earlier run.
    splits = (("valid", "val"), ("test", "test_2016_flickr"), ("test", "test_2017_mscoco"))
    for ours, theirs in (("train", "train"), *splits):
        for lang in ("en", "de"):
            text = toy_data[f"{ours}.{lang}"].read_bytes()
            (recipe / "data" / f"{theirs}.{lang}.gz").write_bytes(gzip.compress(text))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "test_2018_flickr.scores.json").write_text("{}")  # an older model's
    (tmp_path / "run" / "test_2018_flickr.de").write_text("an older model's translation\n")
    (tmp_path / "run" / "train_wall_seconds.txt").write_text("600\n")  # a stopped first try's
    _stand_ins(tmp_path / "bin")
    env = dict(
        os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", RUN_DIR="run", SEEDS="7 8"
    )
    settings = _tiny_overrides(toy_data)
    overrides = []  # the recipe's own data paths (the toy corpus now), the tiny model, 30 steps
    for flag, setting in zip(settings[::2], settings[1::2]):
        if not setting.startswith(
            ("data.train", "data.valid", "training.max_steps", "training.ch")
        ):
            overrides += [flag, setting]
    overrides += ["--set", "training.max_steps=30", "--set", "training.checkpoint_every=10"]
    overrides += ["--set", "decoding.batch_size=50"]
    result = subprocess.run(
        ["bash", str(recipe / "run.sh"), "en-de", *overrides],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    tokenizers = [run / "tokenizer", run / "seed-7" / "tokenizer", run / "seed-8" / "tokenizer"]
    models = [sorted(p.read_bytes() for p in t.glob("*.model")) for t in tokenizers]
    assert models[0] and models[0] == models[1] == models[2]
    decoded = (run / "decoded_checkpoints.txt").read_text().split()
    assert [Path(c).parent.parent.name for c in decoded] == ["seed-7", "seed-8"]
    for ours, theirs in splits:
        lines_in = toy_data[f"{ours}.en"].read_text().splitlines()
        assert len((run / f"{theirs}.de").read_text().splitlines()) == len(lines_in)
    results = (run / "results.md").read_text()
    assert not (run / "test_2018_flickr.scores.json").exists()
    assert not (run / "test_2018_flickr.de").exists()
    wall = int((run / "train_wall_seconds.txt").read_text())
    assert 600 < wall < 900 and f"training wall time: {wall / 60:.1f} min" in results
    assert [line.split(" | ")[0] for line in results.splitlines() if line.startswith("| test")] == [
        "| test_2016_flickr",
        "| test_2017_mscoco",
    ]
    assert "(an ensemble)" in results and "seed-8: stopped at step 30 (max_steps)" in results


def test_a_seed_that_fails_fails_the_recipe_even_when_the_other_ends_with_it(tmp_path):
    """Two seeds end at the same moment, one failing: the script exits with its status and
    averages nothing (bash may reap both before it looks, and must not lose the failure)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(  # no data step; the tokenizer step makes an empty folder
        '#!/bin/sh\ncase "$1" in */tokenizer.py) mkdir -p "$3/tokenizer";; esac\nexit 0\n'
    )
    # Seed 8 fails once seed 7 has logged its call: else run.sh, stopping the other seed on the
    # failure as it should, may kill seed 7 before it logs (a race in the test, seen 2 in 7 runs).
    (bin_dir / "nmt").write_text(
        '#!/bin/sh\necho "$*" >> calls.txt\ncase "$*" in *training.seed=8*)\n'
        "  while [ \"$(grep -c ' train ' calls.txt)\" -lt 2 ]; do sleep 0.01; done; exit 3;; esac\n"
        "exit 0\n"
    )
    for name in ("nmt", "python"):
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", RUN_DIR="run", SEEDS="7 8")
    for _ in range(3):
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        (tmp_path / "calls.txt").write_text("")
        result = subprocess.run(
            ["bash", str(RUN_SH), "en-de"], cwd=tmp_path, env=env, capture_output=True, timeout=60
        )
        assert result.returncode == 3
        calls = (tmp_path / "calls.txt").read_text()
        assert calls.count(" train ") == 2 and " average " not in calls


def test_the_recipe_refuses_a_seed_named_twice(tmp_path):
    result = subprocess.run(
        ["bash", str(RUN_SH), "en-de"],
        cwd=tmp_path,
        env=dict(os.environ, SEEDS="7 7"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SEEDS names a seed twice" in result.stderr


def test_the_tokenizer_step_trains_one_tokenizer_without_starting_tensorflow(toy_data, tmp_path):
    """run.sh's first step only trains SentencePiece: importing TensorFlow there cost 5 s per
    recipe start on the 2-core CPU, before any seed trained."""
    probe = (
        "import sys\n"
        f"sys.path.insert(0, {str(RUN_SH.parent)!r})\n"
        "import tokenizer\n"
        "status = tokenizer.main(sys.argv[1:])\n"
        "print('tensorflow' in sys.modules)\n"
        "sys.exit(status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(RUN_SH.parent / "en-de.yaml"), "run"]
        + _tiny_overrides(toy_data),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False", result.stdout
    tokenizer = Tokenizer.load(tmp_path / "run" / "tokenizer")
    assert tokenizer.source_vocab_size == 60  # the --set tokenizer.vocab_size, not the recipe's
