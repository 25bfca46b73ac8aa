"""The command line as users run it: train, translate, evaluate, resume, and clear errors."""

import json
import os
import signal
import subprocess
import sys
from typing import NamedTuple

import pytest
from conftest import make_run_dir, run_nmt

BLEU_FLOOR = 70.0


@pytest.mark.slow
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


@pytest.mark.slow
def test_translate_streams_stdin_to_stdout_line_for_line(trained_run):
    lines = ["twenty one", "", "seven hundred", "  ", "six"]
    result = run_nmt("translate", "--run-dir", str(trained_run), input="\n".join(lines) + "\n")
    outputs = result.stdout.split("\n")
    assert outputs[-1] == "" and len(outputs) - 1 == len(lines)
    assert outputs[1] == "" and outputs[3] == ""


@pytest.mark.slow
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


@pytest.mark.slow
def test_finished_run_resumes_instead_of_starting_over(trained_run, tmp_path):
    config = trained_run / "config.yaml"
    result = run_nmt("train", "--config", str(config), "--run-dir", str(trained_run))
    assert "resuming from" in result.stdout
    assert "stopped at step 1000 (max_steps)" in result.stdout


@pytest.mark.slow
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
    errors = []
    for args in cases:
        result = run_nmt(*args, check=False)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("nmt: error: "), result.stderr
        errors.append(result.stderr)
    assert same.read_text() == "seven\n"  # the input survived
    assert "model.hidden_size: 64 -> 128" in errors[3]
    assert "unknown config key model.hiden_size" in errors[4]


def test_help_explains_every_subcommand():
    for command in ("train", "translate", "evaluate", "sweep", "average", "demo"):
        text = run_nmt(command, "--help").stdout
        assert "usage: nmt " + command in text
        assert "--" in text


@pytest.mark.slow
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


@pytest.mark.slow
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


# Conventions: exit statuses, global flags, output formats. These use an untrained run
# directory (conftest.make_run_dir) or a stand-in for train(), so they take seconds.


