"""Readers of time series: tables (CSV/TSV/Parquet), NumPy arrays (NPY/NPZ) and UEA/sktime
``.ts`` archives. They know file formats, nothing about windows or tokens.

A file is either a *recording* (one long series, cut into windows by the tokenizer: tables,
2-D arrays) or a file of *cases* (one series per case: ``.ts`` files, 3-D arrays). Listing
(:func:`recording_meta`, :func:`case_meta`) reads metadata only: a table's row count (a scan
for line ends, or Parquet's footer), its label and time columns when they are asked for, an
array's header, a ``.ts`` file's header and each case's label field (no number is parsed).

Reading a CSV/TSV range of rows seeks to the range through a sparse index of line starts
(one offset every ``INDEX_EVERY`` rows, built once per file and process while scanning), so a
shard's windows cost reading their own rows, and memory does not grow with the file.
"""

from __future__ import annotations

import io
import math
import os
import re
import zipfile
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...errors import SampleError, UsageError
from ..files import check_input_file

TABLE_EXTENSIONS = (".csv", ".tsv", ".parquet", ".pq")
ARRAY_EXTENSIONS = (".npy", ".npz")
TS_EXTENSIONS = (".ts",)
EXTENSIONS = TABLE_EXTENSIONS + ARRAY_EXTENSIONS + TS_EXTENSIONS

INDEX_EVERY = 4096  # rows between two offsets of a CSV's sparse line index
SCAN_BYTES = 16 << 20  # bytes read at a time while scanning a CSV for line ends
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def suffix(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def is_table(path: str) -> bool:
    return suffix(path) in TABLE_EXTENSIONS


@dataclass(frozen=True)
class Meta:
    """What listing learns about a file: its steps (or cases), per-step (or per-case) labels
    as class indices (-1 unknown) with their class names, and per-step times in seconds."""

    length: int  # steps of a recording, cases of a case file
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    times: np.ndarray | None = None


# --------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------


def encode_labels(values: Any) -> tuple[np.ndarray, list[str] | None]:
    """A label column -> (int64 class indices, -1 where empty or negative; class names).

    Integer (or integral float) labels are used as they are and named by their numbers;
    text labels are numbered in sorted order of the file's distinct values (the tokenizer
    hands windows their class *names*, which the source numbers over every file).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    column = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        numbers = column.to_numpy(zero_copy_only=False).astype(np.float64)
        missing = ~np.isfinite(numbers)
        if not np.all(numbers[~missing] == np.round(numbers[~missing])):
            raise SampleError("bad_label", "the label column holds fractional numbers; "
                              "labels are integers or text")
        out = np.where(missing, -1, numbers).astype(np.int64)
        out[out < 0] = -1
        return out, None
    text = pc.cast(column, pa.string()).to_pylist()
    names = sorted({t for t in text if t not in (None, "")})
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup.get(t, -1) if t else -1 for t in text], np.int64), names


# --------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableLayout:
    """A table's columns and which of them are channels, the label and the time."""

    names: list[str]
    channels: list[str]
    label: str | None
    time: str | None


def _delimiter(path: str) -> str:
    return "\t" if suffix(path) == ".tsv" else ","


def _arrow_error(exc: Exception, where: str = "") -> SampleError:
    text = str(exc).split("\n")[0]
    if "Expected" in text and "columns" in text:
        return SampleError("ragged_rows", f"{where}{text}: every row needs one value per column")
    if "conversion" in text.lower() or "invalid" in text.lower():
        return SampleError("bad_value", f"{where}{text}: a numeric column holds text")
    return SampleError("decode_error", f"{where}{type(exc).__name__}: {text}")


_SCHEMAS: dict[tuple, tuple[list[str], dict[str, Any]]] = {}


def table_schema(path: str) -> tuple[list[str], dict[str, Any]]:
    """Column names and arrow types: Parquet's schema, or a CSV's header and the types
    pyarrow infers from its first block; kept per (path, size, mtime) like the line index
    (every shard of a long recording asks again)."""
    check_input_file(path)
    info = os.stat(path)
    key = (os.path.abspath(path), info.st_size, info.st_mtime_ns)
    found = _SCHEMAS.get(key)
    if found is None:
        found = _read_schema(path)
        _SCHEMAS.clear()
        _SCHEMAS[key] = found
    return found


def _read_schema(path: str) -> tuple[list[str], dict[str, Any]]:
    import pyarrow as pa

    try:
        if suffix(path) in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            schema = pq.read_schema(path)
        else:
            from pyarrow import csv

            reader = csv.open_csv(path, parse_options=csv.ParseOptions(
                delimiter=_delimiter(path)), read_options=csv.ReadOptions(block_size=1 << 20))
            schema = reader.schema
            reader.close()
    except (pa.ArrowInvalid, OSError) as exc:
        raise _arrow_error(exc) from None
    return list(schema.names), {f.name: f.type for f in schema}


_LAYOUTS: dict[tuple, TableLayout] = {}


def table_layout(path: str, config: Any) -> TableLayout:
    """:func:`find_table_layout`, kept per file and options: every shard of a long
    recording asks, and checking a text column (a date) reads the whole column."""
    check_input_file(path)
    info = os.stat(path)
    key = (os.path.abspath(path), info.st_size, info.st_mtime_ns, tuple(config.channels),
           config.row_labels, config.time_column)
    found = _LAYOUTS.get(key)
    if found is None:
        found = find_table_layout(path, config)
        _LAYOUTS.clear()
        _LAYOUTS[key] = found
    return found


def find_table_layout(path: str, config: Any) -> TableLayout:
    """Which columns of the table are the channels, the label and the time.

    ``channels`` given: exactly those, in that order (each must exist). Otherwise every
    numeric column but the label and time columns. A text column whose values look like
    numbers (a stray word in a numeric column) is an error, not a silently dropped channel.
    """
    import pyarrow as pa

    names, types = table_schema(path)
    for wanted, what in ((config.row_labels, "row_labels"),
                         (config.time_column, "time_column")):
        if wanted and wanted not in names:
            raise SampleError("missing_column", f"no column {wanted!r} ({what}); the file "
                              f"has: {', '.join(names)}")
    special = {config.row_labels, config.time_column} - {""}
    if config.channels:
        missing = [c for c in config.channels if c not in names]
        if missing:
            raise SampleError("missing_column", f"no column(s) {', '.join(missing)} among "
                              f"{', '.join(names)}; pick channels with --set channels=a,b,c")
        channels = list(config.channels)
    else:
        channels = []
        for name in names:
            if name in special:
                continue
            kind = types[name]
            if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
                channels.append(name)
            elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
                _refuse_numeric_text(path, name)
        if not channels:
            raise SampleError("missing_column", f"no numeric column to use as a channel "
                              f"among {', '.join(names)}")
    for name in channels:
        kind = types[name]
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_null(kind)):
            raise SampleError("bad_value", f"column {name!r} is {kind}, not numbers")
    return TableLayout(names, channels, config.row_labels or None, config.time_column or None)


