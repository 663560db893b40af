"""Helpers shared by the benchmark scripts in this folder.

The scripts are run as ``python benchmarks/bench_x.py`` (from any working directory), so
this folder is ``sys.path[0]`` and they import from here with ``from _common import ...``.

Only the standard library is imported at module level: ``bench_fbank.py`` and
``bench_tokenize_audio.py`` import this module and call :func:`pin_single_thread` before
numpy is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")

# --------------------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------------------


def pin_single_thread() -> None:
    """Set the thread-count variables of OpenMP, MKL, OpenBLAS, numba and vecLib to 1.

    Takes effect only when called before numpy (or numba, scipy, ...) is first imported.
    """
    for var in THREAD_VARS:
        os.environ[var] = "1"


# --------------------------------------------------------------------------------------
# machine description
# --------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The first ``model name`` in /proc/cpuinfo, or ``"unknown"``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def mem_total_gib() -> float | None:
    """Total memory in GiB (one decimal) from /proc/meminfo ``MemTotal``, or None."""
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return mem_gib


def cpus_usable() -> int | None:
    """CPUs this process may run on (its affinity mask), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def describe_machine(versions: dict, *, with_torch: bool = False) -> dict:
    """The machine and software description every benchmark prints and keeps in its JSON.

    Keys, in order: ``cpu_model``, ``cpu_count``, ``cpus_usable``, ``mem_total_gib``,
    ``platform``, ``python``, (with ``with_torch``) ``torch``, ``torch_threads`` and
    ``torch_interop_threads``, then ``versions`` as given (library name -> version, None
    where the library is missing). Render it with :func:`machine_line`.
    """
    info = {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "cpus_usable": cpus_usable(),
            "mem_total_gib": mem_total_gib(), "platform": platform.platform(),
            "python": platform.python_version()}
    if with_torch:  # imported only on request: torch takes seconds to import
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                    torch_interop_threads=torch.get_num_interop_threads())
    info.update(versions)
    return info


# how machine_line spells a library whose key is not its usual name
DISPLAY_NAMES = {"pillow": "Pillow", "libjpeg_turbo": "libjpeg-turbo", "sklearn": "scikit-learn"}
# keys machine_line shows elsewhere in the line (or, ``platform``, leaves to the JSON)
_HARDWARE_KEYS = ("cpu_model", "cpu_count", "cpus_usable", "mem_total_gib", "platform",
                  "python", "torch_threads", "torch_interop_threads")


def machine_line(info: dict) -> str:
    """A :func:`describe_machine` dict as the one ``Machine:`` line the benchmarks print:
    CPU model, cores (usable), memory; Python, torch with its thread counts, then every
    other library with its version (``missing`` for None)."""
    hardware = f"{info['cpu_model']}, {info['cpu_count']} cores ({info['cpus_usable']} usable)"
    if info.get("mem_total_gib") is not None:
        hardware += f", {info['mem_total_gib']} GiB RAM"
    software = [f"Python {info['python']}"]
    for key, version in info.items():
        if key in _HARDWARE_KEYS:
            continue
        text = f"{DISPLAY_NAMES.get(key, key)} {'missing' if version is None else version}"
        if key == "torch" and "torch_threads" in info:
            text += (f" ({info['torch_threads']} threads, interop "
                     f"{info['torch_interop_threads']})")
        software.append(text)
    return f"Machine: {hardware}; {', '.join(software)}"


# --------------------------------------------------------------------------------------
# CPU time taken by other processes
# --------------------------------------------------------------------------------------


