"""Telling torch tensors from numpy arrays without importing torch.

The kernels accept both; CPU-only callers that never imported torch must not pay for it.
"""

from __future__ import annotations

import sys
from typing import Any


def torch_module():
    """The torch module if it has been imported, else None (never imports it)."""
    return sys.modules.get("torch")


def is_torch(x: Any) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(x, torch.Tensor)
