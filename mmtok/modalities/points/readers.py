"""Point-cloud readers: file -> :class:`Cloud` (float32 xyz plus optional normals/colours).

| extension | reader |
|---|---|
| .ply, .pcd | Open3D ``read_point_cloud`` (ASCII and binary; normals and colours when present) |
| .xyz, .txt, .pts | numpy text parser: columns x y z [nx ny nz [r g b]], space- or comma-separated; a leading point-count line (.pts) is skipped |
| .npy, .npz | ``numpy.load`` without pickle; (n, 3+) arrays with the same column rule; .npz keys ``points``/``xyz`` (else the first array), ``normals``, ``colors`` |
| .off, .obj, .stl | meshes: see ``mesh.py`` (points sampled on the surface) |
| .h5, .hdf5 | ModelNet-style HDF5: ``data`` (N, P, 3+) and ``label``; one sample per row |

Every failure becomes a :class:`SampleError` with a specific kind.
"""

from __future__ import annotations

import math
import os
import zipfile
from typing import Any, BinaryIO, Callable, Iterator, Sequence

import numpy as np

from ...errors import SampleError
from ..files import check_input_file
from .cloud import Cloud, open3d_quiet
from .headers import check_declared_size
from .mesh import read_mesh, sample_surface

POINT_EXTENSIONS = (".ply", ".pcd", ".xyz", ".txt", ".pts", ".npy", ".npz")
MESH_EXTENSIONS = (".off", ".obj", ".stl")
HDF5_EXTENSIONS = (".h5", ".hdf5")
DEFAULT_MAX_POINTS = 50_000_000


def split_columns(array: np.ndarray, source: str) -> Cloud:
    """(n, 3+) -> Cloud: columns 0-2 xyz, 3-5 normals, 6-8 colours (0-255 scaled to 0-1)."""
    if array.ndim != 2 or array.shape[1] < 3:
        raise SampleError("bad_shape", f"{source}: expected an (n, 3+) array of points, got "
                          f"shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise SampleError("bad_shape", f"{source}: points must be real numbers, not "
                          f"{array.dtype}")
    array = array.astype(np.float32, copy=False)
    normals = array[:, 3:6] if array.shape[1] >= 6 else None
    colors = None
    if array.shape[1] >= 9:
        colors = array[:, 6:9]
        if colors.max(initial=0) > 1:
            colors = colors / 255.0
    return Cloud(np.ascontiguousarray(array[:, :3]), normals, colors)


def read_text(path: str) -> Cloud:
    with open(path, "rb") as handle:
        text = handle.read().decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if lines and len(lines[0].split()) == 1 and lines[0].strip().isdigit():
        lines = lines[1:]  # .pts point-count header
    if not lines:
        raise SampleError("empty_cloud", "no points in the file")
    try:
        rows = [line.replace(",", " ").split() for line in lines]
        width = len(rows[0])
        if any(len(row) != width for row in rows):
            raise ValueError("rows have different numbers of columns")
        array = np.array(rows, dtype=np.float64)
    except ValueError as exc:
        raise SampleError("decode_error", f"not a numeric point table: {exc}") from None
    return split_columns(array, "text")


def read_numpy(path: str, max_points: int) -> Cloud:
    """A .npy or .npz cloud. The array header is checked first: ``np.load`` allocates what
    a header declares, so a few bytes declaring billions of points (or an .npz member that
    inflates a thousandfold) would otherwise take all memory."""
    if path.lower().endswith(".npz"):
        return read_npz(path, max_points)
    with open(path, "rb") as handle:
        check_npy_header(handle, os.fstat(handle.fileno()).st_size, max_points, "npy")
    return split_columns(guarded(lambda: np.load(path, allow_pickle=False), "npy"), "npy")


def read_npz(path: str, max_points: int) -> Cloud:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise SampleError("decode_error", f"not a readable .npz: {exc}") from None
    with archive:
        members = {n[:-4]: n for n in archive.namelist() if n.endswith(".npy")}
        if not members:
            raise SampleError("empty_cloud", "the .npz holds no arrays")
        key = next((k for k in ("points", "xyz", "pos") if k in members), next(iter(members)))
        cloud = split_columns(npz_member(archive, members[key], max_points), f"npz[{key}]")
        for name in ("normals", "colors"):
            if name in members:
                extra = np.asarray(npz_member(archive, members[name], max_points), np.float32)
                if extra.shape != cloud.xyz.shape:
                    raise SampleError("bad_shape", f"npz[{name}] has shape {extra.shape}, "
                                      f"points have {cloud.xyz.shape}")
                setattr(cloud, name, extra)
    return cloud


