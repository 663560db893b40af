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
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..store.layout import TOKEN_MASK
from ..store.reader import open_complete_store

FORMATS = (".h5", ".hdf5", ".npz", ".npy", ".parquet")


def export_features(store_path: str | os.PathLike, output: str | os.PathLike) -> dict:
    """Write the features of a complete feature store to ``output``; returns a summary."""
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"cannot export to {output.name}: choose a file ending in "
                         f"{', '.join(FORMATS)}")
    store = open_complete_store(store_path, "features", "export")
    columns = {name: store.group[name][:] for name in ("features", "label", "valid", "id")}
    if TOKEN_MASK in store.group:
        columns[TOKEN_MASK] = store.group[TOKEN_MASK][:]
    columns["id"] = np.array([str(i) for i in columns["id"]], dtype=object)
    columns["class_names"] = np.array(list(store.class_names), dtype=object)
    writer = {".h5": _hdf5, ".hdf5": _hdf5, ".npz": _npz, ".npy": _npy,
              ".parquet": _parquet}[suffix]
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".partial" + suffix)
    writer(temporary, columns, store.attrs)
    os.replace(temporary, output)  # never leave a half-written export under the final name
    return {"output": str(output), "num_samples": len(store),
            "shape": list(columns["features"].shape), "format": suffix.lstrip(".")}


def _hdf5(path: Path, columns: dict, attrs: dict) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        handle.create_dataset("features", data=columns["features"])
        handle.create_dataset("label", data=columns["label"])
        handle.create_dataset("valid", data=columns["valid"])
        if TOKEN_MASK in columns:
            handle.create_dataset(TOKEN_MASK, data=columns[TOKEN_MASK])
        handle.create_dataset("id", data=list(columns["id"]),
                              dtype=h5py.string_dtype("utf-8"))
        handle.create_dataset("class_names", data=list(columns["class_names"]),
                              dtype=h5py.string_dtype("utf-8"))
        handle.attrs["mmtok"] = json.dumps(attrs)


def _npz(path: Path, columns: dict, attrs: dict) -> None:
    with open(path, "wb") as handle:
        masks = {TOKEN_MASK: columns[TOKEN_MASK]} if TOKEN_MASK in columns else {}
        np.savez(handle, features=columns["features"], label=columns["label"],
                 valid=columns["valid"], id=columns["id"].astype(str),
                 class_names=columns["class_names"].astype(str), **masks)


def _npy(path: Path, columns: dict, attrs: dict) -> None:
    with open(path, "wb") as handle:
        np.save(handle, columns["features"])


def _parquet(path: Path, columns: dict, attrs: dict) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # a dependency since issue 20; kept for broken environments
        raise UsageError("Parquet export needs pyarrow, a dependency of mmtok that is "
                         "missing here: pip install pyarrow (or export to .h5 / .npz)") from None
    features = columns["features"].reshape(len(columns["features"]), -1)
    names = list(columns["class_names"])
    class_name = [names[i] if 0 <= i < len(names) else "" for i in columns["label"].tolist()]
    table = pa.table({"id": columns["id"].astype(str), "label": columns["label"],
                      "class_name": class_name, "valid": columns["valid"],
                      "features": list(features)})
    if TOKEN_MASK in columns:
        table = table.append_column(TOKEN_MASK, pa.array(list(columns[TOKEN_MASK])))
    table = table.replace_schema_metadata({"mmtok": json.dumps(attrs)})
    pq.write_table(table, path)
