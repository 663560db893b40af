"""The ``tabular`` modality: one token per column of a table's rows (FT-Transformer's feature
tokenizer), with a schema fitted on the training rows (:mod:`.schema`).

``tokenize --stats-from-data`` fits the schema (column kinds, categorical vocabularies,
numeric quantiles or mean/std) on the training files; ``--config-from TRAIN.zarr`` reuses it
unchanged for validation and test files. Rows come from CSV/TSV/JSONL/Parquet files through
:mod:`mmtok.modalities.rowfiles`; each shard's run of rows is read and transformed in one
vectorised pass.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...errors import MmtokWarning, SampleError, UsageError
from ...sources import PartNumbers, part_numbers
from ...store.layout import ArraySpec
from .. import rowfiles
from ..base import PartsBatch, Tokenizer
from . import schema

EXTENSIONS = rowfiles.ROW_EXTENSIONS
KINDS = ("numeric", "categorical", "boolean")
FIT_BLOCK_ROWS = 1 << 16


def _nested(text: str, item) -> tuple:
    """ "a|b,c|d" -> (("a", "b"), ("c", "d")) """
    return tuple(tuple(item(x) for x in group.split("|")) if group else ()
                 for group in text.split(",")) if text else ()


class DroppedColumnWarning(MmtokWarning):
    """A column the fitted schema leaves out (every cell distinct or missing, too many
    distinct values); the store's ``config.dropped`` lists them with the reason."""


