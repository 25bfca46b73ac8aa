"""Progress bars: drawn on a terminal, never in a pipe."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest
from conftest import run_nmt


def _run_with_terminal_stderr(args: list[str]) -> str:
    """Runs `nmt ARGS` with stderr on a pseudo-terminal; returns what it drew there."""
    master, slave = pty.openpty()
    # A fresh pty is 0 columns wide, and tqdm draws nothing in 0 columns.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "nmt", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    drawn = b""
    try:
        while chunk := os.read(master, 4096):
            drawn += chunk
    except OSError:  # Linux reports EIO once the child has closed the terminal
        pass
    finally:
        os.close(master)
    assert process.wait(timeout=600) == 0, drawn
    return drawn.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def files(toy_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    source, target = root / "src.en", root / "tgt.de"
    source.write_text("".join(toy_data["test.en"].read_text().splitlines(True)[:40]))
    target.write_text("".join(toy_data["test.de"].read_text().splitlines(True)[:40]))
    return source, target, root


def _commands(run_dir, source, target, root) -> dict[str, list[str]]:
    run = ["--run-dir", str(run_dir)]
    return {
        "translate": ["translate", *run, "--input", str(source), "--output", str(root / "hyp")],
        "evaluate": ["evaluate", *run, "--source", str(source), "--ref", str(target)],
        "score": ["score", *run, "--source", str(source), "--target", str(target)],
    }


@pytest.mark.slow
@pytest.mark.parametrize("command", ["translate", "evaluate", "score"])
def test_a_bar_with_sentences_per_second_appears_on_a_terminal(trained_run, files, command):
    drawn = _run_with_terminal_stderr(_commands(trained_run, *files)[command])
    assert "sent/s" in drawn and "40/40" in drawn, drawn


@pytest.mark.slow
@pytest.mark.parametrize("command", ["translate", "evaluate", "score"])
def test_nothing_extra_is_written_to_stderr_in_a_pipe(trained_run, files, command):
    result = run_nmt(*_commands(trained_run, *files)[command])
    assert result.stderr == ""
