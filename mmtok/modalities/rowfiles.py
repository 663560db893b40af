"""Row files: CSV, TSV, JSONL and Parquet files whose rows are samples (ids ``FILE#ROW``).

Shared by every modality whose samples are table rows (``text``, ``tabular``; written to be
shared by others, e.g. time series). What it offers:

- :func:`row_index` — the rows of a file from a cheap pass: Parquet's metadata, or one
  vectorised byte scan of a text format that finds every row's start (CSV quotes are
  respected, so a newline inside a quoted value does not end the row; blank lines are not
  rows). The index holds one int64 offset per row and is cached per process.
- :func:`column_names` — the header (CSV/TSV), the first row's keys (JSONL) or the schema.
- :func:`read_rows` — rows ``[start, stop)`` of chosen columns as a ``pyarrow.Table``,
  reading only those rows' bytes (text formats) or row groups (Parquet). A row that does not
  parse (ragged, bad JSON, bad UTF-8) becomes its own ``SampleError`` with its line number;
  the other rows are read.
- :func:`iter_row_blocks` — the whole file in blocks of rows, for a streaming statistics
  pass whose memory does not grow with the file.
- :func:`list_row_parts` / :func:`check_label_column` — listing for ``list_parts``: part
  names ``"0".."N-1"`` with the label column's values.

pyarrow does the parsing (multi-threaded C++); nothing here imports torch.
"""

from __future__ import annotations

import functools
import io
import json
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from ..errors import SampleError, UsageError
from .files import check_input_file

ROW_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
SCAN_BLOCK = 1 << 20  # bytes per step of the row scan (its temporaries: at most ~10x this)
DEFAULT_LABEL_COLUMN = "label"


def is_row_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in ROW_EXTENSIONS


def file_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".parquet": "parquet"}[ext]


@dataclass(frozen=True)
class RowIndex:
    """Where a file's data rows are: row ``i`` is bytes ``[starts[i], ends[i])`` (text
    formats); Parquet keeps its row groups' first rows (``group_starts``, + num_rows)."""

    path: str
    format: str
    num_rows: int
    starts: np.ndarray | None  # (num_rows,) int64 for text formats
    ends: np.ndarray | None
    header_end: int  # bytes of the header row (CSV/TSV), 0 otherwise
    group_starts: np.ndarray | None = None

    def row_bytes(self, start: int, stop: int) -> np.ndarray:
        if self.starts is None:
            return np.zeros(stop - start, np.int64)
        return self.ends[start:stop] - self.starts[start:stop]


