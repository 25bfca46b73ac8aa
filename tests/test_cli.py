"""The command line as users run it: train, translate, evaluate, resume, and clear errors."""

import json

import pytest
from conftest import run_nmt

BLEU_FLOOR = 70.0


def test_trained_toy_model_reaches_a_bleu_floor_on_held_out_data(trained_run, toy_data, tmp_path):
    hyp = tmp_path / "test.hyp"
    run_nmt(
        "translate",
        "--run-dir",
        str(trained_run),
        "--input",
        str(toy_data["test.en"]),
        "--output",
        str(hyp),
    )
    assert len(hyp.read_text().splitlines()) == len(toy_data["test.en"].read_text().splitlines())
    result = run_nmt(
        "evaluate", "--hyp", str(hyp), "--ref", str(toy_data["test.de"]), "--lang", "de", "--json"
    )
    scores = json.loads(result.stdout)
    assert scores["bleu"]["score"] >= BLEU_FLOOR, scores["bleu"]
    assert "tok:13a" in scores["bleu"]["signature"]
    assert set(scores) == {"bleu", "chrf", "ter", "bleu_tokenized"}


def test_translate_streams_stdin_to_stdout_line_for_line(trained_run):
    lines = ["twenty one", "", "seven hundred", "  ", "six"]
    result = run_nmt("translate", "--run-dir", str(trained_run), input="\n".join(lines) + "\n")
    outputs = result.stdout.split("\n")
    assert outputs[-1] == "" and len(outputs) - 1 == len(lines)
    assert outputs[1] == "" and outputs[3] == ""


def test_nbest_output_format(trained_run):
    result = run_nmt(
        "translate",
        "--run-dir",
        str(trained_run),
        "--beam-size",
        "3",
        "--n-best",
        "2",
        input="eight\nnine\n",
    )
    rows = [line.split(" ||| ") for line in result.stdout.splitlines()]
    assert [row[0] for row in rows] == ["0", "0", "1", "1"]
    assert all(len(row) == 3 for row in rows)


def test_finished_run_resumes_instead_of_starting_over(trained_run, tmp_path):
    config = trained_run / "config.yaml"
    result = run_nmt("train", "--config", str(config), "--run-dir", str(trained_run))
    assert "resuming from" in result.stdout
    assert "stopped at step 1000 (max_steps)" in result.stdout


def test_errors_are_one_line_without_traceback(tmp_path, trained_run):
    same = tmp_path / "same.txt"
    same.write_text("seven\n")
    cases = [
        ("translate", "--run-dir", str(tmp_path / "missing")),
        ("translate", "--run-dir", str(trained_run), "--input", str(same), "--output", str(same)),
        ("evaluate", "--hyp", str(tmp_path / "nope"), "--ref", str(tmp_path / "nope")),
        (
            "train",
            "--config",
            str(trained_run / "config.yaml"),
            "--run-dir",
            str(trained_run),
            "--set",
            "model.hidden_size=128",
        ),
        (
            "train",
            "--config",
            str(trained_run / "config.yaml"),
            "--run-dir",
            str(tmp_path / "r"),
            "--set",
            "model.hiden_size=64",
        ),
    ]
    for args in cases:
        result = run_nmt(*args, check=False)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("nmt: error: "), result.stderr
    assert same.read_text() == "seven\n"  # the input survived
    changed = run_nmt(*cases[3], check=False).stderr
    assert "model.hidden_size: 64 -> 128" in changed
    assert "unknown config key model.hiden_size" in run_nmt(*cases[4], check=False).stderr


def test_help_explains_every_subcommand():
    for command in ("train", "translate", "evaluate", "sweep", "average", "demo"):
        text = run_nmt(command, "--help").stdout
        assert "usage: nmt " + command in text
        assert "--" in text


def test_translate_memory_does_not_grow_with_input_length(trained_run, tmp_path):
    # 10k and 1M lines (one real sentence per 1,000, the rest empty, so the test stays fast):
    # a streaming translate holds one chunk at a time, so peak RSS must not grow with length.
    import os
    import subprocess
    import sys

    peaks = {}
    for lines in (10_000, 1_000_000):
        source, output = tmp_path / f"in{lines}.txt", tmp_path / f"out{lines}.txt"
        source.write_text("".join("twenty one\n" if i % 1000 == 0 else "\n" for i in range(lines)))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nmt",
                "translate",
                "--run-dir",
                str(trained_run),
                "--input",
                str(source),
                "--output",
                str(output),
                "--beam-size",
                "1",
            ],
        )
        _, status, usage = os.wait4(process.pid, 0)
        assert status == 0
        assert output.read_text().count("\n") == lines
        peaks[lines] = usage.ru_maxrss  # KiB
    assert peaks[1_000_000] < peaks[10_000] * 1.1, peaks


def test_sweep_reports_every_grid_point_and_matches_evaluate(trained_run, toy_data):
    source, ref = str(toy_data["valid.en"]), str(toy_data["valid.de"])
    common = ["--run-dir", str(trained_run), "--beam-size", "2"]
    out = run_nmt(
        "sweep", *common, "--source", source, "--ref", ref, "--alpha", "0", "1", "--beta", "0"
    ).stdout
    rows = [line.split() for line in out.splitlines() if line[:6].strip()[:1].isdigit()]
    assert [(float(r[0]), float(r[1])) for r in rows] == [(0.0, 0.0), (1.0, 0.0)]
    best = max(float(r[2]) for r in rows)
    assert f"(BLEU {best:.2f})" in out
    scores = json.loads(
        run_nmt(
            "evaluate",
            *common,
            "--source",
            source,
            "--ref",
            ref,
            "--length-penalty",
            "1",
            "--coverage-penalty",
            "0",
            "--lang",
            "de",
            "--json",
        ).stdout
    )
    assert float(rows[1][2]) == pytest.approx(scores["bleu"]["score"], abs=0.01)


def test_max_length_flags_reach_the_search_and_their_help_states_the_defaults():
    from nmt.cli import _decoding_overrides, build_parser
    from nmt.config import DecodingConfig

    parser = build_parser()
    args = parser.parse_args(
        ["translate", "--run-dir", "r", "--max-length-ratio", "1.5", "--max-length-offset", "0"]
    )
    overrides = _decoding_overrides(args)
    assert overrides["max_length_ratio"] == 1.5 and overrides["max_length_offset"] == 0
    help_text = " ".join(run_nmt("translate", "--help").stdout.split())
    defaults = DecodingConfig()
    assert f"default {defaults.max_length_offset}" in help_text
    assert f"default {defaults.max_length_ratio}" in help_text
