"""The reader API (issue 20): valid_only, a transform hook, and a shard-aware sampler that
decodes every inner chunk once per epoch where random access decodes one per sample."""

import numpy as np
import pytest
import torch
from imagefiles import write_class_tree

import mmtok
from mmtok.store.reader import ShardSampler


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reading")
    write_class_tree(folder / "data", per_class=40, size=(32, 32))
    (folder / "data" / "cat" / "bad.png").write_bytes(b"nope")
    # 81 samples of 196 x 768 bytes in shards of 32: inner chunks of 16 (under 4 MiB), so
    # each shard holds two chunks and the sampler's chunk shuffle is exercised
    mmtok.tokenize(folder / "data", folder / "t.zarr", "image", size=224, patch=16,
                   shard_size=32, progress=False)
    store = mmtok.open_store(folder / "t.zarr")
    assert store.group["tokens"].chunks[0] == 16
    return folder / "t.zarr"


def test_valid_only_skips_invalid_samples_and_keeps_their_index(store):
    full = mmtok.open_store(store)
    valid = mmtok.open_store(store, valid_only=True)
    assert (len(full), len(valid)) == (81, 80)
    assert all(valid[i]["valid"] for i in range(len(valid)))
    bad = next(i for i in range(len(full)) if not full[i]["valid"])
    assert bad not in {valid[i]["index"] for i in range(len(valid))}
    assert valid[bad]["index"] == bad + 1  # later samples keep their store position
    with pytest.raises(IndexError, match="80 valid samples"):
        valid[80]


def test_transform_maps_every_item(store):
    dataset = mmtok.open_store(store, valid_only=True,
                               transform=lambda item: (torch.from_numpy(item["tokens"]),
                                                       item["label"]))
    tokens, labels = next(iter(torch.utils.data.DataLoader(dataset, batch_size=8)))
    assert tokens.shape == (8, 196, 768) and labels.tolist() == [0] * 8


def test_the_shard_sampler_visits_every_sample_once_in_a_seeded_order(store):
    dataset = mmtok.open_store(store, valid_only=True)
    sampler = ShardSampler(dataset, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(len(dataset))) and order != sorted(order)
    assert order == list(ShardSampler(dataset, seed=3))
    sampler.set_epoch(1)
    assert list(sampler) != order
    assert list(ShardSampler(dataset, shuffle=False)) == list(range(len(dataset)))


def test_the_shard_sampler_decodes_each_chunk_once(store):
    """Random access (what a DataLoader with shuffle=True does) decodes about a chunk per
    sample; the shard sampler one per chunk and array, like sequential reading."""
    def chunk_reads(order) -> int:
        dataset = mmtok.open_store(store)
        for index in order:
            dataset[index]
        return dataset.chunk_reads

    dataset = mmtok.open_store(store)
    sequential = chunk_reads(range(len(dataset)))
    shard_order = chunk_reads(ShardSampler(dataset, seed=0))
    random_order = chunk_reads(np.random.default_rng(0).permutation(len(dataset)))
    assert shard_order == sequential
    assert random_order > 3 * shard_order


@pytest.mark.parametrize("shards", [None, (16, 3, 2)])
def test_read_rows_matches_numpy_indexing_for_rows_in_any_order(tmp_path, shards):
    import zarr

    from mmtok.store.reader import read_rows

    values = np.arange(83 * 3 * 2, dtype=np.int32).reshape(83, 3, 2)
    array = zarr.create_array(tmp_path / "a.zarr", shape=values.shape, dtype="int32",
                              chunks=(4, 3, 2), shards=shards)
    array[:] = values
    rng = np.random.default_rng(0)
    cases = [rng.integers(-1, 83, 200),                  # repeats and absent rows, shuffled
             np.arange(82, -1, -1),                      # every row, reversed
             np.array([0, 82, 41, 3, 4, 63, 64, -5]),  # sparse, chunk edges
             np.full(5, -1)]                             # nothing to read
    for rows in cases:
        out = np.full((len(rows), 3, 2), -7, np.int32)
        read_rows(array, rows, out)
        here = rows >= 0
        np.testing.assert_array_equal(out[here], values[rows[here]])
        assert (out[~here] == -7).all()  # rows without a store row are left alone
