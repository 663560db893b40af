"""Output paths that would destroy a command's own input are refused before anything runs.

A store is replaced by deleting its folder (``--overwrite``, or a new store built beside it
and renamed into place), so an output that *is* an input, or holds one, would delete the
input before the command has read it. Paths are compared after resolving symlinks, ``..``
and ``./`` spellings, so ``./a.zarr``, ``a.zarr/`` and a symlink to ``a.zarr`` all count.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from ..errors import UsageError

PathLike = str | os.PathLike


def _resolved(path: PathLike) -> Path:
    # realpath also resolves the parents of a path that does not exist yet
    return Path(os.path.realpath(os.fspath(path)))


def check_output_is_not_input(command: str, output: PathLike,
                              inputs: Mapping[str, PathLike | None]) -> None:
    """Raise :class:`UsageError` when ``output`` is one of ``inputs`` (by role, e.g.
    ``{"token store": ...}``) or a folder that contains one. Touches nothing."""
    out = _resolved(output)
    for role, path in inputs.items():
        if path is None:
            continue
        source = _resolved(path)
        if source == out:
            raise UsageError(
                f"{command}: the output {os.fspath(output)} is the {role} it reads "
                f"({os.fspath(path)}); writing it would destroy the input. Choose another "
                "output path (-o)")
        if out in source.parents:
            raise UsageError(
                f"{command}: the output {os.fspath(output)} contains the {role} it reads "
                f"({os.fspath(path)}); replacing it would delete the input. Choose another "
                "output path (-o)")
