"""Standard input in batches of what has arrived: a waiting writer gets its line back at once,
a piped file is still decoded in large batches."""

import os
import select
import subprocess
import sys
import threading

import pytest

from nmt.data.line_batches import available_batches, fixed_batches
from nmt.errors import NmtError


def _pipe_with(data: bytes) -> int:
    """The read end of a pipe that already holds `data` and whose writer has closed."""
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    return read


def test_everything_that_has_arrived_is_one_batch():
    fd = _pipe_with(b"one\ntwo\r\n\xef\xbb\xbfnot a bom here\nlast without newline")
    assert list(available_batches(fd, "<pipe>")) == [
        ["one", "two", "\ufeffnot a bom here", "last without newline"]
    ]
    os.close(fd)


def test_batches_are_capped_and_keep_the_order():
    lines = [f"line {i}" for i in range(10)]
    fd = _pipe_with("".join(line + "\n" for line in lines).encode())
    batches = list(available_batches(fd, "<pipe>", max_lines=4))
    os.close(fd)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sum(batches, []) == lines


def test_a_line_is_yielded_before_the_writer_closes():
    read, write = os.pipe()
    batches = available_batches(read, "<pipe>")
    os.write(write, b"first\nsecond\nhalf")
    assert next(batches) == ["first", "second"]  # would block here if it waited for EOF
    os.write(write, b" line\n")
    assert next(batches) == ["half line"]
    os.close(write)
    assert list(batches) == []
    os.close(read)


def test_invalid_utf8_names_the_stream_and_line():
    fd = _pipe_with(b"ok\n\xff\n")
    with pytest.raises(NmtError, match="<stdin>:2: invalid UTF-8"):
        list(available_batches(fd, "<stdin>"))
    os.close(fd)


def test_fixed_batches():
    assert list(fixed_batches(iter("abcde"), 2)) == [["a", "b"], ["c", "d"], ["e"]]
    with pytest.raises(ValueError, match="`size`"):
        list(fixed_batches([], 0))


def _read_line(stream, timeout: float) -> str:
    """One line from a subprocess's stdout, or a test failure after `timeout` seconds."""
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no translation within {timeout} s"
    return stream.readline()


@pytest.mark.slow
def test_a_program_gets_each_translation_without_closing_stdin(trained_run):
    process = subprocess.Popen(
        [sys.executable, "-m", "nmt", "translate", "--run-dir", str(trained_run)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    killer = threading.Timer(300, process.kill)  # the test fails rather than hangs
    killer.start()
    try:
        process.stdin.write("seven\n")
        process.stdin.flush()
        assert _read_line(process.stdout, 240).strip() == "sieben"
        process.stdin.write("three hundred\n")
        process.stdin.flush()
        assert _read_line(process.stdout, 60).strip() == "drei hundert"
        process.stdin.close()
        assert process.wait(timeout=60) == 0
        assert process.stdout.read() == ""
    finally:
        killer.cancel()
        process.kill()
        process.wait()


@pytest.mark.slow
def test_a_piped_file_is_translated_in_few_large_batches(trained_run, toy_data):
    # The whole file is in the pipe before nmt starts reading (it holds 64 KiB, the file is
    # smaller), so it arrives at once; NMT_DEBUG_BATCHES reports the batch sizes on stderr.
    data = toy_data["train.en"].read_bytes()[:30_000]
    data = data[: data.rindex(b"\n") + 1]
    lines = data.count(b"\n")
    stdin = _pipe_with(data)
    result = subprocess.run(
        [sys.executable, "-m", "nmt", "translate", "--run-dir", str(trained_run)],
        stdin=stdin,
        capture_output=True,
        env={**os.environ, "NMT_DEBUG_BATCHES": "1"},
        timeout=600,
    )
    os.close(stdin)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(b"\n") == lines
    sizes = [
        int(line.split()[5]) for line in result.stderr.decode().splitlines() if "batch" in line
    ]
    assert sum(sizes) == lines and lines > 500
    assert len(sizes) == -(-lines // 1024)  # as few as the 1024-line cap allows
