"""Triton kernels and their CPU counterparts; imported as `mmtok.kernels`."""

from ._triton import interpreter_enabled, next_power_of_2, triton_available
from .patchify import patch_grid, patchify, patchify_reference

__all__ = [
    "patchify",
    "patchify_reference",
    "patch_grid",
    "triton_available",
    "interpreter_enabled",
    "next_power_of_2",
]
