"""The file formats predictions are written in (``predict -o FILE``): CSV or JSON Lines, from
the output's suffix or ``--format``."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError

FORMATS = ("csv", "jsonl")


def prediction_format(output: str | os.PathLike, output_format: str | None) -> str:
    if output_format is not None:
        if output_format not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
        return output_format
    suffix = Path(os.fspath(output)).suffix.lower().lstrip(".")
    if os.fspath(output) == "-":
        return "csv"
    if suffix in FORMATS:
        return suffix
    raise UsageError(f"cannot tell the format of {output}: name it .csv or .jsonl, or pass "
                     "--format")
