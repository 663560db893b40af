"""Sources: which samples a run covers, in which order, with which ids and labels.

Every source produces a :class:`SampleList` before any work starts, so the number of samples
(and therefore the store's shape and shard count) is known up front and a resumed run can
check that it is looking at the same list.
"""

from __future__ import annotations

import collections.abc
import csv
import hashlib
import itertools
import json
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Callable, Iterable, Sequence

import numpy as np

from .errors import NotASample, SampleError, UsageError

UNLABELED = -1
# lines hashed per sha256 update: each block is one transient string (~250 KB of ids), so the
# fingerprint of a million rows costs one small buffer, not memory that grows with the rows
FINGERPRINT_BLOCK_LINES = 1 << 12


@dataclass(frozen=True)
class Sample:
    """One sample: a stable id, the file to read and its label (``-1`` when unknown).

    ``problem`` holds ``(kind, message)`` when listing already showed the sample cannot be
    read (a symlink escaping the root, a duplicate id); the sample keeps its slot and the
    problem is recorded like any read error. ``part`` names one sample inside a file that
    holds several (an HDF5 row, an audio window); its id is then ``FILE_ID#PART``.
    """

    id: str
    path: str
    label: int = UNLABELED
    problem: tuple[str, str] | None = None
    part: str | None = None  # which part of a multi-sample file: "row=12", "t=0.00-10.24"


@dataclass(frozen=True)
class SampleList:
    samples: Sequence[Sample]  # a list, or ExpandedSamples (built on demand) after expand_parts
    class_names: list[str]
    description: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    def fingerprint(self) -> str:
        """A hash of ids, labels and class names: a resumed run must see the same list.

        Computed once per list (a run asks twice: the store's ``source_hash`` and the
        fitted record's); the lines are hashed a block at a time, the same bytes as one
        ``update`` per line at a fraction of the calls (a million rows: ~0.1 s, not ~0.6 s).
        """
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        digest = hashlib.sha256()
        digest.update(json.dumps(self.class_names).encode())
        if isinstance(self.samples, ExpandedSamples):
            blocks = self.samples.fingerprint_blocks()
        else:
            lines = (f"{sample.id}\0{sample.label}\n" for sample in self.samples)
            blocks = iter(lambda: "".join(itertools.islice(lines, FINGERPRINT_BLOCK_LINES)), "")
        for block in blocks:
            digest.update(block.encode())
        # a frozen dataclass: the cache goes into the instance dict directly; the samples
        # are never changed after listing (every step builds a new SampleList)
        object.__setattr__(self, "_fingerprint", digest.hexdigest())
        return self.__dict__["_fingerprint"]

    def paths(self) -> list[str]:
        """The files read, each once, in order (samples with a listing problem left out)."""
        if isinstance(self.samples, ExpandedSamples):
            return self.samples.paths()
        return list(dict.fromkeys(s.path for s in self.samples if s.problem is None))


