"""``tokenize``: Source -> Reader/Tokenizer -> ShardWriter, one shard per unit of work.

``work_shard`` is a pure function of the sample list, the tokenizer config and the shard
index, so a shard rewritten after a crash, or by another worker count, has the same bytes.
Scheduling is the only thing that differs between one worker (in this process) and many (a
spawn-started process pool: forking after Zarr has started its I/O thread would deadlock).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
import signal
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from .errors import SampleError, TooManyErrors, UsageError, WorkerDied
from .fitted import (
    ReusedConfig,
    fitted_record,
    provenance_attrs,
    read_reused_config,
    reused_options,
)
from .modalities import create_tokenizer, get_modality
from .modalities.base import Tokenizer, config_to_dict, fits_statistics, like_encoder_options
from .sources import Sample, SampleList, expand_parts, from_file_list, from_folder, from_manifest
from .store.layout import shard_bounds
from .store.lock import StoreLock
from .store.summary import RunSummary, summarise_run
from .store.writer import (
    ShardData,
    ShardWriter,
    StoreSpec,
    prepare_store,
    writing,
)

SHARD_TARGET_BYTES = 64 << 20


def default_shard_size(sample_bytes: int) -> int:
    """A power of two giving shards of about 64 MB, between 16 and 4096 samples."""
    target = max(16, min(4096, SHARD_TARGET_BYTES // max(1, sample_bytes)))
    return 1 << (target.bit_length() - 1)


def build_sample_list(
    source: str | os.PathLike | Sequence[str] | SampleList | None,
    extensions: Sequence[str],
    *,
    manifest: str | os.PathLike | None = None,
    root: str | None = None,
    labels: str = "folder",
    path_column: str = "path",
    label_column: str | None = "label",
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
                             label_column if labels != "none" else None,
                             follow_external_symlinks)
    if labels == "manifest":
        raise UsageError("--labels manifest needs --manifest; folders and file lists take "
                         "--labels folder or none")
    if isinstance(source, (str, os.PathLike)):
        return from_folder(source, extensions, labels, follow_external_symlinks)
    return from_file_list(list(source), root, labels, follow_external_symlinks)


def work_shard(
    shard: int,
    samples: Sequence[Sample],
    tokenizer: Tokenizer,
    writer: ShardWriter,
    strict: bool = False,
    on_sample: Callable[[], None] | None = None,
) -> dict:
    """Tokenize and write one whole shard; returns its commit marker.

    ``samples`` are this shard's samples only (``shard_slice``), so a worker is handed its
    own slice, never the whole list. Consecutive samples of one file go to the tokenizer in
    one ``tokenize_parts`` call; every sample's result or error still lands in its own row.
    """
    attrs = writer.attrs
    start, stop = shard_bounds(shard, attrs["num_samples"], attrs["shard_size"])
    if len(samples) != stop - start:  # a caller passed the whole list, or the wrong slice
        raise ValueError(f"shard {shard} holds samples {start}:{stop}, got {len(samples)}")
    specs = tokenizer.sample_arrays()
    arrays = {name: np.zeros((stop - start, *s.shape), s.dtype) for name, s in specs.items()}
    valid = np.zeros(stop - start, dtype=bool)
    errors = []
    for first, last in file_runs(samples):
        for row, outcome in enumerate(_tokenize_run(tokenizer, samples[first:last]), first):
            sample = samples[row]
            if isinstance(outcome, SampleError):
                if strict:
                    raise TooManyErrors(f"{sample.id}: {outcome.kind}: {outcome.message} "
                                        "(--strict)") from None
                errors.append({"index": start + row, "id": sample.id, "kind": outcome.kind,
                               "stage": outcome.stage, "message": outcome.message})
            else:
                for name, values in outcome.items():
                    arrays[name][row] = values
                valid[row] = True
            if on_sample is not None:
                on_sample()
    labels = np.array([s.label for s in samples], dtype=np.int32)
    ids = [s.id for s in samples]
    return writer.write(shard, ShardData(arrays, labels, valid, ids, errors))


def shard_slice(samples: Sequence[Sample], shard: int, shard_size: int) -> Sequence[Sample]:
    """The samples of shard ``shard``: what ``work_shard`` and a worker's task receive."""
    start, stop = shard_bounds(shard, len(samples), shard_size)
    return samples[start:stop]


