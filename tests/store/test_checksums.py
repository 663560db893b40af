"""``array_checksum``: the digest of an array's contents; string arrays are hashed a block
of items at a time, the same digest as one update per item (every committed marker's
checksums stay what they were)."""

import hashlib

import numpy as np

from mmtok.store.layout import CHECKSUM_BLOCK_ITEMS, array_checksum


def one_update_per_item(values: np.ndarray) -> str:
    digest = hashlib.sha256()
    for item in values.tolist():
        digest.update(str(item).encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def test_string_checksums_are_one_update_per_item():
    many = [f"rows.csv#{i}" for i in range(2 * CHECKSUM_BLOCK_ITEMS + 5)]
    for values in (np.array([], object), np.array(["", "é", "a\udcffb", "x\0y"], object),
                   np.array(many, object), np.array([["a", "b"], ["c", "d"]], object),
                   np.array(["ab", "c"], "U2")):
        assert array_checksum(values) == one_update_per_item(values)


def test_numeric_checksums_hash_the_buffer():
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert array_checksum(values) == hashlib.sha256(values.tobytes()).hexdigest()
    assert array_checksum(values.T) == hashlib.sha256(values.T.tobytes()).hexdigest()
