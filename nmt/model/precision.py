"""Which precision a model computes in: `compute_dtype: auto` picks bfloat16 only where it is fast.

bfloat16 halves the bytes every matmul moves and has native kernels on CPUs with AVX512_BF16
or AMX and on NVIDIA GPUs from Ampere (compute capability 8.0) on. Elsewhere TensorFlow
emulates it: on an AVX2-only CPU ref-small trained 1.46x slower in bfloat16 than in float32
(BENCHMARKS.md, sitting N), and a recipe that hard-codes bfloat16 pays that on most laptops.
The weights are float32 either way, so a run may switch precision between machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import tensorflow as tf

CPU_INFO = Path("/proc/cpuinfo")
# the x86 flags of native bfloat16 matmuls (Linux names); oneDNN uses either
_CPU_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
_GPU_BFLOAT16_CAPABILITY = (8, 0)


class Precision(NamedTuple):
    """The resolved arithmetic type and, for the log, why it was chosen."""

    dtype: str  # "float32" or "bfloat16"
    reason: str  # "" when the config named the dtype itself


def resolve_compute_dtype(requested: str) -> Precision:
    """Turns `model.compute_dtype` into the dtype to compute in on this machine.

    Args:
        requested: "float32", "bfloat16", or "auto" (bfloat16 where `bfloat16_hardware` finds
            native support, float32 elsewhere).

    Returns:
        The dtype, with the hardware that decided it when `requested` was "auto".
    """
    if requested != "auto":
        return Precision(requested, "")
    hardware = bfloat16_hardware()
    if hardware:
        return Precision("bfloat16", f"auto: {hardware} computes bfloat16 natively")
    return Precision(
        "float32",
        "auto: no native bfloat16 here (no AVX512_BF16 or AMX CPU flag, no GPU of compute"
        " capability 8.0 or newer)",
    )


def bfloat16_hardware() -> str | None:
    """The device that would run this process's matmuls in native bfloat16, or None.

    TensorFlow places the model on the first GPU when there is one, so a GPU decides alone;
    without one, the CPU flags in /proc/cpuinfo do (absent on macOS and Windows: None).
    """
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
        if capability and tuple(capability) >= _GPU_BFLOAT16_CAPABILITY:
            return f"the GPU (compute capability {capability[0]}.{capability[1]})"
        return None
    flags = cpu_flags()
    for flag in _CPU_BFLOAT16_FLAGS:
        if flag in flags:
            return f"the CPU ({flag})"
    return None


def cpu_flags() -> frozenset[str]:
    """The feature flags of the first processor in /proc/cpuinfo (`CPU_INFO`)."""
    try:
        text = CPU_INFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return frozenset(value.split())
    return frozenset()
