"""The ``timeseries`` and ``imu`` tokenizer: a recording or a case -> float32 (T, C) steps.

A sample is a window of a long recording (a table, a 2-D array; ids ``FILE#t=START``, START
the first step) or one case of a case file (a ``.ts`` file, a 3-D array; ids ``FILE#CASE``).
Windows: ``window`` steps every ``stride`` steps, so a recording of T >= window steps gives
``floor((T - window) / stride) + 1`` full windows in order; ``tail="pad"`` adds one more
window from the next start when steps are left over (its ``length`` says how many are real),
``tail="drop"`` (default) does not. A recording shorter than one window is ``too_short``
with ``drop``, one padded window with ``pad``. A case is padded to ``window`` steps; a longer
case is ``too_long`` (raise ``window``).

Per sample: missing values (NaN, ``?``) are interpolated linearly over gaps of at most
``max_gap`` steps (gaps at an end take the nearest value); a longer gap, or a channel with no
value at all, is ``missing_values``. Infinite values are ``bad_value``. Then the global
per-channel scaling (``scaling="standard"``: ``(x - mean) / std`` with the training data's
statistics, fitted by ``tokenize --stats-from-data`` and reused with ``--config-from``), and
the sample's own per-channel mean and ``sqrt(var + 1e-5)`` over its real steps (RevIN/PatchTST
instance norm uses them at embed time). Padding steps are zeros.

With ``rate`` and a table's ``time_column`` the recording is first resampled (linear
interpolation) to ``rate`` Hz on a grid starting at its first timestamp; timestamps must
increase strictly (duplicated or out-of-order rows are refused, not sorted).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...errors import SampleError, UsageError
from ...sources import PartRange, SteppedNames
from ...store.layout import ArraySpec
from ..base import Tokenizer
from . import readers
from .readers import EXTENSIONS, Meta

INSTANCE_EPS = 1e-5  # PatchTST / RevIN: std = sqrt(var + 1e-5)
WINDOW_PART = re.compile(r"t=(\d+)")
CASE_PART = re.compile(r"\d+")
CASE_BLOCK = 4096  # cases of a 3-D array read at a time


@dataclass(frozen=True)
class TimeSeriesConfig:
    modality: str = "timeseries"
    preset: str = "none"
    window: int = 96  # steps per sample (a case is padded to it)
    stride: int = 0  # steps between window starts; 0 = window (no overlap)
    tail: str = "drop"  # "drop" or "pad": the steps after the last full window
    num_channels: int = 0  # C; 0 = len(channels), or fitted by --stats-from-data
    channels: tuple[str, ...] = ()  # table columns to use, in order (default: every numeric one)
    time_column: str = ""
    time_unit: str = "s"  # a numeric time column's unit: s, ms, us, ns
    row_labels: str = ""
    label_rule: str = "last"  # a window's label: "last" step's, or "majority" of its steps
    data_key: str = ""  # NPZ array holding the data (default x, X, data, or the only one)
    label_key: str = ""  # NPZ array holding labels (default y, label, labels)
    layout: str = "auto"  # arrays: auto (tc for 2-D, ntc for 3-D), tc, ct, ntc, nct
    rate: float = 0.0  # Hz; with a time column, resample to it; else only recorded
    units: tuple[str, ...] = ()  # per channel, recorded
    max_gap: int = 0  # longest run of missing steps filled by interpolation
    scaling: str = "standard"  # "standard" (fitted on training data) or "none"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.window < 1:
            problems.append(f"window must be at least 1, not {self.window}")
        if self.stride < 0:
            problems.append(f"stride must be 0 (= window) or positive, not {self.stride}")
        if self.tail not in ("drop", "pad"):
            problems.append(f"tail must be 'drop' or 'pad', not {self.tail!r}")
        if self.label_rule not in ("last", "majority"):
            problems.append(f"label_rule must be 'last' or 'majority', not {self.label_rule!r}")
        if self.layout not in readers.LAYOUTS:
            problems.append(f"layout must be one of {', '.join(readers.LAYOUTS)}")
        if self.time_unit not in readers.TIME_UNITS:
            problems.append(f"time_unit must be one of {', '.join(readers.TIME_UNITS)}")
        if self.scaling not in ("standard", "none"):
            problems.append(f"scaling must be 'standard' or 'none', not {self.scaling!r}")
        if self.num_channels < 0 or self.max_gap < 0 or not self.rate >= 0:
            problems.append("num_channels, max_gap and rate must not be negative")
        if self.channels and self.num_channels and len(self.channels) != self.num_channels:
            problems.append(f"channels names {len(self.channels)} columns but num_channels "
                            f"is {self.num_channels}")
        if len(set(self.channels)) != len(self.channels):
            problems.append("channels names a column twice")
        if len(self.mean) != len(self.std):
            problems.append("mean and std need one value per channel each")
        elif self.mean and self.channel_count and len(self.mean) != self.channel_count:
            problems.append(f"mean and std have {len(self.mean)} values for "
                            f"{self.channel_count} channels")
        if any(not s > 0 or not math.isfinite(s) for s in self.std) or \
                any(not math.isfinite(m) for m in self.mean):
            problems.append("std values must be positive and mean values finite")
        if self.units and self.channel_count and len(self.units) != self.channel_count:
            problems.append(f"units has {len(self.units)} entries for {self.channel_count} "
                            "channels")
        if problems:
            raise UsageError("; ".join(problems))

    @property
    def channel_count(self) -> int:
        return self.num_channels or len(self.channels) or len(self.mean)

    @property
    def hop(self) -> int:
        return self.stride or self.window


def window_count(length: int, window: int, stride: int, tail: str) -> int:
    """How many windows a recording of ``length`` steps gives (see the module docstring);
    the k-th starts at step ``k * stride``."""
    if length < window:
        return 1 if tail == "pad" and length > 0 else 0
    full = (length - window) // stride + 1
    if tail == "pad" and (full - 1) * stride + window < length:
        return full + 1  # the leftover steps: one more window, padded
    return full


def window_starts(length: int, window: int, stride: int, tail: str) -> list[int]:
    """First steps of a recording's windows."""
    return list(range(0, window_count(length, window, stride, tail) * stride, stride))


