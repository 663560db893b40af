"""Triton kernels and their CPU counterparts; imported as ``mmtok.kernels``.

One file per op (``patchify.py``, ...), each holding the private Triton kernel, its launcher,
a fast CPU path, a naive reference with the same signature, and a public function that picks
the implementation by the input's device. Import from the op's module::

    from mmtok.kernels.patchify import patchify, patchify_reference, patch_grid

(Nothing is re-exported here, so ``mmtok.kernels.patchify`` is always the module.)
"""
