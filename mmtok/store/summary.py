"""What a run did, read back from the store's commit markers."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Mapping

from .writer import StoreSpec, read_markers


@dataclass
class RunSummary:
    """What a run did; ``status`` is "complete" when every shard of the store is committed."""

    store: str
    modality: str
    status: str
    num_samples: int
    num_valid: int
    num_invalid: int
    errors_by_kind: dict[str, int]
    shards_total: int
    shards_written: int
    shards_skipped: int
    samples_written: int
    seconds: float
    samples_per_second: float
    shards_repaired: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # Tokenizer.tally, summed
    errors: list[dict] = field(default_factory=list, repr=False)
    repairs: list[str] = field(default_factory=list, repr=False)  # what was found damaged
    warnings: list[str] = field(default_factory=list)  # what the user should know of the run
    checked_checksums: bool = field(default=False, repr=False)  # this run had --repair

    def line(self, with_warnings: bool = True) -> str:
        """One human line (plus a ``warning:`` line per warning, unless the caller shows
        them itself, as the CLI does with the hint of a run where every sample failed)."""
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.errors_by_kind.items()))
        invalid = f"{self.num_invalid} invalid" + (f" ({kinds})" if kinds else "")
        skipped = f"; {self.shards_skipped} shard(s) were already done" if self.shards_skipped else ""
        if self.shards_repaired:
            skipped += f"; rewrote {self.shards_repaired} damaged shard(s)"
        if self.counts:
            invalid += "; " + ", ".join(f"{k} {v}" for k, v in self.counts.items())
        if self.shards_skipped and not self.checked_checksums:
            # a plain rerun only stats the files: damage inside them shows only in checksums
            skipped += (" (checked for missing files only; --repair also verifies their "
                        "checksums)")
        notes = "".join(f"\nwarning: {warning}" for warning in self.warnings
                        if with_warnings)
        return (f"{self.status}: {self.store}: {counted(self.num_samples, 'sample')}, "
                f"{self.num_valid} valid, {invalid}; wrote {counted(self.samples_written, 'sample')}"
                f" in {self.seconds:.1f} s ({self.samples_per_second:.1f} samples/s){skipped}"
                f"{notes}")

    @property
    def nothing_valid(self) -> bool:
        """Every sample of a complete, non-empty store failed: the run produced nothing."""
        return self.status == "complete" and self.num_samples > 0 and self.num_valid == 0

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items()
                if k not in ("errors", "repairs", "checked_checksums")}


def counted(n: int, noun: str) -> str:
    """``1 sample``, ``2 samples``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def marker_counts(markers: list[dict]) -> dict[str, int]:
    """The shards' ``counts`` (Tokenizer.tally) summed, by name."""
    total: Counter = Counter()
    for marker in markers:
        total.update(marker.get("counts", {}))
    return dict(sorted(total.items()))


def summarise_run(output: str, spec: StoreSpec, written: int, skipped: int,
                  seconds: float, repaired: Mapping[int, list[str]] | None = None,
                  checked_checksums: bool = False) -> RunSummary:
    markers = read_markers(output)
    committed = [m for m in markers if m]
    errors = [e for m in committed for e in m["errors"]]
    num_valid = sum(m["num_valid"] for m in committed)
    return RunSummary(
        store=output, modality=spec.modality,
        status="complete" if len(committed) == spec.num_shards else "incomplete",
        num_samples=spec.num_samples, num_valid=num_valid,
        num_invalid=sum(m["stop"] - m["start"] for m in committed) - num_valid,
        errors_by_kind=dict(Counter(e["kind"] for e in errors)),
        counts=marker_counts(committed),
        shards_total=spec.num_shards, shards_written=len(committed) - skipped,
        shards_skipped=skipped, samples_written=written, seconds=round(seconds, 3),
        samples_per_second=round(written / seconds, 1) if seconds > 0 else 0.0, errors=errors,
        shards_repaired=len(repaired or {}),
        repairs=[problem for problems in (repaired or {}).values() for problem in problems],
        checked_checksums=checked_checksums,
    )