def row_index(path: str) -> RowIndex:
    """The file's :class:`RowIndex` (cached per process while the file is unchanged).
    Raises ``SampleError`` for a file that cannot be read (kept as a listing problem)."""
    check_input_file(path)
    info = os.stat(path)
    return _row_index(os.path.abspath(path), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _row_index(path: str, size: int, mtime_ns: int) -> RowIndex:
    fmt = file_format(path)
    if fmt == "parquet":
        meta = _parquet_file(path).metadata
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        return RowIndex(path, fmt, int(meta.num_rows), None, None, 0, starts)
    # each row starts where the previous one ended: both are views of one array of row
    # boundaries (8 bytes a row)
    bounds = _scan_row_bounds(path, quoted=fmt in ("csv", "tsv"))
    starts, ends = bounds[:-1], bounds[1:]
    keep = _non_blank(path, starts, ends)
    if not keep.all():  # copies (16 bytes a row) only where there are blank lines
        starts, ends = starts[keep], ends[keep]
    header_end = 0
    if fmt in ("csv", "tsv"):
        if len(starts) == 0:
            raise SampleError("empty_file", "the file holds no header row")
        header_end = int(ends[0])
        starts, ends = starts[1:], ends[1:]
    return RowIndex(path, fmt, len(starts), starts, ends, header_end)


def _scan_row_bounds(path: str, quoted: bool) -> np.ndarray:
    """0, then the byte offset just past every row-ending newline (and the file's end when
    the last row has no newline). With ``quoted``, a newline inside double quotes does not
    end a row: RFC 4180 doubles quotes inside values, so the quote count's parity says
    whether a newline is inside a value."""
    ends = [np.zeros(1, np.int64)]
    parity = 0
    position = 0
    last = b""
    # one scan block's temporaries at a time; the offsets (8 bytes a row) are the result
    with open(path, "rb") as handle:
        while True:
            block = handle.read(SCAN_BLOCK)
            if not block:
                break
            data = np.frombuffer(block, np.uint8)
            newlines = np.flatnonzero(data == 10)
            if quoted and (parity or block.find(b'"') >= 0):
                # the quotes before each newline (a binary search per newline, not a
                # running count per byte): an odd count puts the newline inside a value
                quotes = np.flatnonzero(data == 34)
                inside = (np.searchsorted(quotes, newlines) + parity) & 1
                newlines = newlines[inside == 0]
                parity = (parity + len(quotes)) & 1
            ends.append(newlines.astype(np.int64) + position + 1)
            position += len(block)
            last = block[-1:]
    if position and last != b"\n":
        ends.append(np.array([position], np.int64))
    return np.concatenate(ends)


def _non_blank(path: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Rows that are not blank lines (``\\n`` or ``\\r\\n`` alone)."""
    keep = np.ones(len(starts), bool)
    short = np.flatnonzero(ends - starts <= 2)
    if len(short):
        with open(path, "rb") as handle:
            for i in short:
                handle.seek(int(starts[i]))
                if handle.read(int(ends[i] - starts[i])).strip(b"\r\n") == b"":
                    keep[i] = False
    return keep


def _parquet_file(path: str):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a broken file
        raise SampleError("decode_error", f"not a readable Parquet file: {exc}") from None


def column_names(path: str) -> list[str]:
    """The file's column names, in file order. Duplicate names are a usage error."""
    index = row_index(path)
    if index.format == "parquet":
        names = list(_parquet_file(path).schema_arrow.names)
    elif index.format == "jsonl":
        if index.num_rows == 0:
            return []
        with open(path, "rb") as handle:
            handle.seek(int(index.starts[0]))
            first = handle.read(int(index.row_bytes(0, 1)[0]))
        try:
            row = json.loads(first)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: the first row is not a JSON object ({exc}); the "
                             "column names come from it") from None
        if not isinstance(row, dict):
            raise UsageError(f"{path}: the first row is not a JSON object; each JSONL line "
                             "must be one object of column -> value")
        names = list(row)
    else:
        import csv

        with open(path, "rb") as handle:
            header = handle.read(index.header_end).decode("utf-8", "replace")
        names = next(csv.reader(io.StringIO(header),
                                delimiter="\t" if index.format == "tsv" else ","), [])
        names = [n.strip() for n in names]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"{path}: duplicate column names {duplicates}; rename them so each "
                         "column is named once")
    return names


def require_rows(path: str) -> RowIndex:
    """The index of a file that holds data rows. A header-only file (or a JSONL/Parquet file
    of no rows) is a usage error: nothing to tokenize, and more likely the wrong file than an
    intended one. A file that cannot be read at all (zero bytes, not Parquet) raises its
    ``SampleError``, which listing records as that file's problem like any bad file's."""
    index = row_index(path)  # an unreadable file stays a SampleError: recorded, not fatal
    if index.num_rows == 0:
        raise UsageError(f"{path} holds no data rows (empty or header only)")
    return index


def require_column(path: str, column: str, what: str, option: str) -> None:
    names = column_names(path)
    if column not in names:
        raise UsageError(f"{path} has no {what} column {column!r}; its columns are: "
                         f"{', '.join(names)}; choose one with {option}")


