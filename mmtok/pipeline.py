"""``tokenize``: Source -> Reader/Tokenizer -> ShardWriter, one shard per unit of work.

``work_shard`` is a pure function of the sample list, the tokenizer config and the shard
index, so a shard rewritten after a crash, or by another worker count, has the same bytes.
Scheduling is the only thing that differs between one worker (in this process), many (a
process pool) and a Ray cluster: :class:`TokenizeJob` is what every engine (``mmtok.engines``)
runs, one shard at a time.
"""

from __future__ import annotations

import functools
from collections import Counter
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .engines import EngineOptions, ShardJob, StepRun, WorkerContext, make_engine, run_step
from .engines.process import WORKER_REPORT_ENV  # noqa: F401  (where it always was)
from .engines.process import refuse_in_worker_bootstrap as _refuse_in_worker_bootstrap
from .devices import CPU, ComputeDevice, resolve_tokenize_device
from .errors import SampleError, TooManyErrors, UsageError
from .fitted import (
    ReusedConfig,
    fitted_record,
    provenance_attrs,
    read_reused_config,
    reused_options,
)
from .memory import pin_mmap_threshold
from .modalities import create_tokenizer, get_modality
from .modalities.base import (
    PartsBatch,
    Tokenizer,
    config_to_dict,
    fits_statistics,
    like_encoder_options,
)
from .sources import ExpandedSamples, Sample, SampleList, drop_companions, expand_parts, from_file_list, from_folder, from_manifest
from .store.layout import shard_bounds
from .store.paths import check_output_is_not_input
from .store.summary import RunSummary
from .store.writer import ShardData, ShardWriter, StoreSpec, check_output_kind, read_attrs

SHARD_TARGET_BYTES = 64 << 20