def printable_id(name: str) -> str:
    """File names that are not UTF-8 keep their bytes as backslash escapes, so every id can
    be stored as a UTF-8 string and still names exactly one file."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _inside(path: str, root_real: str) -> bool:
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _label_names(raw_labels: Sequence[str | None]) -> tuple[list[int], list[str]]:
    """Map label strings to integer ids; class names are sorted (numerically if all ints)."""
    names = sorted({label for label in raw_labels if label is not None})
    if names and all(_is_int(n) for n in names):
        names.sort(key=int)
    index = {name: i for i, name in enumerate(names)}
    return [index[label] if label is not None else UNLABELED for label in raw_labels], names


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _build(
    entries: list[tuple[str, str, str | None]],
    root: str | None,
    allow_external_symlinks: bool,
    description: dict,
) -> SampleList:
    """entries: (id, path, raw label). Flags duplicates and symlink escapes."""
    labels, class_names = _label_names([label for _, _, label in entries])
    root_real = os.path.realpath(root) if root is not None else None
    seen: set[str] = set()
    samples = []
    for (sample_id, path, _), label in zip(entries, labels):
        sample_id = printable_id(sample_id)
        problem = None
        if sample_id in seen:
            problem = ("duplicate_id", f"id {sample_id!r} appears more than once in the source")
        elif (
            root_real is not None
            and not allow_external_symlinks
            and (os.path.islink(path) or _has_link_parent(path, root))
            and not _inside(path, root_real)
        ):
            problem = (
                "symlink_escape",
                f"{path} resolves to {os.path.realpath(path)}, outside {root}; "
                "pass --follow-external-symlinks to allow it",
            )
        seen.add(sample_id)
        samples.append(Sample(sample_id, path, label, problem))
    return SampleList(samples, class_names, description)


def _has_link_parent(path: str, root: str | None) -> bool:
    """True when a folder between ``root`` and ``path`` is a symlink."""
    if root is None:
        return False
    parent = os.path.dirname(path)
    root_abs = os.path.abspath(root)
    while len(parent) > len(root_abs):
        if os.path.islink(parent):
            return True
        parent = os.path.dirname(parent)
    return False


def _label_from_relative(relative: str, labels: str) -> str | None:
    parts = Path(relative).parts
    if labels == "folder" and len(parts) > 1:
        return parts[0]
    return None


def from_folder(
    root: str | os.PathLike,
    extensions: Iterable[str],
    labels: str = "folder",
    allow_external_symlinks: bool = False,
) -> SampleList:
    """All files under ``root`` with one of ``extensions``, sorted by relative path.

    The class of a file is the first folder under ``root`` (torchvision's ImageFolder
    convention); files directly in ``root`` get label -1. Hidden files and folders are
    skipped. Folder symlinks are followed once (cycles are cut).
    """
    root = os.fspath(root)
    if not os.path.exists(root):
        raise UsageError(f"{root} does not exist; pass an existing folder, --files-from or "
                         "--manifest")
    if not os.path.isdir(root):
        raise UsageError(f"{root} is not a folder; pass a folder, --files-from or --manifest")
    wanted = {ext.lower() for ext in extensions}
    relative_paths = []
    visited: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:  # a symlink cycle
            dirs[:] = []
            continue
        visited.add(real)
        dirs[:] = [d for d in dirs if not _is_hidden(d)]
        for name in files:
            if _is_hidden(name) or os.path.splitext(name)[1].lower() not in wanted:
                continue
            relative_paths.append(os.path.relpath(os.path.join(folder, name), root))
    relative_paths.sort()
    entries = [
        (rel.replace(os.sep, "/"), os.path.join(root, rel), _label_from_relative(rel, labels))
        for rel in relative_paths
    ]
    description = {"kind": "folder", "root": os.path.abspath(root), "labels": labels}
    return _build(entries, root, allow_external_symlinks, description)


def read_path_list(stream: IO[bytes]) -> list[str]:
    """Paths from a newline- or NUL-separated byte stream (``find -print0`` works)."""
    data = stream.read()
    separator = b"\0" if b"\0" in data else b"\n"
    paths = []
    for raw in data.split(separator):
        raw = raw.strip(b"\r\n") if separator == b"\n" else raw
        if raw:
            paths.append(os.fsdecode(raw))
    return paths


def from_file_list(
    paths: Sequence[str],
    root: str | None = None,
    labels: str = "folder",
    allow_external_symlinks: bool = False,
) -> SampleList:
    """Samples in the given order. Ids and folder labels are relative to ``root``, which
    defaults to the deepest folder holding every listed file."""
    if not paths:
        raise UsageError("the file list is empty; nothing to tokenize")
    absolute = [os.path.abspath(p) for p in paths]
    if root is None:
        root = os.path.commonpath([os.path.dirname(p) for p in absolute])
    entries = []
    for path in absolute:
        rel = os.path.relpath(path, root)
        entries.append((rel.replace(os.sep, "/"), path, _label_from_relative(rel, labels)))
    description = {"kind": "file_list", "root": os.path.abspath(root), "labels": labels}
    return _build(entries, root, allow_external_symlinks, description)


def from_manifest(
    manifest: str | os.PathLike,
    path_column: str = "path",
    label_column: str | None = "label",
    allow_external_symlinks: bool = False,
) -> SampleList:
    """Samples from a CSV or JSONL manifest, in its row order. Relative paths are resolved
    against the manifest's folder; the id is the path as written. An empty or missing label
    means unlabeled."""
    manifest = os.fspath(manifest)
    rows = _read_manifest_rows(manifest)
    base = os.path.dirname(os.path.abspath(manifest))
    entries = []
    for number, row in enumerate(rows, start=1):
        if path_column not in row or row[path_column] in (None, ""):
            raise UsageError(
                f"{manifest} row {number} has no {path_column!r} column; "
                f"columns seen: {sorted(row)}; choose one with --path-column"
            )
        written = str(row[path_column])
        label = row.get(label_column) if label_column else None
        label = None if label in (None, "") else str(label)
        entries.append((written, os.path.join(base, written), label))
    if not entries:
        raise UsageError(f"{manifest} lists no samples")
    description = {"kind": "manifest", "manifest": os.path.abspath(manifest)}
    return _build(entries, base, allow_external_symlinks, description)


def _read_manifest_rows(manifest: str) -> list[dict]:
    if not os.path.isfile(manifest):
        raise UsageError(f"manifest {manifest} does not exist")
    if manifest.endswith((".jsonl", ".ndjson")):
        rows = []
        with open(manifest, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise UsageError(f"{manifest} line {number} is not JSON: {exc}") from exc
        return rows
    if manifest.endswith((".csv", ".tsv")):
        with open(manifest, newline="", encoding="utf-8") as handle:
            dialect = "excel-tab" if manifest.endswith(".tsv") else "excel"
            return list(csv.DictReader(handle, dialect=dialect))
    raise UsageError(f"manifest {manifest} must end in .csv, .tsv, .jsonl or .ndjson")


def open_path_list(spec: str) -> list[str]:
    """``--files-from`` argument: a file name, or ``-`` for stdin."""
    if spec == "-":
        return read_path_list(sys.stdin.buffer)
    if not os.path.isfile(spec):
        raise UsageError(f"--files-from {spec}: no such file")
    with open(spec, "rb") as handle:
        return read_path_list(handle)


def drop_companions(samples: SampleList, is_companion: Callable[[str], bool]) -> SampleList:
    """``samples`` without the files that belong to another file's samples (``is_companion``,
    e.g. a TUDataset's side files beside its ``DS_A.txt``)."""
    kept = [s for s in samples.samples if s.problem is not None or not is_companion(s.path)]
    if len(kept) == len(samples.samples):
        return samples
    return SampleList(kept, samples.class_names, samples.description)


