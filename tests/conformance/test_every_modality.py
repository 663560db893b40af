"""Every modality `mmtok modalities` lists has a conformance subclass: a modality cannot be
added without passing the suite."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from .base import TokenizerConformance

LIST_MODALITIES = "from mmtok.modalities import modality_names; print(*modality_names())"


def conformance_classes() -> dict[str, list[str]]:
    """modality -> the collected (``Test*``) subclasses of every test module here."""
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        importlib.import_module(f"{__package__}.{path.stem}")
    found: dict[str, list[str]] = {}
    pending = list(TokenizerConformance.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls.__name__.startswith("Test") and getattr(cls, "modality", None):
            found.setdefault(cls.modality, []).append(cls.__qualname__)
    return found


def test_every_registered_modality_has_a_conformance_subclass():
    # a fresh interpreter: the registry of a plain `import mmtok`, without the modalities
    # other tests register for themselves (tests/crashing.py)
    names = subprocess.run([sys.executable, "-c", LIST_MODALITIES], capture_output=True,
                           text=True, check=True, timeout=60).stdout.split()
    assert "image" in names and "audio" in names, names
    covered = conformance_classes()
    missing = sorted(set(names) - set(covered))
    assert not missing, (f"no conformance subclass for {missing}: add a Test* subclass of "
                         "tests/conformance/base.py's TokenizerConformance")
    assert not set(covered) - set(names), "a conformance subclass for an unregistered modality"
