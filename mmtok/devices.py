"""Where tokenize's compute-heavy steps run: ``--device cpu`` (the default), ``cuda``,
``cuda:N`` or ``auto``.

Readers always decode on CPU workers. With a CUDA device, tokenizers that have a batched
path (:meth:`mmtok.modalities.base.Tokenizer.tokenize_batch`: points' FPS + KNN grouping,
the image family's patchify) get a shard's decoded samples at once and run those steps on
the GPU through the Triton kernels; the arrays they return are byte-identical to the CPU
path's, and the store records no device (a store's bytes never depend on where it was cut).

Kernel developers without a GPU can run the same batched path on the CPU through Triton's
interpreter: with ``TRITON_INTERPRET=1`` in the environment, ``--device cuda`` on a machine
without CUDA runs the Triton kernels on CPU tensors (slow; for small tests only).

``cpu`` imports nothing; ``auto`` and ``cuda`` import torch to look for CUDA.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError
from .kernels._triton import interpreter_enabled

__all__ = ["ComputeDevice", "CPU", "resolve_tokenize_device"]

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"


@dataclass(frozen=True)
class ComputeDevice:
    """Where a batched tokenizer step puts its tensors (``torch``: "cpu", "cuda", "cuda:1")
    and which kernel implementation it asks for (``kernels``: "auto" picks Triton for CUDA
    tensors; "triton" forces it, for CPU tensors under the interpreter)."""

    torch: str = "cpu"
    kernels: str = "auto"

    @property
    def batched(self) -> bool:
        """True when tokenizers should take their batched (tensor) path."""
        return self.torch != "cpu" or self.kernels == "triton"


CPU = ComputeDevice()


def resolve_tokenize_device(name: str) -> ComputeDevice:
    """``--device`` as given -> the device tokenize runs on; a clear usage error for a
    device this machine does not have."""
    name = str(name).strip().lower()
    if name == "cpu":
        return CPU
    if name != "auto" and not re.fullmatch(r"cuda(:\d+)?", name):
        raise UsageError(f"--device must be one of {DEVICE_CHOICES}, not {name!r}")
    import torch

    if torch.cuda.is_available():
        if name == "auto":
            return ComputeDevice("cuda")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                             "CUDA device(s), numbered from 0")
        return ComputeDevice(name)
    if name == "auto":
        return CPU
    if interpreter_enabled():  # the batched path on CPU tensors, kernels interpreted
        return ComputeDevice("cpu", "triton")
    raise UsageError(f"--device {name} asked for, but torch sees no CUDA device here; use "
                     "--device cpu (or auto, which picks CUDA only when there is one)")
