"""Timing backends: the library that builds an operator's tensors and times it.

A :class:`Backend` turns a planned shape into operators (argument-less callables
over tensors it allocated) and times a callable: ``warmup`` untimed calls, then
``repeats`` timed ones. Two backends exist:

- ``torch`` (:mod:`frontier_profiling.torch_backend`): on a CUDA device, timed
  with CUDA events around each call; on the CPU, with the monotonic clock;
- ``numpy`` (:mod:`frontier_profiling.numpy_backend`): the same operator shapes
  as float32 numpy arrays on the CPU, timed with the monotonic clock. It needs no
  torch, so a profile (of the CPU) can be made anywhere.

torch is imported only when the torch backend is opened.
"""

from __future__ import annotations

import abc
import importlib.util
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from frontier.errors import ConfigError

__all__ = [
    "Backend",
    "ShapeTooLarge",
    "available_attention_backends",
    "cpu_description",
    "monotonic_times_ms",
    "open_backend",
    "resolve_backend_name",
    "summarize",
]

Operator = Callable[[], object]

PRECISIONS = {
    "bfloat16": "BF16",
    "bf16": "BF16",
    "float16": "FP16",
    "fp16": "FP16",
    "half": "FP16",
    "float32": "FP32",
    "fp32": "FP32",
}
"""dtype name -> the ``profiling_precision`` label of the profile format."""


class ShapeTooLarge(Exception):
    """The device ran out of memory building or running one shape."""


class Backend(abc.ABC):
    """Builds the operators of planned shapes and times them.

    Attributes:
        name: ``torch`` or ``numpy``; written to every row as
            ``profiling_backend``.
        measurement_type: ``CUDA_EVENT`` or ``MONOTONIC_CLOCK``.
        precision: ``BF16``, ``FP16`` or ``FP32``: the dtype actually measured.
        grouped_gemm: How the MoE experts' GEMMs run (``moe_grouped_gemm_backend``).
    """

    name: str
    measurement_type: str
    precision: str
    grouped_gemm: str

    @abc.abstractmethod
    def linear_ops(self, rank: Any, num_tokens: int) -> dict[str, Operator]:
        """The operators of ``linear_op.csv`` at ``num_tokens`` tokens."""

    @abc.abstractmethod
    def attention_ops(
        self, rank: Any, shape: Any, block_size: int
    ) -> dict[str, Operator]:
        """The operators of ``attention.csv`` for ``shape``."""

    @abc.abstractmethod
    def moe_ops(
        self, rank: Any, expert_ids: np.ndarray, local_experts: int
    ) -> dict[str, Operator]:
        """The operators of ``moe.csv`` for tokens routed to ``expert_ids``.

        Args:
            rank: Per-rank widths.
            expert_ids: Expert of each token's choices, ``(num_tokens, top_k)``.
            local_experts: This rank holds experts ``0 .. local_experts - 1``;
                choices of other experts leave the rank (expert parallelism).
        """

    @abc.abstractmethod
    def time_ms(self, operator: Operator, warmup: int, repeats: int) -> list[float]:
        """Milliseconds of each of ``repeats`` timed calls, after ``warmup``."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Device and library facts for ``metadata.json``."""

    def attention_backends(self) -> tuple[str, ...]:
        """The attention kernels this backend can time."""
        return ("NUMPY",)

    def release(self) -> None:  # noqa: B027 - optional, empty by default
        """Give back memory cached between shapes (nothing to do by default)."""


def monotonic_times_ms(operator: Operator, warmup: int, repeats: int) -> list[float]:
    """Time ``operator`` with the monotonic clock (synchronous work only)."""
    for _ in range(warmup):
        operator()
    times = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        operator()
        times.append((time.perf_counter_ns() - started) / 1e6)
    return times


def summarize(times_ms: list[float]) -> dict[str, float]:
    """min, max, mean, median, population std and count of ``times_ms``."""
    values = np.asarray(times_ms, dtype=float)
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "std": float(values.std()),
        "count": len(values),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def cpu_description() -> dict[str, Any]:
    """The host's processor and memory, for a profile of the CPU."""
    try:
        memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory_bytes = 0
    return {
        "device_name": _cpu_name(),
        "device_memory_gib": round(memory_bytes / 2**30, 2),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def available_attention_backends(backend_name: str) -> tuple[str, ...]:
    """The attention kernels ``backend_name`` would time, without importing them.

    ``numpy`` has its own kernel; ``torch`` always has scaled-dot-product
    attention and adds FlashAttention and FlashInfer when those are installed
    (both need a CUDA device, which is checked when the backend opens).
    """
    if backend_name == "numpy":
        return ("NUMPY",)
    found = ["TORCH_SDPA"]
    if _installed("flash_attn"):
        found.append("FLASH_ATTN")
    if _installed("flashinfer"):
        found.append("FLASHINFER")
    return tuple(found)


def resolve_backend_name(name: str) -> str:
    """``auto`` becomes ``torch`` when torch is installed, else ``numpy``.

    Raises:
        ConfigError: Unknown name, or ``torch`` asked for but not installed.
    """
    if name == "auto":
        return "torch" if _installed("torch") else "numpy"
    if name == "numpy":
        return name
    if name == "torch":
        if not _installed("torch"):
            raise ConfigError(
                "--backend torch: torch is not installed; install it (`uv pip install "
                "torch`, or the build your CUDA needs) or use --backend numpy"
            )
        return name
    raise ConfigError(
        f"--backend: unknown backend {name!r}; choose auto, torch or numpy"
    )


def open_backend(name: str, dtype: str, seed: int, device: str = "auto") -> Backend:
    """Open the timing backend ``name`` (``torch`` or ``numpy``) for ``dtype``.

    Args:
        name: ``torch`` or ``numpy`` (resolve ``auto`` first).
        dtype: The dtype to measure (``bfloat16``, ``float16``, ``float32``).
        seed: Seed of the tensors' random contents.
        device: For torch: ``cuda``, ``cpu`` or ``auto`` (CUDA when present).

    Raises:
        ConfigError: Unknown dtype, or a CUDA device asked for but absent.
    """
    if dtype.lower() not in PRECISIONS:
        raise ConfigError(
            f"--dtype: {dtype!r} cannot be profiled; choose from "
            f"{', '.join(sorted(PRECISIONS))}"
        )
    if name == "numpy":
        from frontier_profiling.numpy_backend import NumpyBackend

        return NumpyBackend(seed)
    from frontier_profiling.torch_backend import TorchBackend

    return TorchBackend(dtype.lower(), seed, device)