@dataclass
class RowBlock:
    """Rows ``[start, stop)`` of a file: ``table`` holds the rows that parsed, whose
    positions (0-based, relative to ``start``) are ``rows``; ``errors`` maps the position of
    each row that did not parse to its error."""

    table: object  # pyarrow.Table
    rows: np.ndarray
    errors: dict[int, SampleError]


def read_rows(path: str, start: int, stop: int, columns: Sequence[str],
              types: dict | None = None, null_strings: bool = True,
              max_row_bytes: int | None = None, encoding: str = "utf-8",
              try_types: dict | None = None) -> RowBlock:
    """Rows ``[start, stop)`` of ``columns``. ``types`` maps a column to a pyarrow type (CSV
    reads every other column as strings); ``null_strings`` makes empty and ``NA``-like CSV
    cells null; a row longer than ``max_row_bytes`` is a ``too_large`` error, never read.

    ``try_types`` (CSV/TSV) are types to parse columns as when every cell of the rows
    converts (say ``float64`` for a numeric column: pyarrow's parser converts while it
    reads, cheaper than strings converted afterwards); where one cell does not, the rows
    are read again with ``types`` alone, so a caller sees either the typed column or the
    strings it would have got without them."""
    index = row_index(path)
    errors: dict[int, SampleError] = {}
    wanted = np.arange(start, stop)
    if max_row_bytes is not None and index.starts is not None:
        sizes = index.row_bytes(start, stop)
        for i in np.flatnonzero(sizes > max_row_bytes):
            errors[int(i)] = SampleError(
                "too_large", f"line {line_number(index, start + int(i))}: the row is "
                f"{int(sizes[i])} bytes, more than the limit ({max_row_bytes}); raise max_chars")
        wanted = wanted[sizes <= max_row_bytes]
    if index.format == "parquet":
        return _read_parquet(index, start, stop, columns)
    tables, rows = [], []
    for first, last in _runs(wanted):
        table, good, bad = _read_text_rows(index, first, last, columns, types or {},
                                           null_strings, encoding, try_types)
        tables.append(table)
        rows.append(good - start)
        errors.update({k - start: v for k, v in bad.items()})
    import pyarrow as pa

    if not tables:
        return RowBlock(_empty_table(columns), np.zeros(0, np.int64), errors)
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return RowBlock(table, np.concatenate(rows), errors)


def _empty_table(columns):
    import pyarrow as pa

    return pa.table({c: pa.array([], pa.string()) for c in columns})


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    if len(rows) == 0:
        return []
    cuts = np.flatnonzero(np.diff(rows) != 1) + 1
    return [(int(part[0]), int(part[-1]) + 1) for part in np.split(rows, cuts)]


def _read_bytes(index: RowIndex, first: int, last: int) -> bytes:
    begin, end = int(index.starts[first]), int(index.ends[last - 1])
    with open(index.path, "rb") as handle:
        handle.seek(begin)
        return handle.read(end - begin)


def _read_text_rows(index, first, last, columns, types, null_strings, encoding,
                    try_types=None):
    """Rows [first, last) of a text format: one parse of their bytes (first with
    ``try_types`` over ``types``, CSV/TSV only); if that fails, each row alone, so that a
    bad row's error stays on it."""
    data = _read_bytes(index, first, last)
    attempts = [types]
    if try_types and index.format in ("csv", "tsv"):
        attempts.insert(0, {**types, **try_types})
    for attempt in attempts:
        try:
            table = _parse(index, data, columns, attempt, null_strings, encoding)
            if table.num_rows == last - first:
                return table, np.arange(first, last), {}
        except _ParseError:
            pass
    tables, good, bad = [], [], {}
    for row in range(first, last):
        try:
            table = _parse(index, _read_bytes(index, row, row + 1), columns, types,
                           null_strings, encoding)
            if table.num_rows != 1:
                raise _ParseError(f"holds {table.num_rows} rows")
        except _ParseError as exc:
            kind = "encoding_error" if exc.encoding else "bad_row"
            bad[row] = SampleError(kind, f"line {line_number(index, row)}: {exc}")
            continue
        tables.append(table)
        good.append(row)
    import pyarrow as pa

    table = pa.concat_tables(tables) if tables else _empty_table(columns)
    return table, np.array(good, np.int64), bad