def window_labels(labels: np.ndarray, count: int, hop: int, window: int, length: int,
                  rule: str) -> np.ndarray:
    """The labels (int32, -1 unknown) of a recording's ``count`` windows, the k-th at step
    ``k * hop``, from its per-step ``labels`` (``length`` of them)."""
    starts = np.arange(count, dtype=np.int64) * hop
    stops = np.minimum(starts + window, length)
    if rule == "last":
        return np.asarray(labels, np.int64)[stops - 1].astype(np.int32)
    return np.array([window_label(labels, int(a), int(b), rule) for a, b in zip(starts, stops)],
                    np.int32)


def window_label(labels: np.ndarray, start: int, stop: int, rule: str) -> int:
    """The label of steps ``start:stop``: the last step's, or the most frequent known label
    (ties to the smaller class); -1 when unknown."""
    span = labels[start:stop]
    if rule == "last":
        return int(span[-1])
    known = span[span >= 0]
    if not len(known):
        return -1
    return int(np.bincount(known).argmax())


class TimeSeriesTokenizer(Tokenizer):
    extensions = EXTENSIONS

    def __init__(self, config: TimeSeriesConfig) -> None:
        self.config = config

    # --- arrays ---------------------------------------------------------------------------

    def channel_count(self) -> int:
        c = self.config
        if c.scaling == "standard" and not c.mean:
            raise UsageError("scaling=standard needs per-channel statistics of the training "
                             "data: tokenize the training set with --stats-from-data and the "
                             "test set with --config-from TRAIN.zarr (or --set scaling=none)")
        count = c.channel_count
        if not count:
            raise UsageError("the number of channels is not known yet: fit it on the "
                             "training data with --stats-from-data, or give --set "
                             "channels=a,b,c or --set num_channels=C")
        return count

    def sample_arrays(self) -> dict[str, ArraySpec]:
        count = self.channel_count()
        return {"tokens": ArraySpec((self.config.window, count), "float32"),
                "length": ArraySpec((), "int32"),
                "mean": ArraySpec((count,), "float32"),
                "std": ArraySpec((count,), "float32")}

    # --- listing --------------------------------------------------------------------------

    @property
    def list_parts(self):  # type: ignore[override]
        return self.listing

    def part_class_names(self, path: str) -> list[str] | None:  # type: ignore[override]
        try:
            return self.meta(path).class_names
        except SampleError:
            return None

    def kind(self, path: str) -> str:
        """``"recording"`` or ``"cases"`` (from the header only)."""
        ext = readers.suffix(path)
        if ext in readers.TS_EXTENSIONS:
            return "cases"
        if ext in readers.ARRAY_EXTENSIONS:
            shape, _, _ = readers.array_header(path, self.config)
            return "cases" if len(readers.array_layout(shape, self.config.layout)) == 3 \
                else "recording"
        return "recording"

    def meta(self, path: str) -> Meta:
        """Steps (or cases), labels and times of a file, from its metadata (see readers)."""
        c = self.config
        ext = readers.suffix(path)
        if ext in readers.TS_EXTENSIONS:
            readers.check_ts_config(c)
            return readers.ts_meta(path)
        if ext in readers.ARRAY_EXTENSIONS:
            shape, _, label_key = readers.array_header(path, c)
            layout = readers.array_layout(shape, c.layout)
            count = shape[layout.index("n")] if "n" in layout else shape[layout.index("t")]
            labels = readers.array_labels(path, label_key, count)
            return Meta(count, labels)
        layout = readers.table_layout(path, c)
        rows = readers.table_rows(path)
        wanted = [name for name in (layout.label, layout.time) if name]
        columns = readers.read_table_columns(path, wanted) if wanted else {}
        labels, names, times = None, None, None
        if layout.label:
            labels, names = readers.encode_labels(columns[layout.label])
            if len(labels) != rows:
                raise SampleError("ragged_rows", f"{len(labels)} labels for {rows} rows")
        if layout.time:
            times = readers.times_in_seconds(columns[layout.time], c.time_unit)
            readers.check_increasing(times)
            if c.rate > 0:
                grid = resample_grid(times, c.rate)
                if labels is not None:  # each grid step takes the label of the row at or before it
                    labels = labels[np.searchsorted(times, grid, side="right") - 1]
                rows = len(grid)
        return Meta(rows, labels, names, times)

    def listing(self, path: str) -> PartRange | list[tuple[str, int | None]]:
        """A case file's cases ``(CASE, label number)``; a recording's windows ``t=START``
        as a compact :class:`PartRange`: the names are made when asked for (the k-th window
        starts at step k * hop), the labels are one array (indices of class names for text
        labels, label numbers otherwise), so a long recording costs no object per window."""
        c = self.config
        meta = self.meta(path)
        if self.kind(path) == "cases":
            return [(str(i), None if meta.labels is None else int(meta.labels[i]))
                    for i in range(meta.length)]
        count = window_count(meta.length, c.window, c.hop, c.tail)
        if not count:
            raise SampleError("too_short", f"the recording has {meta.length} steps, fewer than "
                              f"one window of {c.window}; lower --set window, or keep it "
                              "padded with --set tail=pad")
        names = SteppedNames("t=", c.hop, count)
        if meta.labels is None:
            return PartRange(count, names=names)
        labels = window_labels(meta.labels, count, c.hop, c.window, meta.length, c.label_rule)
        if meta.class_names is not None:  # text labels: class names, numbered over all files
            return PartRange(count, labels, tuple(meta.class_names), names=names)
        return PartRange(count, labels, names=names, numbered=True)  # -1: the file's label

    # --- reading --------------------------------------------------------------------------

    def tokenize_parts(self, path: str, parts: Sequence[str | None]
                       ) -> list[dict[str, np.ndarray] | SampleError]:
        """One read of the file for the run: the span of rows its windows cover, or its
        cases; windows are cut, checked, filled, scaled and measured together."""
        self.channel_count()
        if self.kind(path) == "cases":
            indices = [self.case_index(part) for part in parts]
            return [x if isinstance(x, SampleError) else self.finish(x)
                    for x in self.read_cases(path, indices)]
        starts = [self.window_index(part) for part in parts]
        return self.tokenize_windows(path, starts)

    def case_index(self, part: str | None) -> int:
        if part is None or not CASE_PART.fullmatch(part):
            raise UsageError(f"time-series part {part!r} is not a case number of a case file")
        return int(part)

    def window_index(self, part: str | None) -> int:
        match = WINDOW_PART.fullmatch(part or "")
        if match is None:
            raise UsageError(f"time-series part {part!r} is not a window name t=START")
        return int(match.group(1))

    def read_recording(self, path: str, start: int, stop: int) -> tuple[np.ndarray, int]:
        """Steps ``start:stop`` (fewer at the end) as float64 (n, C), and the recording's
        length; resampled when ``rate`` and a time column are set."""
        c = self.config
        ext = readers.suffix(path)
        if ext in readers.ARRAY_EXTENSIONS:
            shape, key, _ = readers.array_header(path, c)
            layout = readers.array_layout(shape, c.layout)
            data = readers.load_array(path, key)
            if layout == "t":
                data = data[:, None]
            elif layout == "ct":
                data = data.T
            total = data.shape[0]
            values = np.asarray(data[start:min(stop, total)], dtype=np.float64)
        else:
            layout = readers.table_layout(path, c)
            if c.rate > 0 and layout.time:
                values, total = self.read_resampled(path, layout)
                values = values[start:stop]
            else:
                total = readers.table_rows(path)
                values, times = readers.read_table_rows(path, layout, start, min(stop, total))
                if times is not None:
                    readers.check_increasing(readers.times_in_seconds(times, c.time_unit), start)
        self.check_channels(values.shape[1])
        return values, total

    def read_resampled(self, path: str, layout: readers.TableLayout) -> tuple[np.ndarray, int]:
        c = self.config
        rows = readers.table_rows(path)
        values, times = readers.read_table_rows(path, layout, 0, rows)
        seconds = readers.times_in_seconds(times, c.time_unit)
        readers.check_increasing(seconds)
        grid = resample_grid(seconds, c.rate)
        out = np.empty((len(grid), values.shape[1]), np.float64)
        for channel in range(values.shape[1]):
            out[:, channel] = np.interp(grid, seconds, values[:, channel])
        return out, len(grid)

    def check_channels(self, found: int) -> None:
        if found != self.config.channel_count:
            raise SampleError("bad_shape", f"{found} channel(s), the config has "
                              f"{self.config.channel_count}; pick them with --set channels= "
                              "(tables) or give data like the training data")

    def tokenize_windows(self, path: str, starts: list[int]
                         ) -> list[dict[str, np.ndarray] | SampleError]:
        c = self.config
        if not starts:
            return []
        first, last = min(starts), max(starts) + c.window
        try:
            values, total = self.read_recording(path, first, last)
        except SampleError as exc:
            if len(starts) == 1:
                return [exc]
            # one bad row must not fail its run's other windows: read each window alone, as
            # a lone tokenize_file would
            return [self.tokenize_windows(path, [s])[0] for s in starts]
        results: list[dict[str, np.ndarray] | SampleError] = []
        lengths = np.array([max(0, min(c.window, total - s)) for s in starts])
        if (lengths == 0).any() or any(s < 0 for s in starts):
            bad = starts[int(np.flatnonzero(lengths == 0)[0])]
            error = SampleError("too_short", f"window t={bad} starts past the recording's "
                                f"{total} steps")
            return [error if n == 0 else self.tokenize_windows(path, [s])[0]
                    for s, n in zip(starts, lengths)]
        offsets = np.asarray(starts) - first
        # Scaling is per step, so it is done once per row (windows overlap), then windows
        # are gathered from the float32 rows; a window with missing values is filled from
        # its raw rows (as a lone window would be) and scaled after.
        bad_rows = ~np.isfinite(values).all(axis=1)
        rows32 = self.scale(np.where(bad_rows[:, None], 0.0, values))
        steps = np.arange(c.window)
        real = steps[None, :] < lengths[:, None]
        index = np.minimum(offsets[:, None] + steps[None, :], len(values) - 1)
        batch = rows32[index]  # (n, window, C) float32
        if not real.all():
            batch[~real] = 0.0
        problems: dict[int, SampleError] = {}
        if bad_rows.any():
            touched = np.flatnonzero((bad_rows[index] & real).any(axis=1))
            for row in touched:
                raw = values[offsets[row]:offsets[row] + lengths[row]]
                if np.isinf(raw).any():
                    problems[int(row)] = SampleError("bad_value", "the sample holds infinite "
                                                     "values")
                    continue
                try:
                    batch[row, :lengths[row]] = self.scale(fill_gaps(raw, c.max_gap))
                except SampleError as exc:
                    problems[int(row)] = exc
        finished = self.measure(batch, real, lengths)
        for row in range(len(starts)):
            if row in problems:
                results.append(problems[row])
            else:
                results.append({name: values[row] for name, values in finished.items()})
        return results

    def scale(self, x: np.ndarray) -> np.ndarray:
        """float64 steps -> the global scaling, as float32 (elementwise: the same bytes
        whichever rows are scaled together)."""
        c = self.config
        if c.scaling == "standard":
            x = (x - np.asarray(c.mean)) / np.asarray(c.std)
        return x.astype(np.float32)

    def measure(self, batch: np.ndarray, real: np.ndarray, lengths: np.ndarray
                ) -> dict[str, np.ndarray]:
        """A (n, window, C) float32 batch of scaled steps, zero past each length -> the
        stored arrays with each sample's mean and ``sqrt(var + 1e-5)`` over its real steps
        (float32, as the embedding computes them: two passes, so no cancellation)."""
        count = np.maximum(lengths, 1)[:, None].astype(np.float32)
        mean = batch.sum(axis=1) / count
        centred = batch - mean[:, None, :]
        if not real.all():
            centred[~real] = 0.0
        np.square(centred, out=centred)
        var = centred.sum(axis=1) / count
        return {"tokens": batch, "length": lengths.astype(np.int32), "mean": mean,
                "std": np.sqrt(var + np.float32(INSTANCE_EPS))}

    def finish(self, case: np.ndarray) -> dict[str, np.ndarray] | SampleError:
        """One case (L, C) float64 -> its arrays, or its error."""
        c = self.config
        length = len(case)
        if length > c.window:
            return SampleError("too_long", f"the case has {length} steps, more than window "
                               f"{c.window}; raise it with --set window={length}")
        if length == 0:
            return SampleError("too_short", "the case has no steps")
        try:
            self.check_channels(case.shape[1])
        except SampleError as exc:
            return exc
        if np.isinf(case).any():
            return SampleError("bad_value", "the sample holds infinite values")
        try:
            case = fill_gaps(case, c.max_gap) if np.isnan(case).any() else case
        except SampleError as exc:
            return exc
        batch = np.zeros((1, c.window, case.shape[1]), np.float32)
        batch[0, :length] = self.scale(case)
        real = (np.arange(c.window) < length)[None, :]
        finished = self.measure(batch, real, np.array([length]))
        return {name: values[0] for name, values in finished.items()}

    def read_cases(self, path: str, indices: list[int]) -> list[np.ndarray | SampleError]:
        """Cases ``indices`` of a case file as float64 (L, C), or each case's error."""
        c = self.config
        if readers.suffix(path) in readers.TS_EXTENSIONS:
            header, lines = readers.read_ts(path)
            out: list[np.ndarray | SampleError] = []
            for i in indices:
                if i >= len(lines):
                    out.append(SampleError("too_short", f"the file has {len(lines)} cases, "
                                           f"not case {i}"))
                    continue
                try:
                    out.append(readers.parse_ts_case(lines[i], header))
                except SampleError as exc:
                    out.append(exc)
            return out
        shape, key, _ = readers.array_header(path, c)
        layout = readers.array_layout(shape, c.layout)
        data = readers.load_array(path, key)
        total = data.shape[0]
        out = []
        for i in indices:
            if i >= total:
                out.append(SampleError("too_short", f"the array has {total} cases, not case {i}"))
                continue
            case = np.asarray(data[i], dtype=np.float64)
            out.append(case.T if layout == "nct" else case)
        return out

    # --- fitted statistics ------------------------------------------------------------------

    def statistics_from(self, paths: list[str]) -> dict[str, Any]:
        """Per-channel mean and std over every step of every training file (each step once,
        windows overlapping or not; missing values left out), plus the channels when they
        were not given: the tables' numeric columns (the same in every file) or the count."""
        c = self.config
        sums: np.ndarray | None = None  # per channel: count, sum and sum of squares about shift
        shift: np.ndarray | None = None
        names: list[str] | None = None
        for path in paths:
            try:
                pieces, columns = self.statistics_pieces(path)
                file_sums = None
                for piece in pieces:
                    if c.channel_count and piece.shape[1] != c.channel_count:
                        raise UsageError(f"{path} has {piece.shape[1]} channel(s), the config "
                                         f"{c.channel_count}; pick the columns with --set "
                                         "channels=a,b,c (tables) or set num_channels")
                    if shift is None:
                        with np.errstate(all="ignore"):
                            shift = np.nan_to_num(np.nanmean(piece, axis=0))
                    if piece.shape[1] != len(shift):
                        raise UsageError(f"{path}: {piece.shape[1]} channel(s), other files "
                                         f"{len(shift)}")
                    centred = piece - shift
                    known = np.isfinite(centred)
                    centred = np.where(known, centred, 0.0)
                    part = np.stack([known.sum(axis=0), centred.sum(axis=0),
                                     np.square(centred).sum(axis=0)])
                    file_sums = part if file_sums is None else file_sums + part
            except SampleError:
                continue  # an unreadable file is recorded when it is tokenized
            if file_sums is None:
                continue
            if columns is not None:
                if names is None:
                    names = columns
                elif columns != names:
                    raise UsageError(f"{path} has channels {', '.join(columns)}, other files "
                                     f"{', '.join(names)}; pick them with --set channels=...")
            sums = file_sums if sums is None else sums + file_sums
        if sums is None or not (sums[0] > 0).all():
            raise UsageError("no readable values (in some channel) among the training files "
                             "to fit the per-channel statistics on")
        mean = sums[1] / sums[0]
        std = np.sqrt(np.maximum(sums[2] / sums[0] - mean * mean, 0.0))
        std[std == 0] = 1.0  # a constant channel is only centred (as sklearn's StandardScaler)
        fitted: dict[str, Any] = {"mean": tuple(float(m) for m in mean + shift),
                                  "std": tuple(float(s) for s in std)}
        if not c.channel_count:
            fitted["num_channels"] = len(mean)
        if names is not None and not c.channels:
            fitted["channels"] = tuple(names)
        return fitted

    def statistics_pieces(self, path: str) -> tuple[list[np.ndarray], list[str] | None]:
        """The file's values as float64 (n, C) pieces (streamed for tables) and its channel
        names (tables), for :meth:`statistics_from`."""
        c = self.config
        if readers.is_table(path):
            layout = readers.table_layout(path, c)
            if c.rate > 0 and layout.time:
                return [self.read_resampled(path, layout)[0]], layout.channels
            rows = readers.table_rows(path)
            block = 1 << 18
            pieces = (readers.read_table_rows(path, layout, s, min(rows, s + block))[0]
                      for s in range(0, rows, block))
            return pieces, layout.channels  # type: ignore[return-value]
        if self.kind(path) == "cases":
            meta = self.meta(path)
            cases = self.read_cases(path, list(range(meta.length)))
            return [x for x in cases if not isinstance(x, SampleError)], None
        values, _ = self.read_recording(path, 0, 1 << 62)
        return [values], None


def resample_grid(seconds: np.ndarray, rate: float) -> np.ndarray:
    """Times of a uniform grid at ``rate`` Hz from the first timestamp to the last."""
    if len(seconds) == 0:
        return seconds
    steps = int(math.floor((seconds[-1] - seconds[0]) * rate + 1e-9)) + 1
    return seconds[0] + np.arange(steps) / rate


def fill_gaps(x: np.ndarray, max_gap: int) -> np.ndarray:
    """(L, C) with NaN -> gaps of at most ``max_gap`` steps interpolated linearly (an end
    gap takes the nearest value); a longer gap or an empty channel is ``missing_values``."""
    out = x.copy()
    steps = np.arange(len(x))
    for channel in range(x.shape[1]):
        missing = np.isnan(x[:, channel])
        if not missing.any():
            continue
        if missing.all():
            raise SampleError("missing_values", f"channel {channel} has no value at all")
        edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
        runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        if runs.max() > max_gap:
            raise SampleError("missing_values", f"channel {channel} misses {runs.max()} steps "
                              f"in a row, more than max_gap {max_gap}; raise --set max_gap to "
                              "interpolate longer gaps")
        known = ~missing
        out[missing, channel] = np.interp(steps[missing], steps[known], x[known, channel])
    return out