def npz_member(archive: zipfile.ZipFile, name: str, max_points: int) -> np.ndarray:
    def read() -> np.ndarray:
        with archive.open(name) as handle:
            check_npy_header(handle, archive.getinfo(name).file_size, max_points, name)
        with archive.open(name) as handle:
            return np.lib.format.read_array(handle, allow_pickle=False)
    return guarded(read, f"npz[{name}]")


def check_npy_header(handle: BinaryIO, file_size: int, max_points: int, source: str) -> None:
    """Refuse a header declaring more points than ``max_points`` or more bytes than exist."""
    try:
        version = np.lib.format.read_magic(handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(handle)
    except Exception as exc:  # noqa: BLE001 - numpy raises many types on corrupt headers
        raise SampleError("decode_error", f"{source}: not a .npy array header: "
                          f"{type(exc).__name__}: {exc}") from None
    needed = math.prod(shape) * dtype.itemsize
    available = file_size - handle.tell()
    if not dtype.hasobject and needed > available:
        raise SampleError("truncated", f"{source} declares {needed} bytes of data, the file "
                          f"holds {available}")
    rows = shape[0] if shape else 1
    if rows > max_points:
        raise SampleError("too_large", f"{source} declares {rows} points, more than "
                          f"max_points {max_points}")


def guarded(read: Callable[[], Any], source: str) -> Any:
    """Run a numpy reader; what it raises on a corrupt file becomes this sample's error."""
    try:
        return read()
    except SampleError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy and zipfile raise many types
        raise SampleError("decode_error", f"{source}: not readable: {type(exc).__name__}: "
                          f"{exc}") from None


def read_open3d(path: str) -> Cloud:
    cloud = open3d_quiet().io.read_point_cloud(path)
    if not cloud.has_points():
        raise SampleError("decode_error", "Open3D read no points (corrupt file, or a cloud "
                          "with no vertices)")
    xyz = np.asarray(cloud.points, dtype=np.float32)
    normals = np.asarray(cloud.normals, dtype=np.float32) if cloud.has_normals() else None
    colors = np.asarray(cloud.colors, dtype=np.float32) if cloud.has_colors() else None
    return Cloud(xyz, normals, colors)


def read_hdf5_row(path: str, row: int, max_points: int = DEFAULT_MAX_POINTS) -> Cloud:
    """Row ``row`` of a ModelNet-style file's ``data`` (N, P, 3+); the labels are read once,
    for every row, by :func:`hdf5_rows` when the samples are listed."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            data = hdf5_data(handle, max_points)
            points = np.asarray(data[row])
    except SampleError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError/KeyError/... on bad files
        raise hdf5_error(exc) from None
    return split_columns(points, f"data[{row}]")


HDF5_BLOCK_BYTES = 64 << 20  # one slice's rows: big clouds stay bounded in memory


def iter_hdf5_rows(path: str, rows: Sequence[int], max_points: int = DEFAULT_MAX_POINTS
                   ) -> Iterator[tuple[int, Cloud | SampleError]]:
    """``read_hdf5_row`` for many rows of one file, opening it once: yields ``(row, cloud
    or the SampleError that reading the row alone gives)`` for each distinct row of
    ``rows``, in increasing order.

    Each block of consecutive rows (up to HDF5_BLOCK_BYTES) is read with one slice, and
    the next block only when the caller asks for it. A block whose read fails is read
    again row by row, so a damaged chunk fails only the rows it holds. A file that cannot
    be opened, or whose ``data`` has a bad shape, raises SampleError on the first step.
    """
    import h5py

    check_input_file(path)
    try:
        with h5py.File(path, "r") as handle:
            data = hdf5_data(handle, max_points)
            row_bytes = max(1, math.prod(data.shape[1:]) * data.dtype.itemsize)
            for block in row_blocks(sorted(set(rows)), max(1, HDF5_BLOCK_BYTES // row_bytes)):
                yield from read_block(data, block)
    except SampleError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError/KeyError/... on bad files
        raise hdf5_error(exc) from None


def row_blocks(rows: list[int], most: int) -> list[list[int]]:
    """Sorted ``rows`` cut into runs of consecutive numbers, each at most ``most`` long."""
    blocks: list[list[int]] = []
    for row in rows:
        if blocks and row == blocks[-1][-1] + 1 and len(blocks[-1]) < most:
            blocks[-1].append(row)
        else:
            blocks.append([row])
    return blocks


def read_block(data: Any, block: list[int]) -> list[tuple[int, Cloud | SampleError]]:
    """Rows ``block`` (consecutive) of the open ``data`` dataset, with one slice."""
    try:
        points = np.asarray(data[block[0]:block[-1] + 1])
        if len(points) != len(block):  # a row beyond the end: let lone reads name it
            raise IndexError("rows beyond the end of data")
    except Exception:  # noqa: BLE001 - re-read alone below, where each error is the row's own
        return [(row, lone_row(data, row)) for row in block]
    return [(row, guarded_columns(points[i], f"data[{row}]")) for i, row in enumerate(block)]


def lone_row(data: Any, row: int) -> Cloud | SampleError:
    """Row ``row`` read alone, or its error: what ``read_hdf5_row`` reports for it."""
    try:
        points = np.asarray(data[row])
    except Exception as exc:  # noqa: BLE001
        return hdf5_error(exc)
    return guarded_columns(points, f"data[{row}]")


def guarded_columns(points: np.ndarray, source: str) -> Cloud | SampleError:
    try:
        return split_columns(points, source)
    except SampleError as exc:
        return exc


def hdf5_data(handle: Any, max_points: int) -> Any:
    """The open file's ``data`` dataset, after the checks every row needs."""
    data = handle["data"]
    if data.ndim != 3 or data.shape[2] < 3:
        raise SampleError("bad_shape", f"data has shape {data.shape}, expected (N, P, 3+)")
    if data.shape[1] > max_points:  # a compressed or unwritten dataset costs no disk
        raise SampleError("too_large", f"rows of {data.shape[1]} points exceed "
                          f"max_points {max_points}")
    return data


def hdf5_error(exc: Exception) -> SampleError:
    return SampleError("decode_error", f"not a readable ModelNet HDF5 file: "
                       f"{type(exc).__name__}: {exc}")


def hdf5_rows(path: str) -> list[tuple[str, int | None]]:
    """Parts of an HDF5 file: one per row of ``data``, with the row's label when present."""
    import h5py

    check_input_file(path)
    try:
        with h5py.File(path, "r") as handle:
            if "data" not in handle:
                raise SampleError("bad_shape", f"no 'data' dataset (found: {sorted(handle)})")
            count = handle["data"].shape[0]
            labels = np.asarray(handle["label"]).reshape(count, -1)[:, 0].astype(int) \
                if "label" in handle else [None] * count
    except SampleError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise SampleError("decode_error", f"not a readable ModelNet HDF5 file: "
                          f"{type(exc).__name__}: {exc}") from None
    return [(str(row), None if label is None else int(label)) for row, label in
            zip(range(count), labels)]


def read_cloud(path: str, part: str | None, mesh_points: int, seed: int,
               max_points: int = DEFAULT_MAX_POINTS) -> Cloud:
    """Any supported file -> its cloud (labels of multi-sample files come from listing)."""
    check_input_file(path)
    extension = os.path.splitext(path)[1].lower()
    if extension in HDF5_EXTENSIONS:
        if part is None:
            raise SampleError("bad_part", "an HDF5 sample needs a row (id FILE#ROW)")
        return read_hdf5_row(path, int(part), max_points)
    check_declared_size(path, extension, max_points)
    if extension in MESH_EXTENSIONS:
        vertices, faces = read_mesh(path)
        return sample_surface(vertices, faces, mesh_points, seed)
    if extension in (".npy", ".npz"):
        return read_numpy(path, max_points)
    if extension in (".xyz", ".txt", ".pts"):
        return read_text(path)
    if extension in (".ply", ".pcd"):
        return read_open3d(path)
    raise SampleError("unsupported_format", f"no point-cloud reader for {extension!r} files")