def _refuse_numeric_text(path: str, name: str) -> None:
    """A text column counts as 'not a channel' (a date, a subject id) unless some of its
    values are numbers: then it is a numeric column with text in it."""
    import pyarrow.compute as pc

    column = read_table_columns(path, [name], text=True)[name]
    looks = pc.sum(pc.match_substring_regex(column, NUMBER)).as_py() or 0
    if looks:
        rows = column.to_pylist()
        bad = next(i for i, v in enumerate(rows) if v is not None and not re.match(NUMBER, v))
        raise SampleError("bad_value", f"column {name!r} holds numbers and text (row {bad}: "
                          f"{rows[bad]!r}); fix the file, or leave the column out with "
                          "--set channels=...")


def read_table_columns(path: str, columns: Sequence[str], text: bool = False) -> dict:
    """Whole columns of a table (arrow arrays), streamed (only these columns are kept)."""
    import pyarrow as pa

    try:
        if suffix(path) in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=list(columns))
        else:
            from pyarrow import csv

            types = {c: pa.string() for c in columns} if text else {}
            table = csv.read_csv(path, parse_options=csv.ParseOptions(delimiter=_delimiter(path)),
                                 convert_options=csv.ConvertOptions(include_columns=list(columns),
                                                                    column_types=types))
    except (pa.ArrowInvalid, OSError) as exc:
        raise _arrow_error(exc) from None
    return {c: table.column(c) for c in columns}


def table_rows(path: str) -> int:
    """A table's row count: Parquet's footer, or a CSV's line count (its sparse index)."""
    if suffix(path) in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # noqa: BLE001 - any footer problem is this file's
            raise _arrow_error(exc) from None
    return line_index(path).rows


