"""The mmtok exception hierarchy.

Two kinds of failure exist and they are kept apart on purpose:

* ``MmtokError`` and its subclasses stop a whole command (bad arguments, a store that
  belongs to another config, a second writer). The CLI turns them into a message and a
  non-zero exit code.
* ``SampleError`` marks one sample as invalid. The pipeline records it (kind, stage,
  message) in the shard's commit marker and carries on; it never stops a run unless the
  user asked for ``--strict`` or ``--max-errors``.

Anything else that escapes a reader or tokenizer is a bug in mmtok and is re-raised.
"""

from __future__ import annotations


class MmtokWarning(UserWarning):
    """Something a user should know that does not stop the command; the CLI prints these as
    one ``mmtok: warning: ...`` line (Python callers get a normal warning)."""


class PreprocessingMismatchWarning(MmtokWarning):
    """The tokens were prepared differently from the encoder's own preprocessing (a
    modality's subclass says how, e.g. the image projector's ``ResizeMismatchWarning``)."""


class MmtokError(Exception):
    """A failure of the whole command, with a message that says what to do next."""

    exit_code = 2


class UsageError(MmtokError, ValueError):
    """Arguments or inputs that cannot work together."""


class StoreError(MmtokError):
    """A store that cannot be opened, written or trusted."""


class StoreLockedError(StoreError):
    """Another writer holds the store."""

    exit_code = 3


class StoreWriteError(StoreError):
    """The file system refused a write (read-only, full, over quota, no permission)."""

    exit_code = 7


class ConfigMismatchError(StoreError):
    """The store was made with another config or source list."""

    exit_code = 4


class TooManyErrors(MmtokError):
    """``--max-errors`` or ``--strict`` was exceeded."""

    exit_code = 5


class WorkerDied(MmtokError):
    """A worker process vanished (OOM killer, a crashing native decoder)."""

    exit_code = 6


class NoValidSamples(MmtokError):
    """A run finished, but every sample failed (e.g. files of another modality): the store
    is written and complete, and holds nothing usable."""

    exit_code = 8


class NotASample(Exception):
    """Raised by a modality's part lister for a file that a dataset ships beside its samples
    and that is no sample itself (ModelNet's ``shape_names.txt``): the source leaves it out
    and records it in its description."""


class SampleError(Exception):
    """One sample cannot be tokenized. ``kind`` is a short stable key used in summaries."""

    def __init__(self, kind: str, message: str, stage: str = "read") -> None:
        super().__init__(message)
        self.kind = kind
        self.stage = stage
        self.message = message
