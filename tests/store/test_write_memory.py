"""Peak memory of a shard write: Zarr copies each inner chunk out of the shard before
compressing it, so the writer encodes one chunk at a time (at Zarr's default concurrency
ten chunk copies were alive at once, most of a second shard buffer for 64 MB shards)."""

from __future__ import annotations

import tracemalloc

import numpy as np

import mmtok.store.layout as layout
from mmtok.store.layout import ArraySpec
from mmtok.store.writer import ShardData, ShardWriter, StoreSpec, prepare_store


def test_a_shard_write_holds_a_few_inner_chunks_beyond_the_shard(tmp_path, monkeypatch):
    chunk_bytes = 256 << 10
    monkeypatch.setattr(layout, "TARGET_CHUNK_BYTES", chunk_bytes)  # 32 chunks per shard
    samples, width = 512, 4096  # 16 KiB float32 samples: an 8 MiB shard
    spec = StoreSpec(kind="tokens", modality="test", config={"width": width},
                     arrays={"tokens": ArraySpec((width,), "float32")}, static_arrays={},
                     num_samples=samples, shard_size=samples, class_names=["a"],
                     source={"root": str(tmp_path)}, source_hash="s")
    prepare_store(tmp_path / "t.zarr", spec, overwrite=True)
    writer = ShardWriter(tmp_path / "t.zarr")
    # constant values: the encoded chunks are next to nothing, what is left is the copies
    tokens = np.full((samples, width), 0.5, np.float32)
    data = ShardData({"tokens": tokens}, np.zeros(samples, np.int32), np.ones(samples, bool),
                     [f"s{i}" for i in range(samples)], [])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        writer.write(0, data)
        extra = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    # one chunk's copy, Zstd's output buffer for it, and Zarr's own small change
    assert extra < 4 * chunk_bytes, f"{extra / chunk_bytes:.1f} chunks"
