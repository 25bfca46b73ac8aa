"""`nmt translate --resume` continues an interrupted output file to the same lines an
uninterrupted run writes, and refuses files it cannot safely continue; `nmt evaluate --run-dir`
translates a batch at a time and scores as the whole file translated at once does."""

import json
import shutil

import pytest

# The toy test file is 100 lines: batches of 16 give a resumed run several batches to skip.
BATCH_LINES = 16


@pytest.fixture
def small_batches(monkeypatch):
    from nmt.commands import translate_command

    monkeypatch.setattr(translate_command, "FILE_BATCH_LINES", BATCH_LINES)


def _translate(run_dir, source, output, *flags: str) -> int:
    from nmt.cli import main

    argv = ["translate", "--run-dir", str(run_dir), "--input", str(source), "--output", str(output)]
    return main([*argv, *flags])


def _cut(path, lines: int, partial: bytes = b"") -> None:
    """Leaves the first `lines` lines of `path` and `partial`, as a killed writer would."""
    kept = path.read_bytes().splitlines(keepends=True)[:lines]
    path.write_bytes(b"".join(kept) + partial)


@pytest.mark.parametrize(
    "flags, lines_per_input",
    [((), 1), (("--n-best", "2", "--alignments"), 2)],
    ids=["plain", "n-best-alignments"],
)
def test_a_resumed_translation_is_the_uninterrupted_one(
    trained_run, toy_data, tmp_path, small_batches, flags, lines_per_input
):
    source, output = toy_data["test.en"], tmp_path / "out.txt"
    assert _translate(trained_run, source, output, *flags, "--resume") == 0
    expected = output.read_bytes()
    if not flags:  # --resume writes what a plain run writes
        plain = tmp_path / "plain.txt"
        assert _translate(trained_run, source, plain) == 0
        assert plain.read_bytes() == expected
        assert not (tmp_path / "plain.txt.resume.json").exists()
    # Killed in the middle of the third batch, with part of its line 41 written.
    _cut(output, 40 * lines_per_input, partial=b"drei\xc3")  # half of a UTF-8 ß
    assert _translate(trained_run, source, output, *flags, "--resume") == 0
    assert output.read_bytes() == expected


def test_a_resumed_translation_keeps_the_batches_written_and_a_finished_one_stays(
    trained_run, toy_data, tmp_path, small_batches
):
    source, output = toy_data["test.en"], tmp_path / "out.txt"
    assert _translate(trained_run, source, output, "--resume", "--beam-size", "1") == 0
    lines = output.read_text().splitlines(keepends=True)
    marked = ["kept\n", *lines[1 : 3 * BATCH_LINES]]
    output.write_text("".join(marked))
    assert _translate(trained_run, source, output, "--resume", "--beam-size", "1") == 0
    assert output.read_text() == "".join(marked + lines[len(marked) :])
    before = output.stat()
    assert _translate(trained_run, source, output, "--resume", "--beam-size", "1") == 0
    assert output.stat().st_mtime_ns == before.st_mtime_ns
    assert output.read_text() == "".join(marked + lines[len(marked) :])


def _refused(capsys, code: int, name: str) -> str:
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("nmt: error: "), err
    assert name in err, err
    return err


def test_files_a_resume_cannot_continue_are_refused(trained_run, toy_data, tmp_path, capsys):
    source = toy_data["test.en"]
    output = tmp_path / "out.txt"
    assert _translate(trained_run, source, output, "--resume", "--beam-size", "1") == 0
    finished = output.read_bytes()
    capsys.readouterr()

    output.write_bytes(finished + b"one more\n")
    err = _refused(
        capsys, _translate(trained_run, source, output, "--resume", "--beam-size", "1"), str(output)
    )
    assert "101 lines, more than the 100 input lines" in err
    output.write_bytes(finished[: len(finished) // 2])
    half = output.read_bytes()

    other = tmp_path / "other.en"
    other.write_text("seven\n" + "".join(source.read_text().splitlines(True)[1:]))
    _refused(
        capsys, _translate(trained_run, other, output, "--resume", "--beam-size", "1"), str(output)
    )
    err = _refused(capsys, _translate(trained_run, source, output, "--resume"), str(output))
    assert "was written with --beam-size 1, this command has no --beam-size" in err
    assert output.read_bytes() == half  # refusing leaves the file as it was

    plain = tmp_path / "plain.txt"
    shutil.copy(output, plain)
    err = _refused(capsys, _translate(trained_run, source, plain, "--resume"), str(plain))
    assert "plain.txt.resume.json" in err
    for stdin_or_stdout in ((source, "-"), ("-", plain)):
        err = _refused(capsys, _translate(trained_run, *stdin_or_stdout, "--resume"), "--resume")
    assert json.loads((tmp_path / "out.txt.resume.json").read_text())["input_lines"] == 100


def test_evaluate_translating_a_batch_at_a_time_scores_as_one_call(
    trained_run, toy_data, tmp_path, capsys, small_batches
):
    from nmt.cli import main
    from nmt.decoding.translator import Translator
    from nmt.evaluation import score

    source, ref, hyp = toy_data["test.en"], toy_data["test.de"], tmp_path / "hyp.txt"
    argv = ["evaluate", "--run-dir", str(trained_run), "--source", str(source), "--ref", str(ref)]
    assert main([*argv, "--hyp", str(hyp), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    translations = Translator.load(trained_run).translate(source.read_text().splitlines())
    assert hyp.read_text() == "".join(line + "\n" for line in translations)
    whole = score(translations, ref.read_text().splitlines(), lang="de")
    assert {k: v["score"] for k, v in scores.items()} == {k: v["score"] for k, v in whole.items()}
    short = tmp_path / "short.de"
    short.write_text("eins\n")
    assert main([*argv[:-1], str(short)]) == 1
    assert "has 100 lines but --ref" in capsys.readouterr().err