@dataclass(frozen=True)
class SteppedNames(collections.abc.Sequence):
    """Part names ``prefix + str(i * step)`` for ``i < count``, each made when asked for: a
    recording's windows ``t=0``, ``t=48``, ... without one string per window."""

    prefix: str
    step: int
    count: int

    def __len__(self) -> int:
        return self.count

    @property
    def starts(self) -> range:
        return range(0, self.count * self.step, self.step)

    def __getitem__(self, index):
        starts = self.starts[index]  # negatives, bounds and slices as range's (PartNumbers too)
        return ([f"{self.prefix}{s}" for s in starts] if isinstance(index, slice)
                else f"{self.prefix}{starts}")

    def __iter__(self):
        return (f"{self.prefix}{start}" for start in self.starts)


@dataclass(frozen=True)
class PartRange:
    """What ``list_parts`` may return for a file of many samples (a table's rows, a
    recording's windows) instead of a list: its parts are ``names`` (a sequence such as
    :class:`SteppedNames`; None: ``"0"``..``str(count - 1)``), and ``labels`` (int32, one
    per part) index ``class_names`` (-1: unlabeled), or, ``numbered``, are label numbers as
    a ``(name, number)`` listing gives them (-1: the file's own label), or are None (the
    file's own label). Listing a million rows then builds two arrays, not a million Python
    objects."""

    count: int
    labels: "np.ndarray | None" = None
    class_names: Sequence[str] = ()
    names: Sequence[str] | None = None
    numbered: bool = False