@dataclass(frozen=True)
class TabularConfig:
    modality: str = "tabular"
    # how the schema is fitted (kinds are overridable per column)
    categorical: tuple[str, ...] = ()  # columns forced categorical
    numeric: tuple[str, ...] = ()  # columns forced numeric
    drop: tuple[str, ...] = ()  # columns left out
    numeric_transform: str = "quantile"  # "quantile" (to a normal, FT-Transformer) or "standard"
    n_quantiles: int = 1000
    quantile_subsample: int = 100_000  # rows (strided, deterministic) the quantiles come from
    max_categories: int = 200  # integer columns with fewer distinct values are categorical
    max_vocabulary: int = 10_000  # text columns with more distinct values are dropped
    min_frequency: int = 1  # rarer values are not in the vocabulary (they map to unknown)
    bad_cells: str = "missing"  # unparsable numeric cells: "missing" (flagged) or "error"
    max_row_bytes: int = 1 << 20  # longer rows are too_large, never parsed
    # the fitted schema (tokenize --stats-from-data; reused with --config-from)
    columns: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    vocabularies: tuple[tuple[str, ...], ...] = ()  # one per categorical/boolean column
    numeric_params: tuple[tuple[float, ...], ...] = ()  # one per numeric column
    dropped: tuple[str, ...] = ()  # the fit's notes on the columns it left out

    def __post_init__(self) -> None:
        for name, item in (("vocabularies", str), ("numeric_params", float)):
            value = getattr(self, name)
            if isinstance(value, str):  # the --set form: "a|b,c|d" (one group per column)
                value = _nested(value, item)
            else:  # JSON gives lists: make them tuples
                value = tuple(tuple(item(x) for x in v) for v in value)
            object.__setattr__(self, name, value)
        for name in ("categorical", "numeric", "drop", "columns", "kinds", "dropped"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, tuple(value.split(",")) if value else ())
        problems = []
        if self.numeric_transform not in ("quantile", "standard"):
            problems.append(f"numeric_transform must be 'quantile' or 'standard', not "
                            f"{self.numeric_transform!r}")
        if self.bad_cells not in ("missing", "error"):
            problems.append(f"bad_cells must be 'missing' or 'error', not {self.bad_cells!r}")
        for name in ("n_quantiles", "quantile_subsample", "max_vocabulary", "min_frequency"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        both = sorted(set(self.categorical) & set(self.numeric))
        if both:
            problems.append(f"columns {both} are forced both categorical and numeric")
        if len(self.kinds) != len(self.columns) or set(self.kinds) - set(KINDS):
            problems.append("kinds must give numeric, categorical or boolean for each column")
        n_cat = sum(k != "numeric" for k in self.kinds)
        if len(self.vocabularies) != n_cat or \
                len(self.numeric_params) != len(self.kinds) - n_cat:
            problems.append("the fitted schema is inconsistent (vocabularies / numeric_params "
                            "do not match kinds); refit with --stats-from-data")
        if len(set(self.columns)) != len(self.columns):
            problems.append("columns are named twice")
        if problems:
            raise UsageError("; ".join(problems))


class TabularTokenizer(Tokenizer):
    extensions = EXTENSIONS
    list_parts_label_column = True
    max_shard_samples = 65536  # ~100 bytes a row: 4096-row shards cost more to write than to make

    def __init__(self, config: TabularConfig) -> None:
        self.config = config
        kinds = config.kinds
        self.numeric_columns = [c for c, k in zip(config.columns, kinds) if k == "numeric"]
        self.categorical_columns = [c for c, k in zip(config.columns, kinds) if k != "numeric"]
        self.params = [np.array(p, np.float64) for p in config.numeric_params]

    def sample_arrays(self) -> dict[str, ArraySpec]:
        # at least one slot each (zarr cannot shard a zero-width array): a table without
        # numeric (or categorical) columns keeps one zero slot that the projector ignores
        return {"numeric": ArraySpec((max(1, len(self.numeric_columns)),), "float32"),
                "categorical": ArraySpec((max(1, len(self.categorical_columns)),), "int32"),
                "missing": ArraySpec((len(self.config.columns),), "bool")}

    def static_arrays(self) -> dict[str, np.ndarray]:
        # called once before a store is created: a run without a schema stops here, before
        # any store or shard exists
        self._require_schema()
        return {}

    def _require_schema(self) -> None:
        if not self.config.columns:
            raise UsageError("the tabular tokenizer needs a schema fitted on training data: "
                             "tokenize the training file with --stats-from-data, then other "
                             "files with --config-from TRAIN.zarr")

    # --- listing ------------------------------------------------------------------------
    def list_parts(self, path: str, label_column: str | None = None):  # type: ignore[override]
        rowfiles.require_rows(path)
        names = rowfiles.column_names(path)
        missing = [c for c in self.config.columns if c not in names]
        if missing:
            raise UsageError(f"{path} lacks the schema's columns {missing}; its columns are: "
                             f"{', '.join(names)}")
        label = rowfiles.label_column_for(path, label_column)
        if label is not None and label in self.config.columns:
            raise UsageError(f"the label column {label!r} is one of the schema's feature "
                             "columns; pick another --label-column or refit without it")
        return rowfiles.list_row_parts(path, label_column)

    # --- fitting ------------------------------------------------------------------------
    def statistics_from(self, paths: list[str], label_column: str | None = None) -> dict:
        c = self.config
        names = None
        label = None
        for path in paths:
            rowfiles.require_rows(path)
            these = rowfiles.column_names(path)
            names = these if names is None else [n for n in names if n in these]
            label = rowfiles.label_column_for(path, label_column)
        unknown = sorted((set(c.categorical) | set(c.numeric) | set(c.drop)) - set(names))
        if unknown:
            raise UsageError(f"--set categorical/numeric/drop name columns {unknown} that the "
                             f"data lacks; its columns are: {', '.join(names)}")
        candidates = [n for n in names if n != label and n not in c.drop]
        if not candidates:
            raise UsageError(f"no feature columns left (columns: {', '.join(names)}; label "
                             f"{label!r}, dropped {list(c.drop)})")
        total = sum(rowfiles.row_index(p).num_rows for p in paths)
        stride = max(1, -(-total // c.quantile_subsample))
        stats = {n: schema.ColumnStats(cap=c.max_vocabulary) for n in candidates}
        seen = 0
        for path in paths:
            num_rows = rowfiles.row_index(path).num_rows
            for start in range(0, num_rows, FIT_BLOCK_ROWS):
                # a column already seen to hold floats is parsed as floats (strings where a
                # cell is not one): its statistics are the same, at a fraction of the cost
                floats = [n for n in candidates if stats[n].float_column()]
                block = rowfiles.read_rows(path, start, min(start + FIT_BLOCK_ROWS, num_rows),
                                           candidates, try_types=_float64(floats))
                rows = seen + block.rows
                pick = np.flatnonzero(rows % stride == 0)
                for n in candidates:
                    stats[n].add(block.table.column(n), pick)
                seen += len(block.rows) + len(block.errors)
        columns, kinds, vocabularies, params, notes = [], [], [], [], []
        for n in candidates:
            forced = "numeric" if n in c.numeric else "categorical" if n in c.categorical else None
            kind, vocabulary, note = schema.decide(n, stats[n], c.max_categories,
                                                   c.min_frequency, forced)
            if note:
                notes.append(note)
                warnings.warn(f"tabular: {note}", DroppedColumnWarning, stacklevel=2)
            if kind == "drop":
                continue
            columns.append(n)
            kinds.append(kind)
            if kind == "numeric":
                sample = (np.concatenate(stats[n].sample) if stats[n].sample
                          else np.zeros(0))
                if c.numeric_transform == "quantile":
                    params.append(schema.quantiles(sample, c.n_quantiles))
                else:
                    st = stats[n]
                    count = max(1, st.present - st.bad)
                    mean = st.total / count
                    std = float(np.sqrt(max(0.0, st.total_sq / count - mean * mean)))
                    params.append((mean, std if std > 0 else 1.0))
            else:
                vocabularies.append(vocabulary)
        if not columns:
            raise UsageError("the fit dropped every column: " + "; ".join(notes))
        return {"columns": tuple(columns), "kinds": tuple(kinds),
                "vocabularies": tuple(vocabularies), "numeric_params": tuple(params),
                "dropped": tuple(notes)}

    def tally(self, arrays, valid):
        """Missing cells per column among the valid rows (empty, NaN/inf, or unparsable in a
        numeric column under ``bad_cells=missing``)."""
        counts = np.count_nonzero(arrays["missing"][valid], axis=0)
        return {f"missing {name}": int(n) for name, n in zip(self.config.columns, counts)}

    # --- tokenizing ---------------------------------------------------------------------
    def tokenize_parts(self, path, parts):
        """One :class:`PartsBatch` for the rows ``parts``: each run of consecutive rows (a
        shard's rows are one) read and transformed in one pass, copied in whole; its counts
        are the unparsable cells per numeric column among the rows that succeeded."""
        self._require_schema()
        if not isinstance(parts, PartNumbers) and any(p is None for p in parts):
            raise SampleError("not_a_row", "a tabular sample is a row of a table "
                              "(CSV/TSV/JSONL/Parquet), not a whole file")
        rows = part_numbers(parts)
        arrays = {name: np.zeros((len(rows), *spec.shape), spec.dtype)
                  for name, spec in self.sample_arrays().items()}
        errors: dict[int, SampleError] = {}
        unparsable = np.zeros(len(self.numeric_columns), np.int64)
        order = np.argsort(rows, kind="stable")
        for first, last in _runs(rows[order]):
            block = rowfiles.read_rows(path, first, last, list(self.config.columns),
                                       max_row_bytes=self.config.max_row_bytes,
                                       try_types=_float64(self.numeric_columns))
            parsed, cell_errors, bad = self.transform(block.table, with_bad_cells=True)
            position = np.full(last - first, -1, np.int64)  # run row -> row of ``parsed``
            position[block.rows] = np.arange(len(block.rows))
            slots = order[(rows[order] >= first) & (rows[order] < last)]
            if block.errors or cell_errors:
                done = []
                for slot in slots.tolist():
                    row = int(rows[slot]) - first
                    if row in block.errors:
                        errors[slot] = block.errors[row]
                    elif int(position[row]) in cell_errors:
                        errors[slot] = cell_errors[int(position[row])]
                    else:
                        done.append(slot)
                done = np.array(done, np.int64)
            else:
                done = slots
            taken = position[rows[done] - first]
            for name, values in parsed.items():
                arrays[name][done] = values[taken]
            unparsable += np.count_nonzero(bad[taken], axis=0)
        counts = {f"unparsable {name}": int(n)
                  for name, n in zip(self.numeric_columns, unparsable) if n}
        return PartsBatch(arrays, errors, len(rows), counts)

    def transform(self, table, with_bad_cells: bool = False):
        """The token arrays of every row of ``table`` (a pyarrow table with the schema's
        columns), and per-row errors for unparsable cells when ``bad_cells=error``; with
        ``with_bad_cells`` also the (rows, numeric columns) mask of unparsable cells."""
        import pyarrow as pa
        import pyarrow.compute as pc

        n = table.num_rows
        c = self.config
        numeric = np.zeros((n, max(1, len(self.numeric_columns))), np.float32)
        categorical = np.zeros((n, max(1, len(self.categorical_columns))), np.int32)
        missing = np.zeros((n, len(c.columns)), bool)
        errors: dict[int, SampleError] = {}
        unparsable = np.zeros((n, len(self.numeric_columns)), bool)
        j_num = j_cat = 0
        for j, (name, kind) in enumerate(zip(c.columns, c.kinds)):
            column = table.column(name)
            if kind == "numeric":
                values, bad = schema.as_float(column)
                unparsable[:, j_num] = bad
                if bad.any() and c.bad_cells == "error":
                    for i in np.flatnonzero(bad):
                        errors.setdefault(int(i), SampleError(
                            "bad_cell", f"column {name!r}: {column[int(i)].as_py()!r} is not "
                            "a number (--set bad_cells=missing flags such cells as missing)"))
                gone = np.isnan(values)
                p = self.params[j_num]
                if c.numeric_transform == "quantile":
                    out = schema.quantile_normal(np.where(gone, p[0], values), p)
                else:
                    out = (values - p[0]) / p[1]
                numeric[:, j_num] = np.where(gone, 0.0, out)
                missing[:, j] = gone
                j_num += 1
            else:
                vocabulary = c.vocabularies[j_cat]
                if kind == "boolean":
                    text = pc.utf8_lower(schema.as_text(column))
                else:
                    text = schema.as_text(column, integer=_looks_integer(vocabulary, column))
                index = pc.index_in(text, value_set=pa.array(list(vocabulary), pa.string()))
                gone = text.is_null().to_numpy(zero_copy_only=False)
                ids = index.fill_null(len(vocabulary)).to_numpy(zero_copy_only=False)
                categorical[:, j_cat] = np.where(gone, len(vocabulary) + 1, ids)
                missing[:, j] = gone
                j_cat += 1
        arrays = {"numeric": numeric, "categorical": categorical, "missing": missing}
        return (arrays, errors, unparsable) if with_bad_cells else (arrays, errors)


def _float64(columns: Sequence[str]) -> dict:
    """``rowfiles.read_rows``'s ``try_types`` for numeric columns: a CSV cell parsed as a
    float64 by pyarrow's reader is the value :func:`schema.as_float` makes of its text (the
    same parser, whitespace trimmed, the same null strings), and a cell it cannot parse
    makes the reader fall back to the text, which ``as_float`` then flags."""
    import pyarrow as pa

    return {name: pa.float64() for name in columns}


def _looks_integer(vocabulary: Sequence[str], column) -> bool:
    """Whether a categorical column holds integer categories ('3' == '3.0' == 3): its
    vocabulary is all integers, or the column's cells are numbers."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return True
    return bool(vocabulary) and all(_is_int(v) for v in vocabulary)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    if len(rows) == 0:
        return []
    cuts = np.flatnonzero(np.diff(rows) != 1) + 1
    return [(int(p[0]), int(p[-1]) + 1) for p in np.split(rows, cuts)]
