"""The points tokenizer's batched device path (``tokenize --device cuda``): thinned clouds
from the CPU workers are brought to ``num_points`` points (FPS over the padded batch with
per-cloud ``lengths``), grouped (FPS centres + KNN) and gathered on the device by the Triton
kernels. The kernels are exact, so every array equals the per-cloud CPU path's
(``PointsTokenizer.group``) byte for byte.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...devices import ComputeDevice
from ...kernels.fps import farthest_point_sample
from ...kernels.knn import knn_group
from .cloud import Cloud


def fps_reduce_batch(clouds: Sequence[Cloud], num_points: int, device: ComputeDevice
                     ) -> list[Cloud]:
    """Each cloud's ``num_points`` farthest points, in one padded batch (uneven sizes
    through ``lengths``)."""
    if not clouds:
        return []
    lengths = [len(cloud) for cloud in clouds]
    padded = np.zeros((len(clouds), max(lengths), 3), dtype=np.float32)
    for row, cloud in enumerate(clouds):
        padded[row, :lengths[row]] = cloud.xyz
    uneven = torch.tensor(lengths) if len(set(lengths)) > 1 else None
    index = farthest_point_sample(torch.from_numpy(padded).to(device.torch), num_points,
                                  lengths=uneven, impl=device.kernels, check_finite=False)
    index = index.cpu().numpy()
    return [cloud.take(index[row]) for row, cloud in enumerate(clouds)]


def group_batch(clouds: Sequence[Cloud], counts: Sequence[int], *, num_groups: int,
                group_size: int, channels: Sequence[str], index_dtype: str,
                device: ComputeDevice) -> list[dict[str, np.ndarray]]:
    """The arrays of clouds of equal size (``counts``: each one's input points)."""
    target = torch.device(device.torch)
    xyz = torch.from_numpy(np.stack([cloud.xyz for cloud in clouds])).to(target)
    # every cloud was checked finite on the CPU worker (check_cloud): no device sync here
    centres = farthest_point_sample(xyz, num_groups, impl=device.kernels, check_finite=False)
    index, offsets = knn_group(xyz, centres, group_size, impl=device.kernels,
                               check_finite=False)
    rows = torch.arange(len(clouds), device=target)
    parts = [offsets]
    for name in channels:
        values = torch.from_numpy(np.stack([getattr(cloud, name) for cloud in clouds]))
        parts.append(values.to(target)[rows[:, None, None], index])
    tokens = torch.cat(parts, dim=-1).to(torch.float16).cpu().numpy()
    centers = xyz[rows[:, None], centres].cpu().numpy()
    group_index = index.to(getattr(torch, index_dtype)).cpu().numpy()
    return [{
        "tokens": tokens[b],
        "centers": centers[b],
        "group_index": group_index[b],
        "length": np.int32(num_groups),
        "num_input_points": np.int64(count),
    } for b, count in enumerate(counts)]
