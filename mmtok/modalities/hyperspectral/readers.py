"""Hyperspectral cubes and label maps.

Cubes (``(H, W, B)``: rows, columns, bands): ``.npy`` (memory-mapped), ENVI (``.hdr`` text
header + raw binary beside it: ``.img``/``.dat``/``.raw``/``.bsq``/``.bil``/``.bip`` or no
extension; ``interleave`` bsq/bil/bip, ``data type`` 1-5, 12-15, ``byte order`` 0/1,
``header offset``; memory-mapped), ``.mat`` v5 (scipy.io, read whole) and v7.3 (HDF5,
h5py: MATLAB's ``(H, W, B)`` is stored ``(B, W, H)``; read by row blocks), multi-band TIFF /
GeoTIFF (tifffile; memory-mapped when uncompressed). ``variable`` picks the ``.mat``
variable (default: the only 3-D array).

A :class:`Cube` gives its shape from the header alone and ``rows(r0, r1)`` reads a block
of whole rows as float32 ``(r1 - r0, W, B)``: a shard's pixels are gathered from the few
rows they touch, so an 8 GB cube tokenizes in bounded memory (except ``.mat`` v5 and
compressed TIFF, which their libraries read whole).

Label maps (``(H, W)`` integers, 0 = unlabelled): the same formats (the ``.mat``'s only 2-D
array) or PNG.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from ...errors import SampleError
from ..files import check_input_file

CUBE_EXTENSIONS = (".npy", ".mat", ".hdr", ".tif", ".tiff")
ENVI_TYPES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4", 14: "i8",
              15: "u8"}
ENVI_DATA_SUFFIXES = ("", ".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".IMG", ".DAT",
                      ".RAW")


class Cube:
    """A cube file opened for reading: ``shape`` (H, W, B), ``rows(r0, r1)``."""

    def __init__(self, shape: tuple[int, int, int], read_rows, close=None) -> None:
        self.shape = tuple(int(s) for s in shape)
        self._read_rows = read_rows
        self._close = close

    def rows(self, r0: int, r1: int) -> np.ndarray:
        try:
            block = self._read_rows(r0, r1)
        except (OSError, ValueError) as exc:
            raise SampleError("truncated", f"cannot read rows {r0}:{r1}: {exc}",
                              stage="decode") from None
        return np.ascontiguousarray(block, dtype=np.float32)

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def __enter__(self) -> "Cube":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_cube(path: str, variable: str = "") -> Cube:
    check_input_file(path)
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            return _npy_cube(path)
        if ext == ".hdr":
            return _envi_cube(path)
        if ext == ".mat":
            return _mat_cube(path, variable)
        if ext in (".tif", ".tiff"):
            return _tiff_cube(path)
    except SampleError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise SampleError("decode_error", f"not a readable {ext} cube: "
                          f"{type(exc).__name__}: {exc}") from None
    raise SampleError("decode_error", f"no cube reader for {ext!r} files")


def _three_d(shape: tuple, what: str) -> None:
    if len(shape) != 3 or min(shape) < 1:
        raise SampleError("bad_shape", f"{what} has shape {tuple(shape)}, not (rows, columns, "
                          "bands)")


def _npy_cube(path: str) -> Cube:
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    _three_d(array.shape, "the array")
    _numeric(array.dtype)
    return Cube(array.shape, lambda r0, r1: array[r0:r1])


def _numeric(dtype: np.dtype) -> None:
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise SampleError("decode_error", f"cube values of type {dtype} are not numbers")


# --- ENVI -------------------------------------------------------------------------------


def parse_envi_header(text: str) -> dict[str, str]:
    if not text.lstrip().startswith("ENVI"):
        raise SampleError("bad_header", "an ENVI header starts with the word ENVI")
    fields: dict[str, str] = {}
    body = text.lstrip()[4:]
    for match in re.finditer(r"^\s*([^=\n]+?)\s*=\s*(\{[^}]*\}|[^\n]*)", body, re.MULTILINE):
        fields[match.group(1).strip().lower()] = match.group(2).strip()
    return fields


def envi_layout(path: str) -> tuple[str, dict[str, Any]]:
    """(raw data file, {shape, dtype, interleave, offset}) from an ENVI header; every
    disagreement with the data file is a ``bad_header`` SampleError."""
    with open(path, "rb") as handle:
        raw = handle.read(1 << 20)
    fields = parse_envi_header(raw.decode("latin-1"))
    try:
        w, h, b = (int(fields[k]) for k in ("samples", "lines", "bands"))
        code = int(fields.get("data type", "-1"))
        offset = int(fields.get("header offset", "0"))
        order = int(fields.get("byte order", "0"))
    except (KeyError, ValueError) as exc:
        raise SampleError("bad_header", f"ENVI header field missing or not a number: {exc}"
                          ) from None
    interleave = fields.get("interleave", "bsq").lower()
    if interleave not in ("bsq", "bil", "bip"):
        raise SampleError("bad_header", f"unknown interleave {interleave!r} (bsq, bil or bip)")
    if code not in ENVI_TYPES:
        raise SampleError("bad_header", f"unsupported ENVI data type {code} (known: "
                          f"{sorted(ENVI_TYPES)})")
    if min(w, h, b) < 1 or offset < 0 or order not in (0, 1):
        raise SampleError("bad_header", f"samples {w}, lines {h}, bands {b}, header offset "
                          f"{offset}, byte order {order} are not a valid layout")
    dtype = np.dtype(ENVI_TYPES[code]).newbyteorder(">" if order else "<")
    stem = path[:-4]
    data = next((stem + s for s in ENVI_DATA_SUFFIXES if os.path.isfile(stem + s)), None)
    if data is None:
        raise SampleError("not_found", f"no data file beside the ENVI header (looked for "
                          f"{os.path.basename(stem)} with {', '.join(s or 'no' for s in ENVI_DATA_SUFFIXES[:7])} "
                          "extension)")
    expected = offset + w * h * b * dtype.itemsize
    actual = os.path.getsize(data)
    if actual != expected:
        raise SampleError("bad_header", f"the header describes {h} x {w} x {b} values of "
                          f"{dtype.name} after {offset} bytes = {expected} bytes, but "
                          f"{os.path.basename(data)} has {actual}")
    return data, {"shape": (h, w, b), "dtype": dtype, "interleave": interleave,
                  "offset": offset}


def _envi_cube(path: str) -> Cube:
    data, layout = envi_layout(path)
    h, w, b = layout["shape"]
    stored = {"bsq": (b, h, w), "bil": (h, b, w), "bip": (h, w, b)}[layout["interleave"]]
    array = np.memmap(data, dtype=layout["dtype"], mode="r", offset=layout["offset"],
                      shape=stored)
    interleave = layout["interleave"]

    def rows(r0: int, r1: int) -> np.ndarray:
        if interleave == "bsq":
            return array[:, r0:r1, :].transpose(1, 2, 0)
        if interleave == "bil":
            return array[r0:r1].transpose(0, 2, 1)
        return array[r0:r1]

    return Cube((h, w, b), rows)


# --- MATLAB -----------------------------------------------------------------------------


def _is_hdf5(path: str) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(1024)
    return head[512:520] == b"\x89HDF\r\n\x1a\n" or head[:8] == b"\x89HDF\r\n\x1a\n"


def _pick(names_shapes: list[tuple[str, tuple]], variable: str, dims: int, what: str) -> str:
    if variable:
        if variable not in {n for n, _ in names_shapes}:
            raise SampleError("bad_variable", f"no variable {variable!r} in the .mat file "
                              f"(it holds: {', '.join(n for n, _ in names_shapes) or 'none'})")
        return variable
    found = [n for n, s in names_shapes if len(s) == dims]
    if len(found) != 1:
        listed = ", ".join(f"{n} {tuple(s)}" for n, s in names_shapes) or "none"
        raise SampleError("bad_variable", f"the .mat file holds {len(found)} {dims}-D arrays, "
                          f"not one ({listed}); pick the {what} with --set variable=NAME")
    return found[0]


def _mat_cube(path: str, variable: str) -> Cube:
    if _is_hdf5(path):  # MATLAB v7.3
        import h5py

        handle = h5py.File(path, "r")
        try:
            datasets = [(k, v.shape[::-1]) for k, v in handle.items()
                        if isinstance(v, h5py.Dataset) and not k.startswith("#")]
            name = _pick(datasets, variable, 3, "cube")
            dataset = handle[name]
            _numeric(dataset.dtype)
        except BaseException:
            handle.close()
            raise
        shape = dataset.shape[::-1]
        _three_d(shape, f"variable {name!r}")
        return Cube(shape, lambda r0, r1: dataset[:, :, r0:r1].transpose(2, 1, 0),
                    handle.close)
    import scipy.io

    try:
        listed = [(n, tuple(s)) for n, s, _ in scipy.io.whosmat(path)]
        name = _pick(listed, variable, 3, "cube")
        array = scipy.io.loadmat(path, variable_names=[name])[name]
    except (NotImplementedError, ValueError, TypeError) as exc:
        raise SampleError("decode_error", f"not a readable .mat file: {exc}") from None
    _three_d(array.shape, f"variable {name!r}")
    _numeric(array.dtype)
    return Cube(array.shape, lambda r0, r1: array[r0:r1])


# --- TIFF -------------------------------------------------------------------------------


def _tiff_cube(path: str) -> Cube:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes, shape = series.axes, series.shape
    if len(shape) != 3:
        raise SampleError("bad_shape", f"the TIFF holds shape {shape} ({axes}), not a "
                          "multi-band image")
    band_first = not axes.startswith("Y")  # SYX / QYX / IYX: bands first
    try:
        array = tifffile.memmap(path, mode="r")
    except (ValueError, OSError):
        array = tifffile.imread(path)
    if band_first:
        b, h, w = array.shape
        return Cube((h, w, b), lambda r0, r1: array[:, r0:r1, :].transpose(1, 2, 0))
    return Cube(array.shape, lambda r0, r1: array[r0:r1])


# --- label maps -------------------------------------------------------------------------


def read_label_map(path: str) -> np.ndarray:
    """(H, W) int64 labels, 0 = unlabelled; a SampleError for a map that is not one."""
    check_input_file(path)
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".png":
            from PIL import Image

            with Image.open(path) as image:
                values = np.asarray(image)
        elif ext == ".mat" and not _is_hdf5(path):
            import scipy.io

            listed = [(n, tuple(s)) for n, s, _ in scipy.io.whosmat(path)]
            name = _pick(listed, "", 2, "label map")
            values = scipy.io.loadmat(path, variable_names=[name])[name]
        elif ext == ".mat":
            import h5py

            with h5py.File(path, "r") as handle:
                datasets = [(k, v.shape) for k, v in handle.items()
                            if isinstance(v, h5py.Dataset) and not k.startswith("#")]
                values = handle[_pick(datasets, "", 2, "label map")][...].T
        elif ext == ".npy":
            values = np.load(path, allow_pickle=False)
        elif ext in (".tif", ".tiff"):
            import tifffile

            values = tifffile.imread(path)
        elif ext == ".hdr":
            with open_cube(path) as cube:
                values = cube.rows(0, cube.shape[0])
        else:
            raise SampleError("bad_label_map", f"no label map reader for {ext!r} files "
                              "(.npy, .mat, .png, .tif, ENVI .hdr)")
        if values.ndim == 3 and values.shape[2] == 1:
            values = values[:, :, 0]
    except SampleError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SampleError("bad_label_map", f"not a readable label map: {exc}") from None
    if values.ndim != 2:
        raise SampleError("bad_label_map", f"a label map is (rows, columns), not {values.shape}")
    if not np.issubdtype(values.dtype, np.integer):
        if not np.issubdtype(values.dtype, np.floating) or not np.all(np.isfinite(values)) \
                or np.any(values != np.round(values)):
            raise SampleError("bad_label_map", "the label map holds non-integer values; "
                              "labels are integers, 0 = unlabelled")
    labels = values.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise SampleError("bad_label_map", "the label map holds negative labels")
    return labels
