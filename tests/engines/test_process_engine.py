"""The process engine's own account of a dead worker (what main's pool read from its private
``_processes``), and the options every job carries to wherever it runs."""

import pickle
import signal

from mmtok.embedding.pipeline import EmbedJob
from mmtok.engines.process import death_reason


def test_a_dead_worker_is_named_by_what_the_engine_knows():
    assert death_reason(9, True, None) == ("it exited with status 9; its error, if any, is "
                                           "above on stderr")
    assert "while starting, before running any mmtok code" in death_reason(1, False, None)
    assert death_reason(-signal.SIGKILL, True, None) == (
        "it was killed by SIGKILL: the system's out-of-memory killer, or kill -9")
    assert "SIGSEGV: a crashing native decoder" in death_reason(-signal.SIGSEGV, True, None)
    # a report written while starting says more than any exit status
    assert death_reason(1, False, "UsageError: add the guard") == (
        "a worker failed while starting: UsageError: add the guard")
    # out of memory is only a guess when nothing better is known
    assert "out of memory" in death_reason(None, True, None)
    assert "out of memory" not in death_reason(3, True, None)


def test_embed_options_travel_in_the_job():
    job = EmbedJob("t.zarr", "f.zarr", "vit_tiny_patch16_224", None, False, None, "cls", 4,
                   "cpu", "float32", 0, {"depth": 1}, False, {"kind": "patch"},
                   {"mean": "0.5", "std": "0.5"})
    job.keep(object())  # the driver's model never travels
    copy = pickle.loads(pickle.dumps(job))
    assert copy.projector_options == {"kind": "patch"}
    assert copy.statistics == {"mean": "0.5", "std": "0.5"}
    assert copy._local is None and copy == job
