"""`model.compute_dtype: auto`: bfloat16 only on hardware that computes it natively, decided
afresh on every machine that trains or decodes the run (the recipes use it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf

from nmt.config import load_config
from nmt.decoding.translator import Translator
from nmt.model import precision
from nmt.model.precision import cpu_flags, resolve_compute_dtype

RECIPES = Path(__file__).parent.parent / "recipes" / "multi30k"
# the flags lines of the three VMs the project has run on (abridged)
AVX2_ONLY = "fpu sse sse2 avx avx2 fma bmi2"
AVX512_BF16 = "fpu sse2 avx2 avx512f avx512_vnni avx512_bf16"
AMX = "fpu sse2 avx2 avx512f amx_bf16 amx_tile amx_int8"


def without_gpus(monkeypatch) -> None:
    """TensorFlow lists no GPU (a GPU would decide `auto` before the CPU flags do)."""
    devices = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: [] if kind == "GPU" else devices(kind)
    )


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """Sets the CPU flags `precision` reads, on a machine without a GPU."""
    without_gpus(monkeypatch)

    def with_flags(flags: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
        monkeypatch.setattr(precision, "CPU_INFO", path)

    return with_flags


@pytest.mark.parametrize(
    "flags, expected", [(AVX2_ONLY, "float32"), (AVX512_BF16, "bfloat16"), (AMX, "bfloat16")]
)
def test_auto_computes_in_bfloat16_only_where_the_cpu_has_it(machine, flags, expected):
    machine(flags)
    chosen = resolve_compute_dtype("auto")
    assert chosen.dtype == expected
    assert chosen.reason.startswith("auto: ")
    # a dtype the config names is kept whatever the machine
    assert resolve_compute_dtype("bfloat16") == ("bfloat16", "")
    assert resolve_compute_dtype("float32") == ("float32", "")


def test_a_machine_without_proc_cpuinfo_computes_in_float32(monkeypatch, tmp_path):
    without_gpus(monkeypatch)
    monkeypatch.setattr(precision, "CPU_INFO", tmp_path / "absent")
    assert cpu_flags() == frozenset()
    assert resolve_compute_dtype("auto").dtype == "float32"


def test_the_recipes_pick_the_precision_of_the_machine(machine):
    for recipe in sorted(RECIPES.glob("*.yaml")):
        assert load_config(recipe).model.compute_dtype == "auto", recipe.name


def test_a_run_decodes_in_the_precision_of_the_machine_that_loads_it(machine, trained_run):
    machine(AMX)
    assert Translator.load(trained_run, compute_dtype="auto").model.compute_dtype == "bfloat16"
    machine(AVX2_ONLY)
    assert Translator.load(trained_run, compute_dtype="auto").model.compute_dtype == "float32"