def test_user_errors_exit_1_and_usage_errors_exit_2(tmp_path, capsys):
    from nmt.cli import main

    assert main(["translate", "--run-dir", str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().err == f"nmt: error: {tmp_path / 'missing'}: no such run directory\n"
    with pytest.raises(SystemExit) as usage:
        main(["translate", "--run-dir", str(tmp_path), "--no-such-flag"])
    assert usage.value.code == 2


def test_global_flags_work_after_the_subcommand_too(tmp_path, monkeypatch):
    from nmt.cli import build_parser, main
    from nmt.errors import NmtError

    monkeypatch.delenv("NMT_QUIET", raising=False)
    with pytest.raises(NmtError, match="no such run directory"):  # --debug: the traceback
        main(["translate", "--run-dir", str(tmp_path / "missing"), "--debug"])
    parser = build_parser()
    for argv in (
        ["--quiet", "--threads", "3", "translate", "--run-dir", "r"],
        ["translate", "--run-dir", "r", "--quiet", "--threads", "3"],
    ):
        args = parser.parse_args(argv)
        assert (args.quiet, args.threads, args.debug) == (True, 3, False)
    assert parser.parse_args(["--debug", "translate", "--run-dir", "r"]).debug


def test_evaluate_refuses_n_best(tmp_path, capsys):
    from nmt.cli import main

    with pytest.raises(SystemExit) as usage:
        main(["evaluate", "--hyp", "h", "--ref", "r", "--n-best", "2"])
    assert usage.value.code == 2
    assert "unrecognized arguments: --n-best 2" in capsys.readouterr().err


def test_evaluate_of_a_translated_file_refuses_search_flags(tmp_path, capsys):
    """--hyp is already translated: a --beam-size there would change nothing the user sees."""
    from nmt.cli import main

    hyp = tmp_path / "h.txt"
    hyp.write_text("Ein Mann fährt Fahrrad.\n")
    argv = ["evaluate", "--hyp", str(hyp), "--ref", str(hyp), "--lang", "de"]
    assert main(argv + ["--beam-size", "10", "--compute-dtype", "float32"]) == 1
    err = capsys.readouterr().err
    assert "--beam-size, --compute-dtype only apply with --run-dir" in err
    assert str(hyp) in err
    assert main(argv) == 0


def test_version_names_the_package_version(capsys):
    import nmt
    from nmt.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"nmt {nmt.__version__}\n"


class _StoppedBySignal(NamedTuple):
    steps: int
    epochs: int
    best_bleu: float
    stopped_because: str
    signal: int


@pytest.mark.parametrize("number, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_train_stopped_by_a_signal_exits_128_plus_its_number(
    tmp_path, monkeypatch, capsys, number, status
):
    from nmt.cli import main
    from nmt.training import trainer

    monkeypatch.setattr(
        trainer,
        "train",
        lambda config, run_dir, **kw: _StoppedBySignal(40, 1, -1.0, "signal", number),
    )
    assert main(["train", "--config", _toy_config(tmp_path), "--run-dir", str(tmp_path)]) == status
    assert "training interrupted at step 40; a checkpoint was saved" in capsys.readouterr().err


def test_quiet_train_drops_progress_lines_but_keeps_warnings(tmp_path, monkeypatch, capsys):
    from nmt.cli import main
    from nmt.training import trainer

    def fake_train(config, run_dir, log=print, init_from=None):
        log("step     100 | epoch 1 | loss 2.000")
        log("nmt: warning: best.json is unreadable; ignoring it")
        return trainer.TrainResult(100, 1, 12.5, "max_steps")

    monkeypatch.setattr(trainer, "train", fake_train)
    monkeypatch.delenv("NMT_QUIET", raising=False)
    argv = ["train", "--config", _toy_config(tmp_path), "--run-dir", str(tmp_path)]
    assert main(argv) == 0
    loud = capsys.readouterr()
    assert "step     100" in loud.out and "nmt: warning" in loud.out
    assert main(["--quiet", *argv]) == 0
    quiet = capsys.readouterr()
    assert quiet.out == "best validation BLEU 12.50\n"
    assert quiet.err == "nmt: warning: best.json is unreadable; ignoring it\n"


def _toy_config(tmp_path) -> str:
    path = tmp_path / "toy.yaml"
    path.write_text("model:\n  hidden_size: 8\n")
    return str(path)


THREAD_PROBE = """
import os, sys
from nmt.cli import main
status = main(sys.argv[1:])
import tensorflow as tf
tf.linalg.matmul(tf.ones((64, 64)), tf.ones((64, 64)))  # the first op creates the pools
print(status, tf.config.threading.get_intra_op_parallelism_threads(),
      len(os.listdir("/proc/self/task")))
"""


def test_threads_sizes_tensorflows_thread_pools(tmp_path):
    # The pools are sized before the command runs: a missing run directory fails after it.
    argv = ["--threads", "8", "translate", "--run-dir", str(tmp_path / "missing")]
    result = subprocess.run(
        [sys.executable, "-c", THREAD_PROBE, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    status, intra, threads = map(int, result.stdout.splitlines()[-1].split())
    assert (status, intra) == (1, 8)
    # Two pools of 8 OS threads (by default about one per core each, 7 threads in all on 2 cores).
    assert threads >= 16, threads


def test_scoring_a_translated_file_does_not_start_tensorflow(tmp_path):
    """`nmt evaluate --hyp` is sacreBLEU alone: seconds of TensorFlow start-up saved per file."""
    hyp = tmp_path / "h.txt"
    hyp.write_text("Ein Mann fährt Fahrrad.\n")
    probe = (
        "import sys\nfrom nmt.cli import main\n"
        "print(main(sys.argv[1:]), 'tensorflow' in sys.modules)"
    )
    argv = ["evaluate", "--hyp", str(hyp), "--ref", str(hyp), "--lang", "de", "--json"]
    result = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    *report, status = result.stdout.splitlines()
    assert json.loads("\n".join(report))["bleu"]["score"] == 100.0
    assert status == "0 False"


ONEDNN_PROBE = """
import nmt, tensorflow
from tensorflow.python.util import _pywrap_util_port
print(_pywrap_util_port.IsMklEnabled())
"""


@pytest.mark.parametrize("setting, enabled", [(None, "True"), ("0", "False")])
def test_nmt_runs_tensorflows_onednn_kernels_unless_the_user_says_no(setting, enabled):
    """TensorFlow picks oneDNN by itself only on AVX512_VNNI/BF16/AMX CPUs; nmt asks for it
    everywhere (faster float32 training on AVX2-only CPUs), and `TF_ENABLE_ONEDNN_OPTS=0` wins."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    result = subprocess.run(
        [sys.executable, "-c", ONEDNN_PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env=env,
    )
    assert result.stdout.splitlines()[-1] == enabled


def test_translate_sizes_the_pools_for_its_searches_in_a_new_process(toy_data, tmp_path):
    """`nmt translate` with the run's decoding.concurrent_batches (2): one share of the cores
    per search as intra-op threads, and the same translations as with --threads."""
    import os

    run = make_run_dir(tmp_path, toy_data)
    source = tmp_path / "in.txt"
    source.write_text("eight\nnine hundred\n\nforty two\n")
    outputs = []
    for threads in ([], ["--threads", "2"]):
        output = tmp_path / f"out{len(threads)}.txt"
        argv = ["translate", "--run-dir", str(run.run_dir), "--input", str(source)]
        result = subprocess.run(
            [sys.executable, "-c", THREAD_PROBE, *threads, *argv, "--output", str(output)],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        status, intra, _ = map(int, result.stdout.splitlines()[-1].split())
        expected = 2 if threads else max(1, len(os.sched_getaffinity(0)) // 2)
        assert (status, intra) == (0, expected)
        outputs.append(output.read_text())
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 4


def test_searches_side_by_side_get_a_share_of_the_cores_each(tmp_path):
    """Without --threads, `nmt translate`/`evaluate` size the pools for their concurrent searches:
    the flag first, else the run's decoding.concurrent_batches; other commands keep TF's."""
    import argparse
    import os

    from nmt.cli import _thread_pools
    from nmt.config import Config, DecodingConfig, save_config

    cores = len(os.sched_getaffinity(0))
    run_dir = tmp_path / "run"
    save_config(Config(decoding=DecodingConfig(concurrent_batches=3)), run_dir / "config.yaml")

    def pools(**args):
        return _thread_pools(argparse.Namespace(**{"threads": None, **args}))

    assert pools(concurrent_batches=2, run_dir=str(run_dir)) == (max(1, cores // 2), max(cores, 2))
    assert pools(concurrent_batches=None, run_dir=str(run_dir)) == (
        max(1, cores // 3),
        max(cores, 3),
    )
    assert pools(concurrent_batches=1, run_dir=str(run_dir)) is None
    assert pools(threads=5, concurrent_batches=2, run_dir=str(run_dir)) == (5, 5)
    assert pools(threads=1, concurrent_batches=2, run_dir=str(run_dir)) == (1, 2)
    assert pools(concurrent_batches=None, run_dir=str(tmp_path / "missing")) is None
    assert pools(config="train.yaml") is None  # `nmt train`: TensorFlow's choice


def test_moses_nbest_format(toy_data, tmp_path):
    from nmt.cli import main

    run = make_run_dir(tmp_path, toy_data)
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("eight\nnine\n")
    argv = [
        "translate",
        "--run-dir",
        str(run.run_dir),
        "--input",
        str(source),
        "--output",
        str(output),
        "--beam-size",
        "3",
        "--max-length-ratio",
        "1",
        "--n-best-format",
        "moses",
    ]
    assert main([*argv, "--n-best", "2"]) == 0
    rows = [line.split(" ||| ") for line in output.read_text().splitlines()]
    assert [row[0] for row in rows] == ["0", "0", "1", "1"]
    for row in rows:
        assert len(row) == 4 and row[2] == f"F0= {row[3]}", row
        float(row[3])
    assert main(argv) == 0  # --n-best 1 is an n-best list too in Moses' format
    assert [line.split(" ||| ")[0] for line in output.read_text().splitlines()] == ["0", "1"]


def test_evaluate_takes_the_language_from_the_run_and_says_so(toy_data, tmp_path, capsys):
    from nmt.cli import main

    run = make_run_dir(tmp_path, toy_data)
    source, ref = tmp_path / "src.txt", tmp_path / "ref.txt"
    source.write_text("seven\neight\n")
    ref.write_text("sieben\nacht\n")
    common = [
        "--source",
        str(source),
        "--ref",
        str(ref),
        "--beam-size",
        "1",
        "--max-length-ratio",
        "1",
    ]
    assert main(["evaluate", "--run-dir", str(run.run_dir), *common]) == 0
    out = capsys.readouterr().out
    assert "|lc+moses-tok:de" in out
    assert "Moses tokenization for lc-tok: de (from the run's training targets, train.de)" in out
    assert main(["evaluate", "--run-dir", str(run.run_dir), *common, "--lang", "fr"]) == 0
    assert "Moses tokenization for lc-tok: fr (--lang)" in capsys.readouterr().out


def test_evaluate_without_a_language_leaves_out_the_tokenized_bleu(tmp_path, capsys):
    from nmt.cli import main

    hyp = tmp_path / "h.txt"
    hyp.write_text("Ein Mann fährt Fahrrad.\n")
    assert main(["evaluate", "--hyp", str(hyp), "--ref", str(hyp), "--json"]) == 0
    printed = capsys.readouterr()
    assert set(json.loads(printed.out)) == {"bleu", "chrf", "ter"}
    assert (
        printed.err == "nmt: no lowercased Moses-tokenized BLEU: give --lang, the target language\n"
    )


def test_language_suffix_of_a_file_name():
    from nmt.cli import _language_suffix

    assert _language_suffix("data/train.de.gz") == "de"
    assert _language_suffix("/x/train.fr") == "fr"
    assert _language_suffix("corpus/train.tgt") is None
    assert _language_suffix("train") is None


def test_evaluate_text_output_with_a_baseline_and_no_language(tmp_path, capsys):
    from nmt.cli import main

    hyp, base = tmp_path / "h.txt", tmp_path / "b.txt"
    hyp.write_text("ein Mann fährt ein rotes Fahrrad auf der Straße\n" * 4)
    base.write_text("ein Mann fährt Fahrrad\n" * 4)
    assert main(["evaluate", "--hyp", str(hyp), "--ref", str(hyp), "--baseline", str(base)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["BLEU", "chrF", "TER", "paired"]
