"""The points tokenizer's batched device path (``tokenize --device cuda``): a batch of
thinned clouds from the CPU workers is brought to ``num_points`` points (FPS over the padded
batch with per-cloud ``lengths``), grouped (FPS centres + KNN) and gathered on the device
by the Triton kernels. The kernels are exact, so every array equals the per-cloud CPU
path's (:meth:`PointsTokenizer.group`) byte for byte.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ...devices import ComputeDevice
from ...kernels.fps import farthest_point_sample
from ...kernels.knn import knn_group
from .cloud import Cloud

if TYPE_CHECKING:
    from .tokenizer import PointsTokenizer


def group_batch(tokenizer: "PointsTokenizer", clouds: Sequence[Cloud], counts: Sequence[int],
                device: ComputeDevice) -> list[dict[str, np.ndarray]]:
    """The arrays of each thinned cloud (``counts``: each one's input points)."""
    c = tokenizer.config
    target = torch.device(device.torch)
    clouds = reduce_batch(tokenizer, clouds, device)
    xyz = torch.from_numpy(np.stack([cloud.xyz for cloud in clouds])).to(target)
    # every cloud was checked finite on the CPU worker (check_cloud): no device sync here
    centres = farthest_point_sample(xyz, c.num_groups, impl=device.kernels, check_finite=False)
    index, offsets = knn_group(xyz, centres, c.group_size, impl=device.kernels,
                               check_finite=False)
    rows = torch.arange(len(clouds), device=target)
    parts = [offsets]
    for name in c.channels:
        values = torch.from_numpy(np.stack([getattr(cloud, name) for cloud in clouds]))
        parts.append(values.to(target)[rows[:, None, None], index])
    index_dtype = torch.int16 if tokenizer.index_dtype == "int16" else torch.int32
    tokens = torch.cat(parts, dim=-1).to(torch.float16).cpu().numpy()
    centers = xyz[rows[:, None], centres].cpu().numpy()
    group_index = index.to(index_dtype).cpu().numpy()
    return [{
        "tokens": tokens[b],
        "centers": centers[b],
        "group_index": group_index[b],
        "length": np.int32(c.num_groups),
        "num_input_points": np.int64(count),
    } for b, count in enumerate(counts)]


def reduce_batch(tokenizer: "PointsTokenizer", clouds: Sequence[Cloud],
                 device: ComputeDevice) -> list[Cloud]:
    """Every cloud at exactly num_points points: the ones FPS reduces in one padded batch
    on the device (uneven sizes through ``lengths``), the others on the CPU."""
    reduce = [i for i, cloud in enumerate(clouds) if tokenizer.needs_fps_reduction(cloud)]
    out = [cloud if i in reduce else tokenizer.fit_count(cloud) for i, cloud in enumerate(clouds)]
    if not reduce:
        return out
    lengths = [len(clouds[i]) for i in reduce]
    padded = np.zeros((len(reduce), max(lengths), 3), dtype=np.float32)
    for row, i in enumerate(reduce):
        padded[row, :lengths[row]] = clouds[i].xyz
    uneven = torch.tensor(lengths) if len(set(lengths)) > 1 else None
    index = farthest_point_sample(torch.from_numpy(padded).to(device.torch),
                                  tokenizer.config.num_points, lengths=uneven,
                                  impl=device.kernels, check_finite=False)
    index = index.cpu().numpy()
    for row, i in enumerate(reduce):
        out[i] = clouds[i].take(index[row])
    return out
