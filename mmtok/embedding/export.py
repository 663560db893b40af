"""``export``: a feature store -> a file other tools read.

| suffix | content |
|---|---|
| ``.h5`` / ``.hdf5`` | datasets ``features``, ``label``, ``valid``, ``id`` (UTF-8 strings), ``class_names``, and ``token_mask`` where the store has one; attrs ``mmtok`` (the store's attrs as JSON) |
| ``.npz`` | arrays ``features``, ``label``, ``valid``, ``id``, ``class_names``, and ``token_mask`` where the store has one |
| ``.npy`` | ``features`` only (N, ...); sample ``i`` is sample ``i`` of the store (one array: use another format for labels and class names) |
| ``.parquet`` | columns ``id``, ``label``, ``class_name`` (empty when unlabelled), ``valid``, ``features`` (a list per row), and ``token_mask`` (a list per row) where the store has one; schema metadata ``mmtok`` (attrs, with ``class_names``) |

``label`` ``i`` names class ``class_names[i]``; -1 is unlabelled.

``token_mask`` (N, T) bool comes with per-token features (``embed --pool none``): which tokens
are real, the others padding.

Invalid samples are kept (``valid = False``, zero features) so row ``i`` is always sample ``i``.

The features (and ``token_mask``) are copied a shard at a time, so an export's memory is
about one shard's whatever the store's size; labels, valid flags and ids are read whole.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

import numpy as np

from ..errors import UsageError
from ..store.layout import TOKEN_MASK, shard_bounds

if TYPE_CHECKING:
    from ..store.reader import Store

FORMATS = (".h5", ".hdf5", ".npz", ".npy", ".parquet")
SMALL = ("label", "valid", "id")  # read whole: a few bytes per sample


def export_features(store_path: str | os.PathLike, output: str | os.PathLike) -> dict:
    """Write the features of a complete feature store to ``output``; returns a summary."""
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"cannot export to {output.name}: choose a file ending in "
                         f"{', '.join(FORMATS)}")
    from ..store.reader import open_complete_store  # torch (its Dataset): not at CLI start

    store = open_complete_store(store_path, "features", "export")
    writer = {".h5": _hdf5, ".hdf5": _hdf5, ".npz": _npz, ".npy": _npy,
              ".parquet": _parquet}[suffix]
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".partial" + suffix)
    try:
        writer(temporary, Export(store))
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, output)  # never leave a half-written export under the final name
    return {"output": str(output), "num_samples": len(store),
            "shape": list(store.group["features"].shape), "format": suffix.lstrip(".")}


class Export:
    """What every format writes: the small columns whole, the large ones by shard."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.attrs = store.attrs
        self.large = ["features", *([TOKEN_MASK] if TOKEN_MASK in store.group else [])]
        self.small = {name: store.group[name][:] for name in SMALL}
        self.small["id"] = np.array([str(i) for i in self.small["id"]], dtype=object)
        self.class_names = np.array(list(store.class_names), dtype=object)

    def array(self, name: str) -> Any:
        return self.store.group[name]

    def shards(self, name: str) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) of array ``name``, one shard at a time."""
        array, size = self.array(name), self.attrs["shard_size"]
        for shard in range(self.attrs["num_shards"]):
            start, stop = shard_bounds(shard, array.shape[0], size)
            yield start, array[start:stop]


def _hdf5(path: Path, data: Export) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        for name in data.large:
            array = data.array(name)
            dataset = handle.create_dataset(name, shape=array.shape, dtype=array.dtype)
            for start, rows in data.shards(name):
                dataset[start:start + len(rows)] = rows
        handle.create_dataset("label", data=data.small["label"])
        handle.create_dataset("valid", data=data.small["valid"])
        handle.create_dataset("id", data=list(data.small["id"]),
                              dtype=h5py.string_dtype("utf-8"))
        handle.create_dataset("class_names", data=list(data.class_names),
                              dtype=h5py.string_dtype("utf-8"))
        handle.attrs["mmtok"] = json.dumps(data.attrs)


def _npz(path: Path, data: Export) -> None:
    # as np.savez writes it (stored members NAME.npy), each large array streamed in
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in data.large:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                _stream_npy(member, data, name)
        small = {"label": data.small["label"], "valid": data.small["valid"],
                 "id": data.small["id"].astype(str), "class_names": data.class_names.astype(str)}
        for name, values in small.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, values, allow_pickle=False)


def _npy(path: Path, data: Export) -> None:
    with open(path, "wb") as handle:
        _stream_npy(handle, data, "features")


def _stream_npy(handle: BinaryIO, data: Export, name: str) -> None:
    """``name`` as one .npy: the header, then the rows shard by shard (C order)."""
    array = data.array(name)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(array.dtype)),
              "fortran_order": False, "shape": tuple(array.shape)}
    np.lib.format.write_array_header_1_0(handle, header)
    for _, rows in data.shards(name):
        handle.write(np.ascontiguousarray(rows).data)


def _parquet(path: Path, data: Export) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # a dependency since issue 20; kept for broken environments
        raise UsageError("Parquet export needs pyarrow, a dependency of mmtok that is "
                         "missing here: pip install pyarrow (or export to .h5 / .npz)") from None
    names = list(data.class_names)
    label = data.small["label"]
    class_name = np.array([names[i] if 0 <= i < len(names) else "" for i in label.tolist()],
                          dtype=object)
    fields = [("id", pa.string()), ("label", pa.from_numpy_dtype(label.dtype)),
              ("class_name", pa.string()), ("valid", pa.bool_())]
    fields += [(name, pa.list_(pa.from_numpy_dtype(np.dtype(data.array(name).dtype))))
               for name in data.large]
    schema = pa.schema(fields, metadata={"mmtok": json.dumps(data.attrs)})
    with pq.ParquetWriter(path, schema) as writer:
        for parts in zip(*(data.shards(name) for name in data.large)):  # a row group each
            start, count = parts[0][0], len(parts[0][1])
            rows = slice(start, start + count)
            columns = [data.small["id"][rows].astype(str), label[rows], class_name[rows],
                       data.small["valid"][rows]]
            columns += [_list_column(pa, values) for _, values in parts]
            writer.write_table(pa.Table.from_arrays(
                [pa.array(c) if isinstance(c, np.ndarray) else c for c in columns],
                schema=schema))


def _list_column(pa: Any, values: np.ndarray) -> Any:
    """(n, ...) rows as a list column of their flattened values."""
    width = int(np.prod(values.shape[1:], dtype=np.int64))
    if len(values) * width >= 2**31:  # a list column's offsets are int32
        raise UsageError(f"a shard of {len(values)} x {width} values is too large for a "
                         "Parquet list column; export to .h5 or .npz instead")
    offsets = np.arange(len(values) + 1, dtype=np.int32) * np.int32(width)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.reshape(-1)))