def machine_busy_seconds() -> float | None:
    """CPU seconds all CPUs have spent busy since boot (steal excluded), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cpu_snapshot() -> tuple[float | None, float, float]:
    """(machine busy CPU-s, own CPU-s, wall clock) now; the start for :func:`foreign_cpu`."""
    return machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()


def foreign_cpu(start: tuple[float | None, float, float]) -> tuple[float | None, float | None]:
    """CPU time other processes used since ``start`` (a :func:`cpu_snapshot`).

    Returns (CPU seconds, share of the machine's capacity over that wall time), or
    (None, None) where /proc/stat cannot be read. Child processes count as ours only once
    they have been waited for (join pools before calling this).
    """
    busy0, own0, wall0 = start
    if busy0 is None:
        return None, None
    foreign = max(0.0, (machine_busy_seconds() - busy0) - (own_cpu_seconds() - own0))
    share = foreign / ((time.perf_counter() - wall0) * (os.cpu_count() or 1))
    return foreign, share


def foreign_cpu_line(foreign: float, share: float, threshold: float = 0.03) -> str:
    """The report line on other processes' CPU use, with a warning above ``threshold``."""
    return (f"Other processes used {foreign:.1f} CPU-s ({share:.1%} of this "
            "machine's capacity) during the measurements"
            + ("; WARNING: the figures are disturbed, rerun on a quiet machine."
               if share > threshold else "."))


def foreign_cpu_notes(foreign: float | None, share: float | None) -> list[str]:
    """:func:`foreign_cpu_line` as a list of report lines: none where /proc/stat was
    unreadable (``foreign`` None)."""
    return [] if foreign is None else [foreign_cpu_line(foreign, share)]


# --------------------------------------------------------------------------------------
# timing and formatting
# --------------------------------------------------------------------------------------


def interleaved_times(fns: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """Wall seconds of every call, per contestant; repetitions interleaved across contestants
    (a, b, c, a, b, c, ...) so that machine drift hits every contestant alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def timed(fns: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median seconds per contestant; repetitions interleaved across contestants."""
    return {k: statistics.median(v) for k, v in interleaved_times(fns, reps).items()}


def verdict(ok: bool) -> str:
    """``"PASS"`` or ``"FAIL"``."""
    return "PASS" if ok else "FAIL"


def open_workdir(workdir: Path, title: str) -> Path:
    """``workdir`` resolved and created; prints the report's title and the folder."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# {title}\n\nworkdir: {workdir}", flush=True)
    return workdir


def results_table_head(heading: str, machine: dict) -> list[str]:
    """The opening lines of a Results section: ``heading``, the machine line and the header
    of the Measurement | Value | Ratio | Goal | Result table."""
    return ["", heading, "", machine_line(machine), "",
            "| Measurement | Value | Ratio | Goal | Result |", "|---|---:|---:|---|---|"]


def fmt_seconds(values: list[float]) -> str:
    """Seconds as ``"1.23, 4.56"`` (two decimals, comma-separated)."""
    return ", ".join(f"{s:.2f}" for s in values)


# --------------------------------------------------------------------------------------
# generated data folders
# --------------------------------------------------------------------------------------


def photo_like_pixels(rng, width: int, height: int, noise: float):
    """A photo-like uint8 RGB array (height, width, 3): a smooth random colour field, a linear
    gradient, a coarse texture and pixel noise of std ``noise``, all drawn from ``rng``
    (numpy and Pillow are imported here: this module imports only the standard library)."""
    import numpy as np
    from PIL import Image

    small = rng.integers(0, 256, size=(int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3),
                         dtype=np.uint8)
    base = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC),
                      dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    gradient = (np.cos(angle) * xx / width + np.sin(angle) * yy / height) * rng.uniform(20, 60)
    texture = rng.normal(0, 1, size=(height // 8 + 1, width // 8 + 1, 3)).astype(np.float32)
    texture = np.asarray(
        Image.fromarray((texture * 20 + 128).clip(0, 255).astype(np.uint8)).resize(
            (width, height), Image.Resampling.BILINEAR),
        dtype=np.float32) - 128
    pixels = rng.normal(0, noise, size=(height, width, 3)).astype(np.float32)
    return (base + gradient[..., None] + texture + pixels).clip(0, 255).astype(np.uint8)


def reusable_files(folder: Path, wanted: dict, count: int,
                   list_files: Callable[[Path], list[Path]]) -> list[Path] | None:
    """The files of a generated folder if its ``.bench_images.json`` stamp equals ``wanted``
    and ``list_files(folder)`` finds ``count`` of them; None when it must be regenerated."""
    stamp = folder / ".bench_images.json"
    if stamp.is_file():
        try:
            same = json.loads(stamp.read_text()) == wanted
        except (OSError, json.JSONDecodeError):
            same = False
        files = list_files(folder)
        if same and len(files) == count:
            return files
    return None


def fresh_class_folders(folder: Path, classes: int) -> None:
    """Delete ``folder`` if present and create empty ``class_0`` .. ``class_{classes-1}``."""
    if folder.exists():
        shutil.rmtree(folder)
    for c in range(classes):
        (folder / f"class_{c}").mkdir(parents=True)


def write_stamp(folder: Path, wanted: dict) -> None:
    """Mark a generated folder complete (see :func:`reusable_files`)."""
    (folder / ".bench_images.json").write_text(json.dumps(wanted))


def generated_folder(folder: Path, wanted: dict, count: int, classes: int,
                     list_files: Callable[[Path], list[Path]],
                     generate: Callable[[], object]) -> tuple[list[Path], bool]:
    """(files, reused): the ``count`` files of a generated folder, reused when its stamp
    equals ``wanted``; otherwise ``folder`` is emptied into ``classes`` class folders,
    ``generate()`` fills them and the stamp is written last (an interrupted generation is
    never reused)."""
    files = reusable_files(folder, wanted, count, list_files)
    if files is not None:
        return files, True
    fresh_class_folders(folder, classes)
    generate()
    write_stamp(folder, wanted)
    return list_files(folder), False


def link_or_copy(source: Path, dest: Path) -> None:
    """A hard link at ``dest`` to ``source`` (no extra disk, same page cache), a copy where
    links fail (another file system); creates ``dest``'s folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


# --------------------------------------------------------------------------------------
# audio (bench_fbank.py, bench_tokenize_audio.py)
# --------------------------------------------------------------------------------------


def librosa_log_mel(y):
    """librosa's closest match to mmtok's Kaldi fbank at 16 kHz: melspectrogram with the same
    window length (400), hop (160), FFT size (512) and mel count (128), no centring, power
    spectrum, then ``log(max(S, float32 eps))`` (numpy and librosa are imported here)."""
    import librosa
    import numpy as np

    spec = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, win_length=400,
                                          hop_length=160, n_mels=128, center=False, power=2.0)
    return np.log(np.maximum(spec, np.finfo(np.float32).eps))


# --------------------------------------------------------------------------------------
# point clouds (bench_fps.py, bench_knn.py)
# --------------------------------------------------------------------------------------


def make_cloud(n: int, kind: str, rng):
    """``n`` float32 3-D points: ``gauss`` (standard normal), ``sphere`` (on the unit sphere,
    a surface like a normalised object scan) or anything else (uniform in the unit cube)."""
    import numpy as np

    if kind == "gauss":
        return rng.standard_normal((n, 3)).astype(np.float32)
    if kind == "sphere":
        v = rng.standard_normal((n, 3))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return rng.random((n, 3)).astype(np.float32)


def make_cloud_batch(count: int, n: int, kind: str, rng):
    """``count`` clouds of :func:`make_cloud` stacked into one (count, n, 3) array."""
    import numpy as np

    return np.stack([make_cloud(n, kind, rng) for _ in range(count)])


def print_point_header(title: str, machine: dict, reps: int, cold_seconds: float) -> None:
    """The opening of a point-cloud benchmark's report: title, machine, and the first call's
    time (numba's JIT compile or cache load, kept out of every timed figure)."""
    print(title)
    print()
    print(f"{machine_line(machine)}; reps {reps} (median)")
    print(f"mmtok first call in this process (numba import + JIT or cache load): "
          f"{cold_seconds:.2f} s")
    print()


def print_cloud_table(heading: str, times: dict[str, float],
                      exactness: dict[str, tuple[str, str]]) -> None:
    """A one-cloud section: per contestant ms, time relative to ``times["mmtok"]`` and its
    exactness columns, ``exactness[name]`` = (``=ref`` text, ``=mmtok`` text)."""
    base = times["mmtok"]
    print(heading)
    print()
    print("| contestant | ms | time / mmtok | =ref | =mmtok |")
    print("|---|---:|---:|:-:|:-:|")
    for name, t in times.items():
        same_ref, same_ours = exactness[name]
        print(f"| {name} | {t * 1e3:.3f} | {t / base:.2f}x | {same_ref} | {same_ours} |")
    print()


def batch_contest(size: str, row_label: str, fns: dict[str, Callable[[], object]], reps: int,
                  batch: int, identical: bool) -> list[dict]:
    """Warm up and time the batch contestants (the first is mmtok's batched call; a third of
    ``reps``: every call covers ``batch`` clouds), print their table under ``size`` and
    return their result rows labelled ``row_label``. ``identical`` says whether mmtok's
    batched output matched the reference on the first clouds (shown in the heading)."""
    for fn in fns.values():
        fn()  # warm-up: JIT compile, caches
    times = timed(fns, max(1, reps // 3))
    print_batch_table(f"## {size}, batch of B = {batch} (first 2 clouds checked against the "
                      f"reference: {'identical' if identical else 'DIFFERENT'})", times, batch)
    return speed_rows(f"{row_label}, batch of {batch}", times, next(iter(times)))


def parse_point_args(doc: str, argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of the point-cloud benchmarks: ``--reps``, ``--batch``, ``--cloud``
    and, for their GPU sections, ``--gpu-reps`` and ``--gpu-only``."""
    parser = standard_args(doc, quick="3 repetitions, batches of 4 clouds (GPU: 20 calls)",
                           reps=(15, 3), reps_help="repetitions, the median counts", gpu=True)
    parser.add_sized("--batch", 32, 4, "clouds per batch")
    parser.add_argument("--cloud", choices=["gauss", "sphere", "uniform"], default="gauss")
    parser.add_sized("--gpu-reps", 100, 20, "timed calls in the GPU section (the median counts)")
    return parser.parse_args(argv)


def speed_rows(label: str, times: dict[str, float], ours: str,
               goal_peers: dict[str, str] | None = None) -> list[dict]:
    """Result rows for one timing table: mmtok's time (``times[ours]``) against every other
    contestant's, ratio = peer time / mmtok time (above 1: mmtok faster); a peer named in
    ``goal_peers`` (name -> goal text) is judged as mmtok no slower than it."""
    goal_peers = goal_peers or {}
    rows = []
    for name, t in times.items():
        if name == ours:
            continue
        goal = goal_peers.get(name)
        rows.append(result_row(f"{label}: {ours}", round(times[ours] * 1e3, 4), "ms", peer=name,
                               peer_value=round(t * 1e3, 4), ratio=round(t / times[ours], 3),
                               ratio_of="peer time / mmtok time", goal=goal,
                               passed=None if goal is None else times[ours] <= t))
    return rows


def print_batch_table(heading: str, btimes: dict[str, float], batch: int) -> None:
    """A batch section: ``heading``, then per contestant ms per batch, ms per cloud and time
    relative to the first contestant."""
    bbase = next(iter(btimes.values()))
    print(heading)
    print()
    print("| contestant | ms per batch | ms per cloud | time / mmtok batched |")
    print("|---|---:|---:|---:|")
    for name, t in btimes.items():
        print(f"| {name} | {t * 1e3:.2f} | {t * 1e3 / batch:.3f} | {t / bbase:.2f}x |")
    print()


def print_goals(heading: str, goals: list[tuple[str, float, float]], peer: str = "") -> None:
    """A goals section: ``heading``, then per (label, mmtok seconds, peer seconds) both times
    in ms, the speed-up and PASS when mmtok is no slower; ``peer`` names the peer's time."""
    print(heading)
    print()
    vs = f"vs {peer} " if peer else "vs "
    for label, ours_t, peer_t in goals:
        print(f"- {label}: mmtok {ours_t * 1e3:.3f} ms {vs}{peer_t * 1e3:.3f} ms "
              f"({peer_t / ours_t:.2f}x faster): {verdict(ours_t <= peer_t)}")


# --------------------------------------------------------------------------------------
# results JSON
# --------------------------------------------------------------------------------------


def utc_now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_run_json(path: Path, benchmark: str, machine: dict, fields: dict,
                   foreign: float | None, run_started: float) -> None:
    """The detailed ``--json`` file of the image and embed benchmarks: ``benchmark``, the
    date, ``machine``, then ``fields``, then other processes' CPU seconds and the wall time
    since ``run_started`` (a ``time.perf_counter()``)."""
    write_results_json(path, {
        "benchmark": benchmark, "date_utc": utc_now(), "machine": machine, **fields,
        "foreign_cpu_seconds": None if foreign is None else round(foreign, 1),
        "wall_seconds": round(time.perf_counter() - run_started, 1)})


def write_results_json(path: Path, payload: dict, *, announce: bool = True) -> None:
    """Write ``payload`` to ``path`` as indented JSON, creating the folder.

    With ``announce`` the file ends with a newline and ``wrote PATH`` is printed after a
    blank line; without, the file has no final newline and nothing is printed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2)
    path.write_text(text + "\n" if announce else text)
    if announce:
        print(f"\nwrote {path}")


# --------------------------------------------------------------------------------------
# the machine-readable result every benchmark writes for the report (benchmarks/report.py)
# --------------------------------------------------------------------------------------

RESULT_SCHEMA = 1


def result_row(figure: str, value: float | None, unit: str, *, peer: str | None = None,
               peer_value: float | None = None, ratio: float | None = None,
               ratio_of: str | None = None, goal: str | None = None,
               passed: bool | None = None, note: str | None = None) -> dict:
    """One row of a result section (see the README's "Result format").

    ``ratio`` is the figure the goal is judged on, as the benchmark defines it (``ratio_of``
    says against what, e.g. ``"vs floor"``); ``passed`` is None for informational rows.
    """
    return {"figure": figure, "value": value, "unit": unit, "peer": peer,
            "peer_value": peer_value, "ratio": ratio, "ratio_of": ratio_of, "goal": goal,
            "pass": passed, "note": note}


def result_section(title: str, rows: list[dict], notes: list[str] | None = None,
                   skipped: str | None = None) -> dict:
    """A titled group of rows; ``skipped`` (e.g. ``"no CUDA"``) says why it has none."""
    return {"title": title, "rows": rows, "notes": list(notes or []), "skipped": skipped}


def write_result(path: Path | None, benchmark: str, title: str, sections: list[dict], *,
                 quick: bool, params: dict, machine: dict | None = None) -> None:
    """Write the result JSON the report harness reads; nothing when ``path`` is None."""
    if path is None:
        return
    payload = {"schema": RESULT_SCHEMA, "benchmark": benchmark, "title": title,
               "date_utc": utc_now(), "quick": quick, "params": params,
               "machine": machine or {}, "sections": sections}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------------------
# the command line every benchmark shares
# --------------------------------------------------------------------------------------


def _default_text(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


class BenchParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose options may have a second default for ``--quick``
    (:meth:`add_sized`); :meth:`parse_args` fills in whichever applies."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._sized: dict[str, tuple[object, object]] = {}

    def add_sized(self, flag: str, full, quick, help: str, *, type=int,
                  show_defaults: bool = True) -> None:
        """An option left unset (None) on the command line becomes ``full``, or ``quick``
        with ``--quick``; the help text names both unless ``show_defaults`` is False (then
        ``help`` says it)."""
        if show_defaults:
            help = f"{help} (default {_default_text(full)}; {_default_text(quick)} with --quick)"
        action = self.add_argument(flag, type=type, default=None, help=help)
        self._sized[action.dest] = (full, quick)

    def parse_args(self, args=None, namespace=None):  # noqa: D102 (argparse's own)
        parsed = super().parse_args(args, namespace)
        for dest, (full, quick) in self._sized.items():
            if getattr(parsed, dest) is None:
                setattr(parsed, dest, quick if parsed.quick else full)
        return parsed


def standard_args(doc: str, *, quick: str, reps: int | tuple[int, int] | None = None,
                  reps_help: str = "interleaved repetitions, the best counts",
                  workdir: Path | None = None, workdir_help: str | None = None,
                  json_help: str | None = None, gpu: bool = False) -> BenchParser:
    """The options every benchmark shares, on a parser the script adds its own options to.

    Always ``--result FILE`` (the report harness's input, see :func:`write_result`) and
    ``--quick`` (``quick`` says what it shrinks). On request: ``--reps`` (an int: one default;
    a pair: full and ``--quick`` defaults), ``--workdir`` (default ``workdir``) and ``--json``
    (what it does, in ``json_help``: each script writes or prints its own detailed JSON).
    ``gpu``: the script has GPU sections; ``--gpu-only`` runs those alone (what
    ``benchmarks/gpu_check.sh`` asks for, through ``report.py --gpu-only``).
    ``doc`` (the script's docstring) is the ``--help`` description, kept as written.
    """
    parser = BenchParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--result", type=Path, default=None, metavar="FILE",
                        help="also write the machine-readable result (the report's input) "
                             "to FILE")
    if isinstance(reps, tuple):
        parser.add_sized("--reps", *reps, reps_help)
    elif reps is not None:
        parser.add_argument("--reps", type=int, default=reps,
                            help=f"{reps_help} (default {reps})")
    if workdir is not None:
        parser.add_argument("--workdir", type=Path, default=workdir,
                            help=workdir_help or f"generated data (default {workdir})")
    if json_help is not None:
        parser.add_argument("--json", action="store_true", help=json_help)
    if gpu:
        parser.add_argument("--gpu-only", action="store_true",
                            help="run only the GPU sections (they need CUDA; "
                                 "benchmarks/gpu_check.sh runs them this way)")
    return parser