def file_runs(samples: Sequence[Sample]) -> list[tuple[int, int]]:
    """``(first, stop)`` index ranges of maximal runs of consecutive samples that read the
    same file. A sample with a listing problem is a run of its own (it is never read)."""
    runs: list[tuple[int, int]] = []
    for index, sample in enumerate(samples):
        previous = samples[index - 1] if index else None
        if (previous is not None and sample.problem is None and previous.problem is None
                and sample.path == previous.path):
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def _tokenize_run(tokenizer: Tokenizer, run: Sequence[Sample]
                  ) -> list[dict[str, np.ndarray] | SampleError]:
    """One ``tokenize_parts`` call for a run of samples of one file: a dict or a
    SampleError per sample. An error raised by the call is every sample's error."""
    if run[0].problem is not None:
        return [SampleError(*run[0].problem, stage="source")]
    try:
        outcomes = tokenizer.tokenize_parts(run[0].path, [s.part for s in run])
    except SampleError as exc:
        return [exc] * len(run)
    if len(outcomes) != len(run):  # a tokenizer bug: results would land on the wrong rows
        raise RuntimeError(f"{type(tokenizer).__name__}.tokenize_parts returned "
                           f"{len(outcomes)} results for {len(run)} parts of {run[0].path}")
    return list(outcomes)


# --- process pool plumbing: state set once per worker by the initializer -------------------
_WORKER: dict[str, Any] = {}


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this worker when the parent dies. A worker whose parent was
    SIGKILLed would otherwise live on: blocked forever on the task queue (holding memory),
    or still writing its shard after the lock is gone and a new run has started."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)


def _init_worker(parent, tokenizer, store_path, strict, counter) -> None:
    """Per-worker state shared by every task; the samples travel with each task instead
    (``_pool_work``), so a worker holds one shard's slice, not the whole sample list."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C for everyone
    _WORKER.update(tokenizer=tokenizer, writer=ShardWriter(store_path), strict=strict,
                   counter=counter)


def _count_one() -> None:
    counter = _WORKER["counter"]
    with counter.get_lock():
        counter.value += 1


def _pool_work(shard: int, samples: Sequence[Sample]) -> dict:
    """One task: shard ``shard`` with its own samples (``shard_slice``)."""
    w = _WORKER
    return work_shard(shard, samples, w["tokenizer"], w["writer"], w["strict"], _count_one)


def tokenize(
    source: str | os.PathLike | Sequence[str] | SampleList | None = None,
    output: str | os.PathLike = "tokens.zarr",
    modality: str | None = None,
    *,
    manifest: str | os.PathLike | None = None,
    root: str | None = None,
    labels: str = "folder",
    path_column: str = "path",
    label_column: str | None = "label",
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
    like_encoder: str | None = None,
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

    ``like_encoder`` (a timm model name) sets the options that cut tokens as that model's
    own preprocessing would (image: size, patch, crop, interpolation, statistics, from
    timm's data config); options given explicitly still win.
    """
    started = time.perf_counter()
    # Every argument is checked before the source is listed or any data is read: a typo
    # must not cost a walk over the source or a statistics pass.
    _check_run_arguments(workers, max_errors, shard_size)
    reused = _reused_config(config_from, stats_from_data)
    if reused is not None:
        modality, options = reused.modality, reused_options(reused, modality, options)
    modality = modality or "image"
    if like_encoder is not None:
        if reused is not None:
            raise UsageError("--config-from reuses that store's whole config; --like-encoder "
                             "would replace part of it: give one or the other")
        options = like_encoder_options(modality, like_encoder, **options)
    tokenizer = create_tokenizer(modality, **options)
    if stats_from_data and not fits_statistics(tokenizer):
        raise UsageError(f"modality {modality!r} cannot compute its normalisation statistics "
                         "from the data; pass them with --set instead")
    samples = build_sample_list(
        source, get_modality(modality).extensions, manifest=manifest, root=root, labels=labels,
        path_column=path_column, label_column=label_column,
        follow_external_symlinks=follow_external_symlinks,
    )
    if tokenizer.list_parts is not None:
        samples = expand_parts(samples, tokenizer.list_parts, tokenizer.part_class_names)
    if len(samples) == 0:
        raise UsageError(f"no {modality} files found in the source "
                         f"(extensions: {' '.join(get_modality(modality).extensions)})")
    fitted = reused.fitted if reused is not None else None
    if stats_from_data:
        tokenizer, fitted = _fit_statistics(tokenizer, modality, options, samples)
    specs = tokenizer.sample_arrays()
    if shard_size is None:
        # a reused config keeps its store's shard size: the config hash covers the layout
        shard_size = (reused.shard_size if reused is not None
                      else default_shard_size(sum(s.sample_bytes for s in specs.values())))
    spec = StoreSpec(
        kind="tokens", modality=modality, config=config_to_dict(tokenizer.config), arrays=specs,
        static_arrays=tokenizer.static_arrays(), num_samples=len(samples),
        shard_size=shard_size, class_names=samples.class_names, source=samples.description,
        source_hash=samples.fingerprint(), extra_attrs=provenance_attrs(fitted, reused),
    )
    output = os.fspath(output)
    with writing(output), StoreLock(output):
        resume = prepare_store(output, spec, overwrite, repair)
        done = set(resume.done)
        pending = [s for s in range(spec.num_shards) if s not in done]
        written = _run_shards(pending, samples.samples, tokenizer, output, spec, workers,
                              strict, max_errors, progress, done, resume.errors_in_done)
    return summarise_run(output, spec, written, len(done), time.perf_counter() - started,
                         resume.repaired)


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
                    samples: SampleList) -> tuple[Tokenizer, dict]:
    """The tokenizer with its statistics fitted on ``samples``, and the fitted record."""
    # A deterministic pre-pass: a rerun computes the same values, so the config (and with
    # it resume) is unchanged.
    paths = list(dict.fromkeys(s.path for s in samples.samples if s.problem is None))
    fitted = tokenizer.statistics_from(paths)
    return create_tokenizer(modality, **{**options, **fitted}), fitted_record(fitted, samples)