@dataclass(frozen=True)
class _Run:
    """Samples ``base#name`` for the parts of one file (``names`` None: the numbers
    ``offset``..``offset + count - 1``), with per-part labels (None: all ``base.label``).
    A run with an ``offset`` is a window of a longer one (:meth:`window`)."""

    base: Sample
    count: int
    names: Sequence[str] | None
    labels: "np.ndarray | None"
    offset: int = 0

    def name(self, i: int) -> str:
        return str(self.offset + i) if self.names is None else self.names[i]

    def sample(self, i: int) -> Sample:
        name = self.name(i)
        label = self.base.label if self.labels is None else int(self.labels[i])
        return Sample(f"{self.base.id}#{name}", self.base.path, label, None, name)

    def window(self, lo: int, hi: int) -> "_Run":
        """Parts ``[lo, hi)`` as a run of their own, holding only their names and labels
        (a shard's task pickles its rows' labels, not the whole file's)."""
        if (lo, hi) == (0, self.count):
            return self
        names = None if self.names is None else self.names[lo:hi]
        labels = None if self.labels is None else self.labels[lo:hi].copy()
        return _Run(self.base, hi - lo, names, labels, self.offset + lo)

    def names_list(self) -> list[str]:
        if self.names is None:
            return [str(i) for i in range(self.offset, self.offset + self.count)]
        return list(self.names)

    def ids(self) -> list[str]:
        prefix = f"{self.base.id}#"
        if self.names is None:
            return [prefix + str(i) for i in range(self.offset, self.offset + self.count)]
        return [prefix + name for name in self.names]

    def label_array(self) -> np.ndarray:
        if self.labels is None:
            return np.full(self.count, self.base.label, np.int32)
        return np.asarray(self.labels, np.int32)