@dataclass
class LineIndex:
    header_end: int  # byte offset of the first data row
    offsets: np.ndarray  # byte offset of rows 0, INDEX_EVERY, 2 * INDEX_EVERY, ...
    rows: int
    end: int  # byte offset just past the last data row


_LINE_INDEXES: dict[tuple, LineIndex] = {}


def line_index(path: str) -> LineIndex:
    """The CSV's sparse line index, built by one scan and kept per (path, size, mtime)."""
    info = os.stat(path)
    key = (os.path.abspath(path), info.st_size, info.st_mtime_ns)
    found = _LINE_INDEXES.get(key)
    if found is None:
        found = _scan_lines(path)
        _LINE_INDEXES.clear()  # one file at a time: bounded memory
        _LINE_INDEXES[key] = found
    return found


def _scan_lines(path: str) -> LineIndex:
    """One pass over the file's bytes: the header's end, every INDEX_EVERY-th row start, the
    row count and the end of the data (trailing blank lines are not rows)."""
    offsets: list[np.ndarray] = []
    header_end = -1
    rows = 0
    next_start = 0  # where the next data row starts
    position = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(SCAN_BYTES)
            if not chunk:
                break
            base, position = position, position + len(chunk)
            ends = np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10) + base
            if header_end < 0:
                if not len(ends):
                    continue
                header_end = next_start = int(ends[0]) + 1
                ends = ends[1:]
            if b'"' in chunk[max(0, header_end - base):]:
                _refuse_quotes()
            if len(ends):
                starts = np.concatenate([[next_start], ends[:-1] + 1])
                keep = (np.arange(rows, rows + len(starts)) % INDEX_EVERY) == 0
                offsets.append(starts[keep])
                rows += len(starts)
                next_start = int(ends[-1]) + 1
        if header_end < 0:
            raise SampleError("empty_file", "no header line ending in a newline (a CSV needs "
                              "a header row naming its columns, then its rows)")
        end = next_start
        if position > next_start:  # a last row without a newline
            if rows % INDEX_EVERY == 0:
                offsets.append(np.array([next_start]))
            rows, end = rows + 1, position
        # trailing blank lines are not rows (pyarrow skips them; reading to the end is fine)
        begin = max(header_end, end - 4096)
        handle.seek(begin)
        tail = handle.read(end - begin)
    stripped = tail.rstrip(b" \t\r\n")
    if not stripped and begin == header_end:
        rows = 0
    else:
        newlines = tail[len(stripped):].count(b"\n")
        rows -= max(0, newlines - 1) if tail.endswith(b"\n") else newlines
    index = np.concatenate(offsets) if offsets else np.zeros(0, np.int64)
    return LineIndex(header_end, index[: -(-rows // INDEX_EVERY)].astype(np.int64), rows, end)


def _refuse_quotes() -> None:
    raise SampleError("unsupported", "quoted fields in the data rows: windows of a CSV are "
                      "located by line ends, which quotes may hide; write the table without "
                      "quotes or as Parquet")


def _row_offset(handle, index: LineIndex, row: int) -> int:
    """Byte offset of data row ``row`` (``index.rows``: the end of the data)."""
    if row >= index.rows:
        return index.end
    position = int(index.offsets[row // INDEX_EVERY])
    skip = row % INDEX_EVERY
    while skip:
        handle.seek(position)
        chunk = handle.read(1 << 20)
        ends = np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10)
        if len(ends) >= skip:
            return position + int(ends[skip - 1]) + 1
        skip -= len(ends)
        position += len(chunk)
    return position


def read_table_rows(path: str, layout: TableLayout, start: int, stop: int
                    ) -> tuple[np.ndarray, Any]:
    """Rows ``start:stop`` of the table's channels as float64 (rows, C), and the arrow
    time column of those rows (None without one)."""
    import pyarrow as pa

    wanted = list(layout.channels) + ([layout.time] if layout.time else [])
    try:
        if suffix(path) in (".parquet", ".pq"):
            table = _parquet_rows(path, wanted, start, stop)
        else:
            from pyarrow import csv

            index = line_index(path)
            with open(path, "rb") as handle:
                begin, end = _row_offset(handle, index, start), _row_offset(handle, index, stop)
                handle.seek(begin)
                data = handle.read(end - begin)
            types = {c: pa.float64() for c in layout.channels}
            table = csv.read_csv(
                io.BytesIO(data),
                read_options=csv.ReadOptions(column_names=layout.names),
                parse_options=csv.ParseOptions(delimiter=_delimiter(path)),
                convert_options=csv.ConvertOptions(include_columns=wanted, column_types=types))
    except pa.ArrowInvalid as exc:
        raise _arrow_error(exc, f"rows {start}-{stop - 1}: ") from None
    if table.num_rows != stop - start:
        raise SampleError("ragged_rows", f"rows {start}-{stop - 1}: read {table.num_rows} "
                          f"rows where the file's line count says {stop - start} (blank "
                          "lines in the data?)")
    values = np.empty((stop - start, len(layout.channels)), np.float64)
    for c, name in enumerate(layout.channels):
        column = table.column(name)
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)
                or pa.types.is_null(column.type)):
            raise SampleError("bad_value", f"column {name!r} is {column.type}, not numbers")
        values[:, c] = column.to_numpy(zero_copy_only=False).astype(np.float64) \
            if column.null_count == 0 else \
            column.cast(pa.float64()).fill_null(float("nan")).to_numpy(zero_copy_only=False)
    return values, (table.column(layout.time) if layout.time else None)


def _parquet_rows(path: str, columns: list[str], start: int, stop: int):
    import pyarrow as pa
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    groups, pieces, first = [], [], 0
    for g in range(handle.num_row_groups):
        n = handle.metadata.row_group(g).num_rows
        if first < stop and first + n > start:
            groups.append((g, first))
        first += n
    if not groups:
        return handle.schema_arrow.empty_table().select(columns)
    table = handle.read_row_groups([g for g, _ in groups], columns=columns)
    offset = start - groups[0][1]
    pieces = table.slice(offset, stop - start)
    return pa.Table.from_batches(pieces.to_batches(), schema=pieces.schema) \
        if pieces.num_rows else pieces


def times_in_seconds(column: Any, unit: str) -> np.ndarray:
    """An arrow time column -> float64 seconds (numbers in ``unit``, or timestamps)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    try:
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            return column.to_numpy(zero_copy_only=False).astype(np.float64) * TIME_UNITS[unit]
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            column = pc.cast(column, pa.timestamp("ns"))
            kind = column.type
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            ns = pc.cast(pc.cast(column, pa.timestamp("ns")), pa.int64())
            return ns.to_numpy(zero_copy_only=False).astype(np.float64) * 1e-9
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SampleError("bad_timestamps", f"the time column cannot be read as times: "
                          f"{str(exc).splitlines()[0]}") from None
    raise SampleError("bad_timestamps", f"the time column is {kind}, not numbers or times")


def check_increasing(times: np.ndarray, first_row: int = 0) -> None:
    """Timestamps must increase strictly: duplicated or out-of-order rows are refused."""
    if np.isnan(times).any():
        raise SampleError("bad_timestamps", f"an empty timestamp at row "
                          f"{first_row + int(np.flatnonzero(np.isnan(times))[0])}")
    steps = np.diff(times)
    if len(steps) and not (steps > 0).all():
        row = first_row + int(np.flatnonzero(steps <= 0)[0]) + 1
        what = "duplicated" if steps[row - first_row - 1] == 0 else "earlier than the row before"
        raise SampleError("bad_timestamps", f"the timestamp of row {row} is {what}; sort the "
                          "file by time and drop duplicate rows (mmtok does not guess which "
                          "of two readings is right)")


# --------------------------------------------------------------------------------------
# NumPy arrays
# --------------------------------------------------------------------------------------

LAYOUTS = ("auto", "tc", "ct", "ntc", "nct")


def _npy_header(handle) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(handle)
    reader = {(1, 0): np.lib.format.read_array_header_1_0,
              (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if reader is None:
        raise ValueError(f"unsupported .npy version {version}")
    return reader(handle)


def _npz_key(names: list[str], wanted: str, defaults: Sequence[str], what: str,
             required: bool) -> str | None:
    if wanted:
        if wanted not in names:
            raise SampleError("missing_column", f"no array {wanted!r} ({what}) in the NPZ; it "
                              f"holds: {', '.join(names)}")
        return wanted
    for name in defaults:
        if name in names:
            return name
    if required:
        if len(names) == 1:
            return names[0]
        raise SampleError("missing_column", f"which array holds the data? The NPZ holds "
                          f"{', '.join(names)}; pick one with --set data_key=NAME")
    return None


DATA_KEYS = ("x", "X", "data")
LABEL_KEYS = ("y", "label", "labels")


def array_header(path: str, config: Any) -> tuple[tuple[int, ...], str | None, str | None]:
    """(shape, data key, label key) of an NPY (keys None) or NPZ, from headers only."""
    check_input_file(path)
    try:
        if suffix(path) == ".npy":
            with open(path, "rb") as handle:
                shape, _, dtype = _npy_header(handle)
                data_start = handle.tell()
            _check_dtype(dtype)
            declared = math.prod(shape) * dtype.itemsize
            present = os.path.getsize(path) - data_start
            if declared > present:
                raise SampleError("truncated", f"the header declares {shape} {dtype} "
                                  f"({declared} bytes), the file holds {present}")
            return tuple(shape), None, None
        with zipfile.ZipFile(path) as archive:
            names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
            data = _npz_key(names, config.data_key, DATA_KEYS, "data_key", True)
            label = _npz_key([n for n in names if n != data], config.label_key, LABEL_KEYS,
                             "label_key", False)
            with archive.open(data + ".npy") as member:
                shape, _, dtype = _npy_header(member)
                data_start = member.tell()
            _check_dtype(dtype)
            declared = math.prod(shape) * dtype.itemsize
            present = archive.getinfo(data + ".npy").file_size - data_start
            if declared > present:  # the zip directory's size, before decompressing anything
                raise SampleError("truncated", f"array {data!r} declares {shape} {dtype} "
                                  f"({declared} bytes), its member holds {present}")
            return tuple(shape), data, label
    except SampleError:
        raise
    except Exception as exc:  # noqa: BLE001 - any header problem is this file's
        raise SampleError("decode_error", f"not a readable NumPy file: {type(exc).__name__}: "
                          f"{exc}") from None


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in "biuf":
        raise SampleError("bad_value", f"the array holds {dtype}, not numbers")


def array_layout(shape: tuple[int, ...], layout: str) -> str:
    """The layout of an array of ``shape``: ``tc``/``ct`` (one recording) or ``ntc``/``nct``
    (cases). A 1-D array is one recording of one channel."""
    if len(shape) == 1:
        return "t"
    if len(shape) not in (2, 3):
        raise SampleError("bad_shape", f"an array of shape {shape}: expected (T, C), (C, T), "
                          "(N, T, C) or (N, C, T)")
    if layout == "auto":
        return "tc" if len(shape) == 2 else "ntc"
    if len(layout) != len(shape):
        raise SampleError("bad_shape", f"layout {layout!r} does not fit an array of shape "
                          f"{shape}; use {'tc or ct' if len(shape) == 2 else 'ntc or nct'}")
    return layout


def load_array(path: str, key: str | None) -> np.ndarray:
    """The data array: memory-mapped for NPY, read whole for NPZ (compressed members)."""
    try:
        if key is None:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            return archive[key]
    except Exception as exc:  # noqa: BLE001 - a truncated or damaged array is this file's
        raise SampleError("decode_error", f"{type(exc).__name__}: {exc}") from None


def array_labels(path: str, key: str | None, count: int) -> np.ndarray | None:
    if key is None:
        return None
    labels = load_array(path, key)
    if labels.ndim != 1 or len(labels) != count:
        raise SampleError("bad_label", f"labels {key!r} have shape {labels.shape}, expected "
                          f"({count},)")
    return encode_labels(labels)[0]


# --------------------------------------------------------------------------------------
# UEA / sktime .ts files
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TsHeader:
    problem: str
    dimensions: int | None
    equal_length: bool | None
    series_length: int | None
    class_labels: list[str] | None  # None: the file has no class labels
    missing: bool | None
    data_line: int  # index of the first line after @data


def parse_ts_header(lines: Sequence[str]) -> TsHeader:
    """The ``@`` header of a ``.ts`` file (keys are case-insensitive, ``#`` comments)."""
    values: dict[str, str] = {}
    for number, line in enumerate(lines):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not text.startswith("@"):
            raise SampleError("bad_header", f"line {number + 1} comes before @data but is not "
                              f"a header line: {text[:60]!r}")
        key, _, value = text[1:].partition(" ")
        key = key.lower()
        if key == "data":
            break
        values[key] = value.strip()
    else:
        raise SampleError("bad_header", "no @data line: not a UEA/sktime .ts file")
    if values.get("timestamps", "false").lower() == "true":
        raise SampleError("unsupported", "@timeStamps true (time-stamped values) is not "
                          "supported; export the series without timestamps")

    def flag(name: str) -> bool | None:
        value = values.get(name)
        return None if value is None else value.lower() == "true"

    labels = None
    if "classlabel" in values:
        words = values["classlabel"].split()
        if words and words[0].lower() == "true":
            labels = words[1:]
            if not labels:
                raise SampleError("bad_header", "@classLabel true names no classes")
    dims = values.get("dimensions", values.get("dimension"))
    length = values.get("serieslength")
    try:
        return TsHeader(values.get("problemname", ""), int(dims) if dims else None,
                        flag("equallength"), int(length) if length else None, labels,
                        flag("missing"), number + 1)
    except ValueError as exc:
        raise SampleError("bad_header", f"a header value is not a number: {exc}") from None


def read_ts(path: str) -> tuple[TsHeader, list[str]]:
    """The header and the data lines (blank lines and comments removed) of a ``.ts`` file."""
    check_input_file(path)
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError as exc:
        raise SampleError("decode_error", f"not UTF-8 text: {exc}") from None
    header = parse_ts_header(lines)
    data = [line.strip() for line in lines[header.data_line:]]
    return header, [line for line in data if line and not line.startswith("#")]


def ts_meta(path: str) -> Meta:
    """Cases and labels of a ``.ts`` file; the numbers are not parsed."""
    header, cases = read_ts(path)
    labels = None
    if header.class_labels is not None:
        lookup = {name: i for i, name in enumerate(header.class_labels)}
        labels = np.array([lookup.get(case.rpartition(":")[2].strip(), -1) for case in cases],
                          np.int64)
    return Meta(len(cases), labels, header.class_labels)


def parse_ts_case(line: str, header: TsHeader) -> np.ndarray:
    """One data line -> float64 (T, C), NaN where the file says ``?``."""
    fields = line.split(":")
    if header.class_labels is not None:
        label = fields.pop().strip()
        if label not in header.class_labels:
            raise SampleError("bad_label", f"class {label!r} is not among @classLabel's "
                              f"{' '.join(header.class_labels)}")
    if header.dimensions is not None and len(fields) != header.dimensions:
        raise SampleError("bad_header", f"the case has {len(fields)} channel(s), the header's "
                          f"@dimensions says {header.dimensions}")
    try:
        channels = [np.array(f.replace("?", "nan").split(","), dtype=np.float64)
                    for f in fields]
    except ValueError as exc:
        raise SampleError("bad_value", f"a value is not a number: {exc}") from None
    lengths = {len(c) for c in channels}
    if len(lengths) != 1:
        raise SampleError("ragged_rows", f"the case's channels have different lengths "
                          f"({', '.join(str(len(c)) for c in channels)})")
    steps = lengths.pop()
    if header.series_length is not None and header.equal_length and steps != header.series_length:
        raise SampleError("bad_header", f"the case has {steps} steps, the header's "
                          f"@seriesLength says {header.series_length}")
    if header.missing is False and any(np.isnan(c).any() for c in channels):
        raise SampleError("bad_header", "the case has missing values ('?') but the header "
                          "says @missing false")
    return np.stack(channels, axis=1)


def check_ts_config(config: Any) -> None:
    if config.channels:
        raise UsageError("--set channels names table columns; a .ts file's channels are "
                         "its dimensions in order")


__all__ = ["ARRAY_EXTENSIONS", "EXTENSIONS", "LAYOUTS", "Meta", "TABLE_EXTENSIONS",
           "TIME_UNITS", "TS_EXTENSIONS", "TableLayout", "array_header", "array_labels",
           "array_layout", "check_increasing", "encode_labels", "is_table", "line_index",
           "load_array", "math", "parse_ts_case", "parse_ts_header", "read_table_columns",
           "read_table_rows", "read_ts", "suffix", "table_layout", "table_rows",
           "times_in_seconds", "ts_meta"]
