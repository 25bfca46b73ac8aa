"""`nmt export`: what a consumer without `nmt` gets is what `nmt translate` gives.

The SavedModel is loaded in a fresh process that never imports `nmt`; the LiteRT runner runs
in one that never imports TensorFlow. Exports of the toy run are made once per module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import run_nmt

from nmt.export.staging import staged_directory

EXTRA_LINES = ["", "   ", "one " * 60, "forty two 😀 Ωμέγα"]  # empty, blank, truncated, unseen

CONSUMER = textwrap.dedent(
    """\
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # registers the SentencePiece ops the graph uses

    model = tf.saved_model.load(sys.argv[1])
    lines = json.loads(open(sys.argv[2], encoding="utf-8").read())
    out = model.signatures["serving_default"](text=tf.constant(lines, tf.string))
    assert "nmt" not in sys.modules, "the SavedModel consumer imported nmt"
    serve = model.signatures["serving_default"]
    all_empty = serve(text=tf.constant(["", "  "]))["translations"].numpy().tolist()
    none = serve(text=tf.constant([], tf.string))["translations"].shape.as_list()
    print(json.dumps({
        "translations": [t.decode("utf-8") for t in out["translations"].numpy()],
        "scores": [float(s) for s in out["scores"].numpy()],
        "all_empty": [t.decode("utf-8") for t in all_empty],
        "none": none,
    }))
    """
)


@pytest.fixture(scope="module")
def lines(toy_data) -> list[str]:
    return toy_data["test.en"].read_text(encoding="utf-8").splitlines() + EXTRA_LINES


@pytest.fixture(scope="module")
def lines_file(lines, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("input") / "lines.txt"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def exports(trained_run, tmp_path_factory):
    """Exports made on first use and kept for the module: name -> folder."""
    root = tmp_path_factory.mktemp("exports")
    made: dict[str, Path] = {}
    flags = {
        "greedy": ["--beam-size", "1"],
        "beam5": ["--beam-size", "5"],
        "litert": ["--format", "litert"],
        "litert_int8": ["--format", "litert", "--quantize", "int8"],
    }

    def get(name: str) -> Path:
        if name not in made:
            out = root / name
            run_nmt("export", "--run-dir", str(trained_run), "--output", str(out), *flags[name])
            made[name] = out
        return made[name]

    return get


def _translate(run_dir: Path, lines_file: Path, beam: int) -> list[str]:
    args = ("--run-dir", str(run_dir), "--input", str(lines_file), "--beam-size", str(beam))
    return run_nmt("translate", *args).stdout.split("\n")[:-1]


def _consume_saved_model(directory: Path, lines: list[str], tmp_path: Path) -> dict:
    script, data = tmp_path / "consumer.py", tmp_path / "lines.json"
    script.write_text(CONSUMER)
    data.write_text(json.dumps(lines), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script), str(directory), str(data)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _run_litert(directory: Path, lines_file: Path) -> tuple[list[str], str]:
    """The copied runner, run as a device would: outputs and its `-X importtime` log."""
    with open(lines_file, "rb") as stdin:
        result = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                str(directory / "litert_runner.py"),
                str(directory),
            ],
            stdin=stdin,
            capture_output=True,
            timeout=600,
        )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return result.stdout.decode("utf-8").split("\n")[:-1], result.stderr.decode()


@pytest.mark.slow
@pytest.mark.parametrize("name,beam", [("greedy", 1), ("beam5", 5)])
def test_saved_model_without_nmt_translates_as_nmt_translate(
    name, beam, exports, trained_run, lines, lines_file, tmp_path
):
    expected = _translate(trained_run, lines_file, beam)
    got = _consume_saved_model(exports(name), lines, tmp_path)
    assert got["translations"] == expected
    assert got["translations"][-4:-2] == ["", ""]  # empty and blank in, empty out
    assert got["scores"][-4:-2] == [0.0, 0.0]
    assert got["all_empty"] == ["", ""] and got["none"] == [0]  # no sentence to search
    assert all(s < 0 for s in got["scores"][:10])  # log-probability based search scores


@pytest.mark.slow
def test_saved_model_cli_shows_the_serving_signature(exports):
    cli = Path(sys.executable).parent / "saved_model_cli"
    shown = subprocess.run(
        [str(cli), "show", "--all", "--dir", str(exports("greedy"))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    signature = shown.stdout.split("signature_def['serving_default']:")[1]
    inputs, outputs = signature.split(
        "The given SavedModel SignatureDef contains the following output"
    )
    assert "inputs['text']" in inputs and "dtype: DT_STRING" in inputs and "shape: (-1)" in inputs
    for name, dtype in (("translations", "DT_STRING"), ("scores", "DT_FLOAT")):
        block = outputs.split(f"outputs['{name}']")[1].split("outputs[")[0]
        assert f"dtype: {dtype}" in block and "shape: (-1)" in block


@pytest.mark.slow
def test_litert_float_matches_saved_model_greedy_without_tensorflow(
    exports, lines, lines_file, tmp_path
):
    reference = _consume_saved_model(exports("greedy"), lines, tmp_path)["translations"]
    outputs, imports = _run_litert(exports("litert"), lines_file)
    assert outputs == reference
    imported = {line.split("|")[-1].strip().split(".")[0] for line in imports.splitlines()}
    assert "ai_edge_litert" in imported and "sentencepiece" in imported
    assert "tensorflow" not in imported and "nmt" not in imported


@pytest.mark.slow
def test_litert_int8_is_smaller_and_mostly_agrees_with_float(exports, lines_file):
    floats, _ = _run_litert(exports("litert"), lines_file)
    ints, _ = _run_litert(exports("litert_int8"), lines_file)
    size = (exports("litert_int8") / "model.tflite").stat().st_size
    assert size < 0.5 * (exports("litert") / "model.tflite").stat().st_size
    agreement = sum(a == b for a, b in zip(floats, ints)) / len(floats)
    print(f"int8 vs float LiteRT: {agreement:.1%} of {len(floats)} lines identical")
    assert len(ints) == len(floats)
    assert agreement >= 0.9  # measured 98% on the toy run


def test_runner_module_imports_no_tensorflow():
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nmt.export.litert_runner", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "usage:" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert "ai_edge_litert.interpreter" in imported
    assert not any(name.split(".")[0] in ("tensorflow", "keras") for name in imported)


def test_a_failed_export_leaves_the_old_one_untouched(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "saved_model.pb").write_text("old")
    with pytest.raises(RuntimeError), staged_directory(target) as tmp:
        (tmp / "saved_model.pb").write_text("half")
        raise RuntimeError("converter failed")
    assert (target / "saved_model.pb").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no temporary folder left
    with staged_directory(target) as tmp:
        (tmp / "saved_model.pb").write_text("new")
    assert (target / "saved_model.pb").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o700)  # readable by a server's user


def test_a_killed_export_never_leaves_half_an_export(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "saved_model.pb").write_text("old")
    script = textwrap.dedent(
        f"""\
        import os, signal
        from nmt.export.staging import staged_directory
        with staged_directory({str(target)!r}) as tmp:
            (tmp / "saved_model.pb").write_text("half")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], timeout=120)
    assert result.returncode == -signal.SIGKILL
    assert (target / "saved_model.pb").read_text() == "old"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "export"]
    assert all(name.startswith(".export.") and name.endswith(".tmp") for name in leftovers)


@pytest.mark.slow
def test_nmt_export_killed_midway_keeps_the_previous_export(trained_run, tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "marker").write_text("previous export")
    process = subprocess.Popen(
        [sys.executable, "-m", "nmt", "export", "--run-dir", str(trained_run)]
        + ["--output", str(target), "--beam-size", "1"],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob(".model.*.tmp/*")) and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until the export is being written
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (target / "marker").read_text() == "previous export"
    assert not (target / "saved_model.pb").exists()


@pytest.mark.slow
def test_export_rejects_what_it_cannot_do(trained_run, tmp_path):
    out = tmp_path / "out"
    cases = [
        (["--quantize", "int8"], "--quantize int8 applies to --format litert only"),
        (["--format", "litert", "--beam-size", "5"], "--format litert decodes greedily"),
        (["--beam-size", "0"], "decoding.beam_size must be >= 1"),
    ]
    for flags, message in cases:
        args = ("export", "--run-dir", str(trained_run), "--output", str(out), *flags)
        result = run_nmt(*args, check=False)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not out.exists() and os.listdir(tmp_path) == []