def default_shard_size(sample_bytes: int, most: int = 4096) -> int:
    """A power of two giving shards of about 64 MB, between 16 and ``most`` samples (4096;
    a tokenizer of tiny samples may allow more: ``Tokenizer.max_shard_samples``)."""
    target = max(16, min(most, SHARD_TARGET_BYTES // max(1, sample_bytes)))
    return 1 << (target.bit_length() - 1)


def build_sample_list(
    source: str | os.PathLike | Sequence[str] | SampleList | None,
    extensions: Sequence[str],
    *,
    manifest: str | os.PathLike | None = None,
    root: str | None = None,
    labels: str = "folder",
    path_column: str = "path",
    label_column: str | None = None,
    follow_external_symlinks: bool = False,
) -> SampleList:
    if labels not in ("folder", "none", "manifest"):
        raise UsageError(f"--labels must be folder, none or manifest, not {labels!r}")
    given = [x is not None for x in (source, manifest)]
    if sum(given) != 1:
        raise UsageError("give exactly one source: a folder, a file list or a manifest")
    if isinstance(source, SampleList):
        return source
    if manifest is not None:
        return from_manifest(manifest, path_column,
                             (label_column or "label") if labels != "none" else None,
                             follow_external_symlinks)
    if labels == "manifest":
        raise UsageError("--labels manifest needs --manifest; folders and file lists take "
                         "--labels folder or none")
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        source = [os.fspath(source)]  # one file (a table whose rows are the samples)
    if isinstance(source, (str, os.PathLike)):
        return from_folder(source, extensions, labels, follow_external_symlinks)
    return from_file_list(list(source), root, labels, follow_external_symlinks)


def work_shard(
    shard: int,
    samples: Sequence[Sample],
    tokenizer: Tokenizer,
    writer: ShardWriter,
    strict: bool = False,
    on_sample: Callable[..., None] | None = None,
    device: ComputeDevice = CPU,
) -> dict:
    """Tokenize and write one whole shard; returns its commit marker.

    ``samples`` are this shard's samples only (``shard_slice``), so a worker is handed its
    own slice, never the whole list. Consecutive samples of one file go to the tokenizer in
    one ``tokenize_parts`` call; every sample's result or error still lands in its own row.
    On a batching ``device`` a tokenizer with a batched path decodes each run of samples on
    this worker and computes them a batch at a time there (:func:`_batched_runs`).
    ``on_sample(n=1)`` reports progress: once per sample, or once per whole run of a
    :class:`PartsBatch` with its count.
    """
    attrs = writer.attrs
    start, stop = shard_bounds(shard, attrs["num_samples"], attrs["shard_size"])
    if len(samples) != stop - start:  # a caller passed the whole list, or the wrong slice
        raise ValueError(f"shard {shard} holds samples {start}:{stop}, got {len(samples)}")
    specs = tokenizer.sample_arrays()
    shapes = {name: (stop - start, *spec.shape) for name, spec in specs.items()}
    # each shard buffer is made on first use: the arrays of a batch that is the whole shard
    # (one file's parts: a cube's pixels, a table's rows) are the shard's own, so a shard
    # costs one buffer of its samples, not two
    arrays: dict[str, np.ndarray] = {}

    def buffer(name: str) -> np.ndarray:
        if name not in arrays:
            arrays[name] = np.zeros(shapes[name], specs[name].dtype)
        return arrays[name]

    valid = np.zeros(stop - start, dtype=bool)
    errors = []
    run_counts: Counter = Counter()  # PartsBatch.counts of this shard's runs
    if device.batched and tokenizer.has_batched_path():
        runs = _batched_runs(tokenizer, samples, device)
    else:
        runs = ((first, last, _tokenize_run(tokenizer, samples, first, last))
                for first, last in file_runs(samples))

    def failed(row: int, outcome: SampleError) -> None:
        sample = samples[row]
        if strict:
            raise TooManyErrors(f"{sample.id}: {outcome.kind}: {outcome.message} "
                                "(--strict)") from None
        errors.append({"index": start + row, "id": sample.id, "kind": outcome.kind,
                       "stage": outcome.stage, "message": outcome.message})

    for first, last, outcomes in runs:
        if isinstance(outcomes, PartsBatch):
            # the run's arrays in one copy each (none when the run is the whole shard); only
            # the failed rows are visited (zeroed), so a run of 65,536 table rows costs no
            # Python step per row
            whole_shard = first == 0 and last == len(samples)
            for name, values in outcomes.arrays.items():
                if whole_shard and _can_adopt(values, shapes[name], specs[name].dtype):
                    arrays[name] = values
                else:
                    buffer(name)[first:last] = values
            valid[first:last] = True
            run_counts.update(outcomes.counts)
            for offset in sorted(outcomes.errors):
                if not 0 <= offset < last - first:
                    raise RuntimeError(f"{type(tokenizer).__name__}.tokenize_parts returned an "
                                       f"error for part {offset} of a run of {last - first}")
                failed(first + offset, outcomes.errors[offset])
                for values in arrays.values():  # buffers made later are zeros already
                    values[first + offset] = 0
                valid[first + offset] = False
            if on_sample is not None:
                on_sample(last - first)
            continue
        for row in range(first, last):
            # each result is dropped once copied: a tokenizer that returns views of blocks
            # (a cube's pixels) frees each block as soon as its rows are in place
            outcome, outcomes[row - first] = outcomes[row - first], None
            if isinstance(outcome, SampleError):
                failed(row, outcome)
            else:
                for name, values in outcome.items():
                    buffer(name)[row] = values
                valid[row] = True
            if on_sample is not None:
                on_sample()
    arrays = {name: buffer(name) for name in specs}
    labels, ids = sample_labels(samples), sample_ids(samples)
    counts = {k: v for k, v in (run_counts + Counter(tokenizer.tally(arrays, valid))).items()
              if v}
    return writer.write(shard, ShardData(arrays, labels, valid, ids, errors, counts))


def _can_adopt(values: np.ndarray, shape: tuple[int, ...], dtype: str) -> bool:
    """Whether a tokenizer's whole-shard array can be the shard's own buffer: its shape and
    dtype, C-ordered, and writable (failed rows are zeroed in place)."""
    return (isinstance(values, np.ndarray) and values.shape == shape
            and values.dtype == np.dtype(dtype) and values.flags.writeable
            and values.flags.c_contiguous)


def shard_slice(samples: Sequence[Sample], shard: int, shard_size: int) -> Sequence[Sample]:
    """The samples of shard ``shard``: what ``work_shard`` and a worker's task receive (a
    compact window of a multi-sample listing, which builds no :class:`Sample` per part)."""
    start, stop = shard_bounds(shard, len(samples), shard_size)
    if isinstance(samples, ExpandedSamples):
        return samples.window(start, stop)
    return samples[start:stop]


def sample_ids(samples: Sequence[Sample]) -> list[str]:
    return samples.ids() if isinstance(samples, ExpandedSamples) else [s.id for s in samples]


def sample_labels(samples: Sequence[Sample]) -> np.ndarray:
    if isinstance(samples, ExpandedSamples):
        return samples.labels()
    return np.array([s.label for s in samples], dtype=np.int32)


def run_parts(samples: Sequence[Sample], first: int, last: int) -> tuple[Sample, list]:
    """The first sample of the run ``[first, last)`` and the part names of all of them."""
    if isinstance(samples, ExpandedSamples):
        return samples[first], samples.parts(first, last)
    run = samples[first:last]
    return run[0], [s.part for s in run]


def file_runs(samples: Sequence[Sample]) -> list[tuple[int, int]]:
    """``(first, stop)`` index ranges of maximal runs of consecutive samples that read the
    same file. A sample with a listing problem is a run of its own (it is never read)."""
    if isinstance(samples, ExpandedSamples):
        return samples.file_runs()
    runs: list[tuple[int, int]] = []
    for index, sample in enumerate(samples):
        previous = samples[index - 1] if index else None
        if (previous is not None and sample.problem is None and previous.problem is None
                and sample.path == previous.path):
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def _tokenize_run(tokenizer: Tokenizer, samples: Sequence[Sample], first: int, last: int
                  ) -> list[dict[str, np.ndarray] | SampleError] | PartsBatch:
    """One ``tokenize_parts`` call for the run ``samples[first:last]`` of one file: a dict
    or a SampleError per sample (or a :class:`PartsBatch` of them)."""
    outcomes = _call_on_run(tokenizer, "tokenize_parts", samples, first, last)
    return outcomes if isinstance(outcomes, PartsBatch) else list(outcomes)


def _call_on_run(tokenizer: Tokenizer, method: str, samples: Sequence[Sample], first: int,
                 last: int) -> Sequence:
    """``tokenizer.<method>(path, parts)`` (``tokenize_parts`` or ``read_parts``) for the run
    ``samples[first:last]`` of one file, one entry per sample: a listing problem, or a
    SampleError raised by the call, is every sample's error."""
    head, parts = run_parts(samples, first, last)
    if head.problem is not None:
        return [SampleError(*head.problem, stage="source")]
    try:
        outcomes = getattr(tokenizer, method)(head.path, parts)
    except SampleError as exc:
        return [exc] * len(parts)
    if len(outcomes) != len(parts):  # a tokenizer bug: results would land on the wrong rows
        raise RuntimeError(f"{type(tokenizer).__name__}.{method} returned {len(outcomes)} "
                           f"results for {len(parts)} parts of {head.path}")
    return outcomes


def _batched_runs(tokenizer: Tokenizer, samples: Sequence[Sample], device: ComputeDevice
                  ) -> Iterator[tuple[int, int, list[dict[str, np.ndarray] | SampleError]]]:
    """``(first, stop, outcomes)`` like the CPU path's runs, one row at a time: every run is
    decoded by ``read_parts`` and its samples computed ``device_batch_size`` at a time by
    ``tokenize_batch``, so at most one batch of decoded samples is held."""
    pending: list[tuple[int, Any]] = []

    def compute() -> Iterator[tuple[int, int, list]]:
        results = tokenizer.tokenize_batch([item for _, item in pending], device)
        if len(results) != len(pending):
            raise RuntimeError(f"{type(tokenizer).__name__}.tokenize_batch returned "
                               f"{len(results)} results for {len(pending)} samples")
        for (row, _), result in zip(pending, results):
            yield row, row + 1, [result]
        pending.clear()

    for first, last in file_runs(samples):
        decoded = _call_on_run(tokenizer, "read_parts", samples, first, last)
        for row, item in enumerate(decoded, first):
            if isinstance(item, SampleError):
                yield row, row + 1, [item]
                continue
            pending.append((row, item))
            if len(pending) >= tokenizer.device_batch_size:
                yield from compute()
    if pending:
        yield from compute()


@dataclass(frozen=True)
class TokenizeJob(ShardJob):
    """Tokenize's work, sent once to every worker: the tokenizer (its config), the store and
    ``--strict``. The samples travel with each task instead (``shard_slice``), so a worker
    holds one shard's slice, never the whole sample list."""

    tokenizer: Tokenizer
    output: str
    strict: bool = False
    compute: ComputeDevice = CPU

    @property
    def device(self) -> str:
        """The torch device name the engines place workers by (Ray: one GPU per actor)."""
        return self.compute.torch

    @property
    def stateful(self) -> bool:  # type: ignore[override]
        # on a GPU, Ray runs the shards on actors holding one GPU each, as embed does
        return self.compute.torch != "cpu"

    def setup(self, context: WorkerContext) -> ShardWriter:
        # shard after shard of buffers of a few MB: without it, each shard's freed buffers
        # stay in the heap and the peak RSS creeps up with the number of shards
        pin_mmap_threshold()
        return ShardWriter(self.output)

    def work(self, state: ShardWriter, shard: int, payload: Sequence[Sample],
             on_sample: Callable[..., None] | None = None) -> dict:
        return work_shard(shard, payload, self.tokenizer, state, self.strict, on_sample,
                          self.compute)


def tokenize(
    source: str | os.PathLike | Sequence[str] | SampleList | None = None,
    output: str | os.PathLike = "tokens.zarr",
    modality: str | None = None,
    *,
    manifest: str | os.PathLike | None = None,
    root: str | None = None,
    labels: str = "folder",
    path_column: str = "path",
    label_column: str | None = None,
    follow_external_symlinks: bool = False,
    workers: int = 1,
    shard_size: int | None = None,
    overwrite: bool = False,
    repair: bool = False,
    strict: bool = False,
    max_errors: int | None = None,
    progress: bool = True,
    stats_from_data: bool = False,
    config_from: str | os.PathLike | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    ray_num_cpus: float | None = None,
    max_retries: int = 3,
    label_map: str | os.PathLike | None = None,
    like_encoder: str | None = None,
    device: str = "cpu",
    **options: Any,
) -> RunSummary:
    """Tokenize raw files into a Zarr token store; resumes an existing store by default.

    ``source`` is a folder (class = first sub-folder), a sequence of file paths, or a
    :class:`SampleList`; alternatively pass ``manifest`` (CSV/JSONL with path and label
    columns). ``modality`` defaults to ``"image"``. ``options`` are the modality's config
    fields (``size=224, patch=16, ...``). A resumed run rewrites committed shards whose files
    are gone; ``repair`` also checks every committed shard against its checksums and
    rewrites the damaged ones.

    ``stats_from_data`` first fits the tokenizer's statistics on this data (training data
    only); ``config_from`` (a token or feature store) instead reuses that store's whole
    tokenizer config, fitted statistics, modality and shard size included, so validation
    and test data are tokenized exactly like the training data (see :mod:`mmtok.fitted`).

    ``engine="ray"`` runs the shards as Ray tasks (``workers`` of them in flight) on the
    cluster at ``ray_address`` (default ``RAY_ADDRESS``, else a local instance started for
    the run), each task asking for ``ray_num_cpus`` CPUs and retried ``max_retries`` times
    when its worker dies; the store is byte-identical to the local engine's (docs/engines.md).
    ``label_map`` labels the elements of a multi-sample file (a hyperspectral cube's pixels,
    for modalities that take one): it decides which samples there are, so it is part of the
    source (recorded in its description), not of the config.

    ``like_encoder`` (a timm model name) sets the options that cut tokens as that model's
    own preprocessing would (image: size, patch, crop, interpolation, statistics, from
    timm's data config); options given explicitly still win.

    ``device`` ("cpu", "cuda", "cuda:N" or "auto") is where the compute-heavy steps of
    tokenizers with a batched path run (points: FPS + KNN; the image family: patchify);
    readers always decode on the CPU workers, and the store is byte-identical to the CPU
    path's (:mod:`mmtok.devices`).
    """
    started = time.perf_counter()
    _refuse_in_worker_bootstrap()
    check_output_is_not_input("tokenize", output, {
        "source folder": source if isinstance(source, (str, os.PathLike)) else None,
        "manifest": manifest, "root folder": root})
    check_output_kind(output, "tokens")
    # Every argument is checked before the source is listed or any data is read: a typo
    # must not cost a walk over the source or a statistics pass.
    _check_run_arguments(workers, max_errors, shard_size)
    compute = resolve_tokenize_device(device)
    runner = make_engine(EngineOptions(engine, workers, ray_address, ray_num_cpus,
                                       max_retries=max_retries), WorkerContext())
    output = runner.check_output(os.fspath(output))  # absolute for Ray: every node's path
    reused = _reused_config(config_from, stats_from_data)
    if reused is not None:
        modality, options = reused.modality, reused_options(reused, modality, options)
    modality = modality or "image"
    if like_encoder is not None:
        if reused is not None:
            raise UsageError("--config-from reuses that store's whole config; --like-encoder "
                             "would replace part of it: give one or the other")
        options = like_encoder_options(modality, like_encoder, **options)
    tokenizer = _with_label_map(create_tokenizer(modality, **options), label_map)
    if stats_from_data and not fits_statistics(tokenizer):
        raise UsageError(f"modality {modality!r} cannot compute its normalisation statistics "
                         "from the data; pass them with --set instead")
    samples = list_samples(tokenizer, source, manifest=manifest, root=root, labels=labels,
                           path_column=path_column, label_column=label_column,
                           follow_external_symlinks=follow_external_symlinks,
                           label_map=label_map)
    fitted = reused.fitted if reused is not None else None
    if stats_from_data:
        tokenizer, fitted = _fit_statistics(tokenizer, modality, options, samples, label_column)
        tokenizer = _with_label_map(tokenizer, label_map)
    specs = tokenizer.sample_arrays()
    if shard_size is None:
        # a reused config keeps its store's shard size: the config hash covers the layout
        shard_size = (reused.shard_size if reused is not None
                      else default_shard_size(sum(s.sample_bytes for s in specs.values()),
                                              tokenizer.max_shard_samples))
    spec = StoreSpec(
        kind="tokens", modality=modality, config=config_to_dict(tokenizer.config), arrays=specs,
        static_arrays=tokenizer.static_arrays(), num_samples=len(samples),
        shard_size=shard_size, class_names=samples.class_names, source=samples.description,
        source_hash=samples.fingerprint(), extra_attrs=provenance_attrs(fitted, reused),
    )
    job = TokenizeJob(tokenizer, output, strict, compute)
    run = StepRun("tokenize", spec, overwrite, repair, progress, max_errors)
    summary = run_step(run, job, runner,
                       lambda shard: shard_slice(samples.samples, shard, shard_size), started)
    return _with_hints(summary, modality)

def _with_hints(summary: RunSummary, modality: str) -> RunSummary:
    """A run in which every sample failed most often read files of another modality: say
    which files this modality reads (the CLI then exits with NoValidSamples' code)."""
    if summary.nothing_valid:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary.errors_by_kind.items()))
        summary.warnings.append(
            f"every sample failed ({kinds}): are these {modality} files? -m {modality} reads "
            f"{' '.join(get_modality(modality).extensions)}; `mmtok modalities` lists the "
            "others, and `mmtok info STORE --errors` shows each sample's error")
    return summary