class _ParseError(Exception):
    def __init__(self, message: str, encoding: bool = False) -> None:
        super().__init__(message)
        self.encoding = encoding


def _parse(index: RowIndex, data: bytes, columns, types, null_strings, encoding):
    import pyarrow as pa

    if index.format == "jsonl":
        return _parse_jsonl(data, columns, types, encoding)
    import pyarrow.csv as pacsv

    names = _header(index.path)
    if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        try:
            data = data.decode(encoding).encode("utf-8")
        except (UnicodeDecodeError, LookupError) as exc:
            raise _ParseError(f"cannot decode as {encoding}: {exc}", encoding=True) from None
    column_types = {c: types.get(c, pa.string()) for c in columns}
    try:
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=True,
                                           block_size=max(1 << 20, min(len(data) + 1, 64 << 20))),
            parse_options=pacsv.ParseOptions(delimiter="\t" if index.format == "tsv" else ",",
                                             newlines_in_values=True, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types=column_types,
                                                 include_columns=list(columns),
                                                 strings_can_be_null=null_strings,
                                                 quoted_strings_can_be_null=False,
                                                 check_utf8=True),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        text = str(exc)
        if "UTF8" in text or "utf8" in text or "UTF-8" in text:
            raise _ParseError("not valid UTF-8 (pass --set encoding=... for another "
                              "encoding)", encoding=True) from None
        raise _ParseError(text.splitlines()[0][:300]) from None


@functools.lru_cache(maxsize=16)
def _header_cached(path: str, size: int, mtime_ns: int) -> tuple[str, ...]:
    return tuple(column_names(path))


def _header(path: str) -> list[str]:
    info = os.stat(path)
    return list(_header_cached(path, info.st_size, info.st_mtime_ns))


def _parse_jsonl(data: bytes, columns, types, encoding):
    import pyarrow as pa

    values: dict[str, list] = {c: [] for c in columns}
    for line in data.split(b"\n"):
        if not line.strip(b"\r\n \t"):
            continue
        try:
            text = line.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise _ParseError(f"cannot decode as {encoding}: {exc}", encoding=True) from None
        try:
            row = json.loads(text)
        except ValueError as exc:
            raise _ParseError(f"not JSON: {exc}") from None
        if not isinstance(row, dict):
            raise _ParseError("not a JSON object")
        for c in columns:
            values[c].append(row.get(c))
    arrays = {}
    for c in columns:
        kind = types.get(c)
        cells = values[c]
        if kind is None or pa.types.is_string(kind):
            cells = [None if v is None else v if isinstance(v, str) else json.dumps(v)
                     if isinstance(v, (dict, list)) else _scalar_text(v) for v in cells]
            arrays[c] = pa.array(cells, pa.string())
        elif pa.types.is_binary(kind):
            cells = [None if v is None else (v if isinstance(v, str) else _scalar_text(v))
                     .encode("utf-8") for v in cells]
            arrays[c] = pa.array(cells, pa.binary())
        else:
            try:
                arrays[c] = pa.array(cells, kind)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
                raise _ParseError(f"column {c!r}: {exc}") from None
    return pa.table(arrays) if arrays else pa.table({"_": pa.array([None] * len(values))})


def _scalar_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def line_number(index: RowIndex, row: int) -> int:
    """The 1-based physical line of data row ``row`` (error messages only: it counts the
    newlines before the row)."""
    if index.starts is None:
        return row + 1
    target = int(index.starts[row])
    count = 0
    with open(index.path, "rb") as handle:
        remaining = target
        while remaining > 0:
            block = handle.read(min(SCAN_BLOCK, remaining))
            if not block:
                break
            count += block.count(b"\n")
            remaining -= len(block)
    return count + 1