def _run_shards(pending, samples, tokenizer, output, spec, workers, strict, max_errors,
                progress, done, error_count: int) -> int:
    """Run the pending shards; returns how many samples were written."""
    from tqdm import tqdm

    already = sum(min(spec.shard_size, spec.num_samples - s * spec.shard_size) for s in done)
    bar = tqdm(total=spec.num_samples, initial=already, unit="sample", desc="tokenize",
               file=sys.stderr, disable=not progress, dynamic_ncols=True)

    def check_errors(marker: dict) -> None:
        nonlocal error_count
        error_count += len(marker["errors"])
        bar.set_postfix(errors=error_count, refresh=False)
        if max_errors is not None and error_count > max_errors:
            raise TooManyErrors(f"{error_count} samples failed, more than --max-errors "
                                f"{max_errors}; committed shards are kept, see `mmtok info`")

    written = 0
    try:
        if workers == 1 or len(pending) <= 1:
            writer = ShardWriter(output)
            for shard in pending:
                marker = work_shard(shard, shard_slice(samples, shard, spec.shard_size),
                                    tokenizer, writer, strict, lambda: bar.update(1))
                written += marker["stop"] - marker["start"]
                check_errors(marker)
        else:
            written = _run_pool(pending, samples, tokenizer, output, workers, strict, bar,
                                check_errors, spec.shard_size)
    finally:
        bar.close()
    return written


def _run_pool(pending, samples, tokenizer, output, workers, strict, bar, check_errors,
              shard_size: int) -> int:
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    pool = ProcessPoolExecutor(min(workers, len(pending)), mp_context=context,
                               initializer=_init_worker,
                               initargs=(os.getpid(), tokenizer, output, strict, counter))
    written = shown = 0
    try:
        # each task carries only its shard's samples: a million-row list is not pickled
        # into every worker, and a worker's memory does not grow with the source
        futures = {pool.submit(_pool_work, shard, shard_slice(samples, shard, shard_size)):
                   shard for shard in pending}
        remaining = set(futures)
        while remaining:
            finished, remaining = wait(remaining, timeout=0.2, return_when=FIRST_COMPLETED)
            with counter.get_lock():
                bar.update(counter.value - shown)
                shown = counter.value
            for future in finished:
                try:
                    marker = future.result()  # re-raises a worker's exception here
                except BrokenProcessPool:
                    raise WorkerDied(
                        f"a worker process died while writing shard {futures[future]} (killed "
                        "by the system, out of memory, or a crashing decoder); committed shards "
                        "are kept: rerun to resume, with -j 1 to see which sample fails"
                    ) from None
                written += marker["stop"] - marker["start"]
                check_errors(marker)
    except BaseException:
        # Stop now: unfinished shards have no marker, and a rerun redoes them.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return written