def plan(
    source: str | os.PathLike | Sequence[str] | SampleList | None = None,
    output: str | os.PathLike = "tokens.zarr",
    modality: str = "image",
    *,
    manifest: str | os.PathLike | None = None,
    root: str | None = None,
    labels: str = "folder",
    path_column: str = "path",
    label_column: str | None = "label",
    follow_external_symlinks: bool = False,
    shard_size: int | None = None,
    show: int = 5,
    **options: Any,
) -> dict:
    """What ``tokenize`` with these arguments would do, without reading a sample or writing
    anything (``tokenize --dry-run``): samples, classes, shard plan, the first ids.

    Lists the source exactly as :func:`tokenize` does; statistics that ``stats_from_data``
    would compute are not computed (that pass reads every input)."""
    check_output_is_not_input("tokenize", output, {
        "source folder": source if isinstance(source, (str, os.PathLike)) else None,
        "manifest": manifest, "root folder": root})
    tokenizer = create_tokenizer(modality, **options)
    samples = list_samples(tokenizer, source, manifest=manifest, root=root, labels=labels,
                           path_column=path_column, label_column=label_column,
                           follow_external_symlinks=follow_external_symlinks)
    specs = tokenizer.sample_arrays()
    if shard_size is None:
        shard_size = default_shard_size(sum(s.sample_bytes for s in specs.values()),
                                        tokenizer.max_shard_samples)
    count = len(samples)
    listed = samples.samples
    problems = (listed.problem_count() if isinstance(listed, ExpandedSamples)
                else sum(1 for s in listed if s.problem is not None))
    existing = read_attrs(output)
    return {
        "store": os.fspath(output), "modality": modality, "num_samples": count,
        "class_names": list(samples.class_names), "shard_size": shard_size,
        "num_shards": -(-count // shard_size),
        "bytes_per_sample": sum(s.sample_bytes for s in specs.values()),
        "known_problems": problems,
        "first_ids": [s.id for s in samples.samples[:show]],
        "output": "resume" if existing is not None else "create",
        "config": config_to_dict(tokenizer.config),
    }


def list_samples(
    tokenizer: Tokenizer,
    source: str | os.PathLike | Sequence[str] | SampleList | None,
    *,
    manifest: str | os.PathLike | None = None,
    root: str | None = None,
    labels: str = "folder",
    path_column: str = "path",
    label_column: str | None = "label",
    follow_external_symlinks: bool = False,
    label_map: str | os.PathLike | None = None,
) -> SampleList:
    """Every sample ``tokenize`` (and ``--dry-run``) would write: the source's files, side
    files dropped, multi-sample files expanded into their parts (metadata only)."""
    modality = tokenizer.config.modality
    extensions = get_modality(modality).extensions
    samples = build_sample_list(
        source, extensions, manifest=manifest, root=root, labels=labels,
        path_column=path_column, label_column=label_column,
        follow_external_symlinks=follow_external_symlinks,
    )
    if label_map is not None:
        samples = SampleList(samples.samples, samples.class_names,
                             {**samples.description, "label_map": tokenizer.label_map})
    if tokenizer.is_companion is not None:
        samples = drop_companions(samples, tokenizer.is_companion)
    if tokenizer.list_parts is not None:
        list_parts = tokenizer.list_parts
        if tokenizer.list_parts_label_column:  # rows of a table: --label-column picks labels
            list_parts = functools.partial(list_parts, label_column=label_column)
        samples = expand_parts(samples, list_parts, tokenizer.part_class_names)
    if len(samples) == 0:
        raise UsageError(f"no {modality} files found in the source "
                         f"(extensions: {' '.join(extensions)})")
    return samples


def _with_label_map(tokenizer: Tokenizer, label_map: str | os.PathLike | None) -> Tokenizer:
    if label_map is None:
        return tokenizer
    if not os.path.isfile(label_map):
        raise UsageError(f"--label-map {label_map}: no such file")
    return tokenizer.with_label_map(os.path.abspath(label_map))


def _check_run_arguments(workers: int, max_errors: int | None, shard_size: int | None) -> None:
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if max_errors is not None and max_errors < 0:
        raise UsageError("--max-errors must be 0 or more")
    if shard_size is not None and shard_size < 1:
        raise UsageError("--shard-size must be at least 1")


def _reused_config(config_from: str | os.PathLike | None,
                   stats_from_data: bool) -> ReusedConfig | None:
    if config_from is None:
        return None
    if stats_from_data:
        raise UsageError("--config-from reuses the statistics fitted on that store's data, "
                         "--stats-from-data would fit new ones on this data (for test data, "
                         "a leak); give one or the other")
    return read_reused_config(config_from)


def _fit_statistics(tokenizer: Tokenizer, modality: str, options: dict,
                    samples: SampleList, label_column: str | None = None
                    ) -> tuple[Tokenizer, dict]:
    """The tokenizer with its statistics fitted on ``samples``, and the fitted record."""
    # A deterministic pre-pass: a rerun computes the same values, so the config (and with
    # it resume) is unchanged.
    paths = samples.paths()
    if tokenizer.list_parts_label_column:  # a table: its label column is not a feature
        fitted = tokenizer.statistics_from(paths, label_column=label_column)
    else:
        fitted = tokenizer.statistics_from(paths)
    return create_tokenizer(modality, **{**options, **fitted}), fitted_record(fitted, samples)
