"""The in-memory point cloud every reader returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Cloud:
    xyz: np.ndarray  # (n, 3) float32
    normals: np.ndarray | None = None  # (n, 3) float32
    colors: np.ndarray | None = None  # (n, 3) float32 in [0, 1]

    def take(self, index: np.ndarray) -> "Cloud":
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return Cloud(self.xyz[index], pick(self.normals), pick(self.colors))

    def __len__(self) -> int:
        return len(self.xyz)


def open3d_quiet():
    import open3d

    # Open3D reports unreadable files as printed warnings (on stdout, which would corrupt
    # `--json` output); we detect failures ourselves.
    open3d.utility.set_verbosity_level(open3d.utility.VerbosityLevel.Error)
    return open3d
