"""Helpers of the benchmarks' GPU sections: where they run, how they time, the copy
bandwidth they compare with, and the section a script writes when it cannot run one.

A GPU section measures on an :class:`Accelerator`: CUDA (:func:`cuda`), or, in the test
suite, the CPU with Triton's interpreter (:func:`interpreted`, tiny sizes), so that the
section's code is exercised on machines without a GPU before a scarce GPU window runs it.
The sections run only when :func:`cuda_skip_reason` returns None; otherwise they return
:func:`skipped` with that reason, which the report prints as "skipped: REASON"
(``benchmarks/gpu_check.sh`` runs them all on a GPU machine).

torch is imported inside the functions, so a script can import this module before it knows
whether torch (or a GPU) is there.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from _common import result_row, result_section


def cuda_skip_reason() -> str | None:
    """None when torch sees a CUDA device; else why a GPU section cannot run."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA"
    return None


def skipped(title: str, reason: str) -> dict:
    """The section as it appears when it cannot run (printed, and returned for the report)."""
    print(f"\n## {title}\n\nskipped: {reason}", flush=True)
    return result_section(title, [], skipped=reason)


@dataclass(frozen=True)
class Accelerator:
    """Where a GPU section's tensors live (``device``, a torch device string) and what it is
    called in the report (``name``)."""

    device: str
    name: str

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def how_timed(self) -> str:
        """How :meth:`call_times` times a call, for a section's notes."""
        if self.is_cuda:
            return ("CUDA events around each call, started on an idle device (the call's "
                    "launch path included)")
        return "the wall clock around each call"

    def sync(self) -> None:
        if self.is_cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def call_times(self, fns: dict[str, Callable[[], object]], reps: int,
                   warmup: int = 3) -> dict[str, list[float]]:
        """Seconds of every call, per contestant: ``warmup`` untimed calls each first
        (Triton compiles, cuBLAS picks its kernels), then ``reps`` repetitions interleaved
        across contestants, as :func:`_common.timed` does.

        On CUDA each call starts on an idle device (synchronised first) and is timed by
        CUDA events around it, so it includes the launch path a caller pays (Python,
        argument checks, allocations), not only the kernels. On the CPU: the wall clock.
        """
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        return self._cuda_times(fns, reps) if self.is_cuda else self._wall_times(fns, reps)

    def median_seconds(self, fns: dict[str, Callable[[], object]], reps: int,
                       warmup: int = 3) -> dict[str, float]:
        """The median of :meth:`call_times` per contestant."""
        return {name: statistics.median(times)
                for name, times in self.call_times(fns, reps, warmup).items()}

    def _cuda_times(self, fns, reps: int) -> dict[str, list[float]]:
        import torch

        pairs: dict[str, list[tuple]] = {name: [] for name in fns}
        for _ in range(reps):
            for name, fn in fns.items():
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                self.sync()
                start.record()
                fn()
                end.record()
                pairs[name].append((start, end))
        self.sync()
        return {name: [s.elapsed_time(e) / 1e3 for s, e in events]
                for name, events in pairs.items()}

    @staticmethod
    def _wall_times(fns, reps: int) -> dict[str, list[float]]:
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(reps):
            for name, fn in fns.items():
                started = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - started)
        return times

    def copy_bandwidth(self, nbytes: int, reps: int = 10) -> float:
        """Bytes per second of a device-to-device copy of an ``nbytes`` tensor, counting the
        bytes read and the bytes written (2 x ``nbytes`` per copy); median of ``reps``. The
        tensor holds random bytes (a copy of zeros can be cheaper than one of real data)."""
        import torch

        source = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, device=self.device)
        target = torch.empty_like(source)
        seconds = self.median_seconds({"copy": lambda: target.copy_(source)}, reps)["copy"]
        del source, target
        if self.is_cuda:
            torch.cuda.empty_cache()
        return 2 * nbytes / seconds


def cuda() -> Accelerator:
    """The current CUDA device (call only where :func:`cuda_skip_reason` is None)."""
    import torch

    index = torch.cuda.current_device()
    return Accelerator(f"cuda:{index}", torch.cuda.get_device_name(index))


def on_cuda(title: str, measure: Callable[[Accelerator], dict]) -> dict:
    """``measure(cuda())``, the section a GPU benchmark reports; the skipped section, with
    the reason, where there is no CUDA."""
    reason = cuda_skip_reason()
    if reason is not None:
        return skipped(title, reason)
    return measure(cuda())


def interpreted() -> Accelerator:
    """The CPU, with the Triton kernels run by Triton's interpreter: for the test suite's
    runs of a GPU section on tiny sizes (TRITON_INTERPRET=1 must be set before Triton is
    first imported)."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("interpreted() needs TRITON_INTERPRET=1 set before triton is imported")
    return Accelerator("cpu", "cpu (Triton interpreter; a test run, not a measurement)")


def time_rows(label: str, ours: float, peers: dict[str, float], *, goal_ms: float | None = None,
              note: str | None = None) -> list[dict]:
    """Result rows for a GPU timing: mmtok's milliseconds (judged against ``goal_ms`` when
    given) and one row per peer with its time and the speed-up (peer time / mmtok time)."""
    rows = [result_row(label, round(ours * 1e3, 4), "ms",
                       goal=None if goal_ms is None else f"<= {goal_ms:g} ms",
                       passed=None if goal_ms is None else ours * 1e3 <= goal_ms, note=note)]
    for name, seconds in peers.items():
        rows.append(result_row(label, round(ours * 1e3, 4), "ms", peer=name,
                               peer_value=round(seconds * 1e3, 4),
                               ratio=round(seconds / ours, 2),
                               ratio_of="peer time / mmtok time"))
    return rows


def identical_row(figure: str, same: bool) -> dict:
    """A row saying whether the GPU output equals the CPU path's, judged: it must."""
    return result_row(figure, "yes" if same else "no", "", goal="identical", passed=same)


def verdict_text(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "-"}[passed]


def print_rows(title: str, rows: list[dict], notes: list[str]) -> None:
    """A GPU section on stdout: its rows as a Markdown table, then its notes."""
    print(f"\n## {title}\n\n| Figure | Value | Peer | Peer value | Ratio | Goal | Result |\n"
          "|---|---:|---|---:|---:|---|---|")
    for row in rows:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']}x"
        print(f"| {row['figure']} | {row['value']} {row['unit']} | {row['peer'] or '-'} | "
              f"{'-' if row['peer_value'] is None else row['peer_value']} | {ratio} | "
              f"{row['goal'] or '-'} | {verdict_text(row['pass'])} |")
    print("", *notes, sep="\n", flush=True)
