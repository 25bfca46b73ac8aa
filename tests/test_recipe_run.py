"""recipes/multi30k/run.sh stops with its steps: Ctrl-C or `kill` reaches `nmt train`, which
saves a checkpoint and says how to resume, and no step is left running on its own.

The data step is replaced by a stand-in (`python` on PATH skips prepare.py, which needs the
Multi30k files); `nmt train` is the real one, on the toy corpus with a tiny model via --set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def _train_process(script_pid: int) -> int:
    """The `nmt train` child of run.sh (a `tee` beside it, as run.sh once had, is not it)."""
    (train,) = [
        pid
        for pid in _children(script_pid)
        if b"train" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    ]
    return train


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
        while "\nstep " not in stdout.read_text():  # training is under way
            if script.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"no training step logged (exit {script.poll()}):\n{stderr.read_text()}"
                )
            time.sleep(0.2)
        train = _train_process(script.pid)
        if how == "kill":
            script.send_signal(signal.SIGTERM)
        else:
            os.killpg(script.pid, signal.SIGINT)
        ended = script.wait(timeout=120)
        time.sleep(1)  # a step that outlives run.sh would still be running now
        orphaned = _running(train)
    finally:
        try:
            os.killpg(script.pid, signal.SIGKILL)  # whatever is left of the group, orphans too
        except ProcessLookupError:
            pass
    assert not orphaned, "nmt train was left running after run.sh ended"
    assert ended == status, stderr.read_text()
    message = stderr.read_text()
    assert "nmt: training interrupted at step " in message
    assert "Run the same command again to resume." in message
    assert list((tmp_path / "run" / "checkpoints").glob("ckpt-*.index"))
