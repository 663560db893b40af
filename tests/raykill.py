"""Jobs that SIGKILL their own Ray worker, for the Ray engine's fault tests. They live in a
module of their own so that Ray's worker processes can import them (tests/ is on their
PYTHONPATH). A flag file beside the store makes a kill happen once across retries."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from mmtok.embedding.pipeline import EmbedJob
from mmtok.pipeline import TokenizeJob
from mmtok.store.layout import COMMITS

KILLED_SHARD = 1


def _flag(output: str) -> Path:
    return Path(output + ".killed")


class _KillBeforeMarker:
    """A store group whose ``commits`` array kills the process when reached: the shard's data
    is written, its marker is not."""

    def __init__(self, group, output: str, always: bool) -> None:
        self.group, self.output, self.always = group, output, always

    def __getitem__(self, name: str):
        if name == COMMITS and (self.always or not _flag(self.output).exists()):
            _flag(self.output).write_text(f"{os.getpid()}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        return self.group[name]


@dataclass(frozen=True)
class KillOnceBeforeMarker(TokenizeJob):
    """Shard ``KILLED_SHARD``'s first attempt dies after its data, before its marker."""

    always = False

    def work(self, state, shard, payload, on_sample=None):
        if shard == KILLED_SHARD:
            real = state.group
            state.group = _KillBeforeMarker(real, self.output, self.always)
            try:
                return super().work(state, shard, payload, on_sample)
            finally:
                state.group = real
        return super().work(state, shard, payload, on_sample)


@dataclass(frozen=True)
class KillAlways(KillOnceBeforeMarker):
    """Every attempt at shard ``KILLED_SHARD`` dies: Ray's retries run out."""

    always = True


@dataclass(frozen=True)
class EmbedKilledOnce(EmbedJob):
    """An embed actor dies in the middle of shard ``KILLED_SHARD``, once."""

    def work(self, state, shard, payload=None, on_sample=None):
        if shard == KILLED_SHARD and not _flag(self.output).exists():
            _flag(self.output).write_text(f"{os.getpid()}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        return super().work(state, shard, payload, on_sample)


@dataclass(frozen=True)
class WhereAmI:
    """A stateful job whose markers say which GPU its actor was given."""

    output: str
    device: str = "cuda"
    stateful = True

    def setup(self, context):
        return context

    def work(self, state, shard, payload, on_sample=None):
        return {"shard": shard, "start": shard, "stop": shard + 1, "errors": [],
                "pid": os.getpid(), "device": state.device,
                "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}


@dataclass(frozen=True)
class SlowFirstAttempt(TokenizeJob):
    """Shard ``KILLED_SHARD``'s first attempt announces its worker's pid beside the store and
    then waits to be killed; later attempts run normally."""

    def work(self, state, shard, payload, on_sample=None):
        pid_file = Path(self.output + ".worker-pid")
        if shard == KILLED_SHARD and not pid_file.exists():
            pid_file.write_text(f"{os.getpid()}\n")
            import time

            time.sleep(60)  # the test kills this process well before
        return super().work(state, shard, payload, on_sample)


@dataclass(frozen=True)
class Sleepy(TokenizeJob):
    """Every shard takes at least half a second: tasks are in flight when a node goes."""

    def work(self, state, shard, payload, on_sample=None):
        import time

        time.sleep(0.5)
        return super().work(state, shard, payload, on_sample)