# --- Parquet ------------------------------------------------------------------------------

_GROUP_CACHE: dict = {}


def _read_parquet(index: RowIndex, start: int, stop: int, columns) -> RowBlock:
    """Rows [start, stop) from the row groups that hold them. The last row group read is
    kept (one per process), so consecutive shards inside one large row group decode it once."""
    import pyarrow as pa

    starts = index.group_starts
    first = int(np.searchsorted(starts, start, side="right") - 1)
    last = int(np.searchsorted(starts, stop, side="left"))
    pieces = []
    for group in range(first, last):
        table = _parquet_group(index, group, tuple(columns))
        lo = max(start, int(starts[group])) - int(starts[group])
        hi = min(stop, int(starts[group + 1])) - int(starts[group])
        pieces.append(table.slice(lo, hi - lo))
    table = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
    return RowBlock(table, np.arange(stop - start), {})


def _parquet_group(index: RowIndex, group: int, columns: tuple[str, ...]):
    key = (index.path, index.num_rows, group, columns)
    if _GROUP_CACHE.get("key") != key:
        _GROUP_CACHE.clear()
        try:
            table = _parquet_file(index.path).read_row_group(group, columns=list(columns))
        except SampleError:
            raise
        except Exception as exc:
            raise SampleError("decode_error", f"row group {group} does not decode: {exc}") \
                from None
        _GROUP_CACHE.update(key=key, table=table)
    return _GROUP_CACHE["table"]


def iter_row_blocks(path: str, columns: Sequence[str], block_rows: int = 65536,
                    **options) -> Iterator[tuple[int, RowBlock]]:
    """``(start, block)`` over the whole file in blocks of ``block_rows`` rows (Parquet:
    at most one row group at a time), so a pass over a file of any size holds one block."""
    index = row_index(path)
    for start in range(0, index.num_rows, block_rows):
        yield start, read_rows(path, start, min(start + block_rows, index.num_rows),
                               columns, **options)


# --- listing --------------------------------------------------------------------------------


def label_column_for(path: str, label_column: str | None) -> str | None:
    """The column labels come from: ``label_column`` when given (a usage error, listing the
    columns, when the file has none by that name), else ``label`` when present, else none."""
    names = column_names(path)
    if label_column is not None:
        if label_column not in names:
            raise UsageError(f"{path} has no label column {label_column!r}; its columns "
                             f"are: {', '.join(names)}; choose one with --label-column")
        return label_column
    return DEFAULT_LABEL_COLUMN if DEFAULT_LABEL_COLUMN in names else None


def list_row_parts(path: str, label_column: str | None):
    """``list_parts`` for a row file: a :class:`~mmtok.sources.PartRange` of its N rows
    (parts ``"0".."N-1"``), with each row's label (its text, as a class name) when the file
    has a label column. Reads the row index and the label column only, a block at a time;
    the labels are one int32 array (codes into the texts seen), never a list per row."""
    from ..sources import PartRange

    index = require_rows(path)
    column = label_column_for(path, label_column)
    if column is None:
        return PartRange(index.num_rows)
    labels = np.full(index.num_rows, -1, np.int32)
    texts: dict[str, int] = {}
    for start, block in iter_row_blocks(path, [column], block_rows=1 << 16):
        encoded = block.table.column(column).combine_chunks().dictionary_encode()
        local = np.array([-1 if value in (None, "") else
                          texts.setdefault(_scalar_text(value), len(texts))
                          for value in encoded.dictionary.to_pylist()] + [-1], np.int32)
        codes = encoded.indices.fill_null(len(local) - 1).to_numpy(zero_copy_only=False)
        labels[start + block.rows] = local[codes]
    return PartRange(index.num_rows, labels, tuple(texts))