class PartNumbers(Sequence):
    """The part names ``str(start)``..``str(stop - 1)`` (a run of a table's rows), built on
    access; :func:`part_numbers` gives them as integers without a str -> int round trip."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index):
        numbers = range(self.start, self.stop)[index]
        return [str(n) for n in numbers] if isinstance(index, slice) else str(numbers)

    def __iter__(self):
        return map(str, range(self.start, self.stop))

    def __eq__(self, other) -> bool:  # equal to the list of the same names
        if not isinstance(other, (list, tuple, PartNumbers)):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"PartNumbers({self.start}, {self.stop})"


def part_numbers(parts: Sequence[str]) -> np.ndarray:
    """Numbered part names (``"0"``, ``"17"``: rows of a table) as int64."""
    if isinstance(parts, PartNumbers):
        return np.arange(parts.start, parts.stop, dtype=np.int64)
    return np.array([int(p) for p in parts], np.int64)


class ExpandedSamples(Sequence):
    """The sample list after :func:`expand_parts`, held compactly: one entry per file (a
    :class:`Sample`, or a :class:`_Run` of its parts). Indexing and slicing build the
    :class:`Sample` objects asked for, so a shard's slice costs its own samples only and the
    list's memory does not grow with a file's rows."""

    def __init__(self, entries: list) -> None:
        self._entries = entries
        sizes = [e.count if isinstance(e, _Run) else 1 for e in entries]
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _at(self, entry: int, offset: int) -> Sample:
        item = self._entries[entry]
        return item.sample(offset) if isinstance(item, _Run) else item

    def __getitem__(self, index):
        positions = range(len(self))[index]  # negatives, bounds and slices as a list's
        if not isinstance(index, slice):
            return self._sample(positions)
        if positions.step != 1:
            return [self._sample(i) for i in positions]
        return list(self._range(positions.start, positions.stop))

    def _sample(self, index: int) -> Sample:
        entry = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self._at(entry, index - int(self._starts[entry]))

    def _range(self, start: int, stop: int):
        if start >= stop:
            return
        entry = int(np.searchsorted(self._starts, start, side="right")) - 1
        while start < stop:
            first, last = int(self._starts[entry]), int(self._starts[entry + 1])
            for offset in range(start - first, min(stop, last) - first):
                yield self._at(entry, offset)
            start, entry = last, entry + 1

    def __iter__(self):
        return self._range(0, len(self))

    def window(self, start: int, stop: int) -> "ExpandedSamples":
        """Samples ``[start, stop)`` as a compact list of their own (a shard's slice: what
        a worker's task carries), without building a :class:`Sample` per part."""
        start, stop, _ = slice(start, stop).indices(len(self))
        entries = []
        if start < stop:
            entry = int(np.searchsorted(self._starts, start, side="right")) - 1
            while start < stop:
                first, last = int(self._starts[entry]), int(self._starts[entry + 1])
                item = self._entries[entry]
                if isinstance(item, _Run):
                    item = item.window(start - first, min(stop, last) - first)
                entries.append(item)
                start, entry = last, entry + 1
        return ExpandedSamples(entries)

    def ids(self) -> list[str]:
        """Every sample's id, in order (what ``[s.id for s in self]`` gives)."""
        ids: list[str] = []
        for item in self._entries:
            ids.extend(item.ids() if isinstance(item, _Run) else [item.id])
        return ids

    def labels(self) -> np.ndarray:
        """Every sample's label as int32, in order."""
        parts = [item.label_array() if isinstance(item, _Run)
                 else np.array([item.label], np.int32) for item in self._entries]
        return np.concatenate(parts) if parts else np.zeros(0, np.int32)

    def file_runs(self) -> list[tuple[int, int]]:
        """``pipeline.file_runs`` of this list, one step per entry instead of per sample:
        a file's parts are one run (they were listed, so none has a problem)."""
        runs: list[tuple[int, int]] = []
        previous: tuple[str, bool] | None = None  # (path, readable) of the last entry
        for item, begin, end in zip(self._entries, self._starts[:-1].tolist(),
                                    self._starts[1:].tolist()):
            path, readable = ((item.base.path, True) if isinstance(item, _Run)
                              else (item.path, item.problem is None))
            if end == begin:
                continue
            if readable and previous == (path, True):
                runs[-1] = (runs[-1][0], end)
            else:  # a new file, or a listing problem (a run of its own)
                runs.append((begin, end))
            previous = (path, readable)
        return runs

    def parts(self, start: int, stop: int) -> Sequence[str | None]:
        """The part names of samples ``[start, stop)`` (what ``[s.part for s in ...]``
        gives), without building the samples: the numbered parts of one file (a table's
        rows) as :class:`PartNumbers`."""
        entries = self.window(start, stop)._entries
        if len(entries) == 1 and isinstance(entries[0], _Run) and entries[0].names is None:
            run = entries[0]
            return PartNumbers(run.offset, run.offset + run.count)
        return [name for item in entries
                for name in (item.names_list() if isinstance(item, _Run) else [item.part])]

    def fingerprint_blocks(self):
        """``id\0label\n`` per sample, as :meth:`SampleList.fingerprint` hashes them,
        joined into blocks of at most ``FINGERPRINT_BLOCK_LINES`` lines, without building
        the samples."""
        for item in self._entries:
            if not isinstance(item, _Run):
                yield f"{item.id}\0{item.label}\n"
                continue
            for lo in range(0, item.count, FINGERPRINT_BLOCK_LINES):
                hi = min(lo + FINGERPRINT_BLOCK_LINES, item.count)
                names = (range(item.offset + lo, item.offset + hi) if item.names is None
                         else item.names[lo:hi])
                prefix = f"{item.base.id}#"
                if item.labels is None:  # prefix NAME tail, one join for the block
                    tail = f"\0{item.base.label}\n"
                    yield prefix + (tail + prefix).join(map(str, names)) + tail
                else:
                    yield "".join([f"{prefix}{name}\0{label}\n" for name, label
                                   in zip(names, item.labels[lo:hi].tolist())])

    def problem_count(self) -> int:
        """Samples with a listing problem, without building the samples (a run's parts were
        listed, so they have none)."""
        return sum(1 for e in self._entries if not isinstance(e, _Run) and e.problem is not None)

    def paths(self) -> list[str]:
        """The files read, each once, in order (listing problems left out)."""
        return list(dict.fromkeys(
            (e.base.path if isinstance(e, _Run) else e.path) for e in self._entries
            if isinstance(e, _Run) or e.problem is None))


def expand_parts(
    samples: SampleList,
    list_parts: Callable[[str], list[str] | list[tuple[str, int | str | None]] | PartRange
                         | None],
    part_class_names: Callable[[str], list[str] | None] | None = None,
) -> SampleList:
    """Replace each file by its parts (``list_parts(path)`` -> part names, a
    :class:`PartRange`, or None to keep the file as one sample). A file whose parts cannot be
    listed keeps one slot with the :class:`SampleError` as its problem, so nothing is
    dropped without a record. The result holds its samples as :class:`ExpandedSamples`.

    A part may carry its own label, ``(name, label)``: container files such as ModelNet HDF5
    store integer labels per row. Those labels replace folder labels, and the class names
    come from ``part_class_names(file)`` (e.g. a ``shape_names.txt`` beside it) or are the
    label numbers. A label may instead be a class name (a string: a table's label column);
    then the class names are every name seen, in every file, sorted as folders' are.
    """
    entries: list = []
    # per entry holding class-name labels: (entry index, its names); numbers -> names later
    named: list[tuple[int, list[str]]] = []
    labelled_file = None
    not_samples = []
    for sample in samples.samples:
        if sample.problem is not None:
            entries.append(sample)
            continue
        try:
            parts = list_parts(sample.path)
        except NotASample:
            not_samples.append(sample.id)
            continue
        except SampleError as exc:
            entries.append(replace(sample, problem=(exc.kind, exc.message)))
            continue
        if parts is None:
            entries.append(sample)
            continue
        if isinstance(parts, PartRange) and parts.count:
            count, names, labels = parts.count, parts.names, parts.labels
            if names is not None and len(names) != count:
                raise ValueError(f"{sample.path}: a PartRange of {count} parts with "
                                 f"{len(names)} names")
            if labels is not None and parts.numbered:  # as (name, number) parts are read
                labels = np.asarray(labels, np.int32)
                if (labels >= 0).any():
                    labelled_file = labelled_file or sample.path
                labels = np.where(labels >= 0, labels, sample.label).astype(np.int32)
                if (labels == sample.label).all():
                    labels = None
            elif labels is not None:
                labels = np.asarray(labels, np.int32)
                named.append((len(entries), list(parts.class_names)))
        elif isinstance(parts, PartRange) or not parts:
            entries.append(replace(sample, problem=("empty_file", "the file holds no samples")))
            continue
        else:
            count, names, labels = len(parts), [], None
            numbers: list[int] = []
            texts: dict[str, int] = {}
            codes: list[int] = []
            for part in parts:
                name, label = part if isinstance(part, tuple) else (part, None)
                names.append(name)
                if isinstance(label, str):
                    codes.append(texts.setdefault(label, len(texts)))
                    numbers.append(UNLABELED)
                else:
                    codes.append(UNLABELED)
                    numbers.append(sample.label if label is None else label)
                    if label is not None:
                        labelled_file = labelled_file or sample.path
            if texts:
                labels = np.asarray(codes, np.int32)
                named.append((len(entries), list(texts)))
            elif any(n != sample.label for n in numbers):
                labels = np.asarray(numbers, np.int32)
            if names == [str(i) for i in range(count)]:
                names = None
        entries.append(_Run(sample, count, names, labels))
    class_names = samples.class_names
    if named:
        if labelled_file is not None:
            raise UsageError(f"{labelled_file}: its parts carry label numbers while other "
                             "files' parts carry class names; label them the same way")
        everything = sorted({n for _, local in named for n in local})
        _, class_names = _label_names(everything)
        index = {name: i for i, name in enumerate(class_names)}
        with_names = {at: local for at, local in named}
        for at, item in enumerate(entries):
            if at in with_names:  # local code -> global class number (-1 stays -1)
                table = np.array([index[n] for n in with_names[at]] + [UNLABELED], np.int32)
                entries[at] = replace(item, labels=table[item.labels])
            elif isinstance(item, _Run):  # parts without a class name: unlabeled
                entries[at] = replace(item, labels=np.full(item.count, UNLABELED, np.int32))
            else:
                entries[at] = replace(item, label=UNLABELED)
    elif labelled_file is not None:
        names = part_class_names(labelled_file) if part_class_names else None
        top = max((int(e.labels.max()) if e.labels is not None else e.base.label)
                  if isinstance(e, _Run) else e.label for e in entries)
        class_names = names if names and len(names) > top else [str(i) for i in range(top + 1)]
    description = samples.description
    if not_samples:  # left out, but on record
        description = {**description, "not_samples": not_samples}
    return SampleList(ExpandedSamples(entries), class_names, description)
