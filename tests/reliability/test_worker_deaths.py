"""A dying worker is reported with what killed it, not a guess about memory (issue 20), and
the README's Python example works when saved as a script."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from imagefiles import write_class_tree
from pyrun import subprocess_env

import mmtok

README = Path(__file__).resolve().parents[2] / "README.md"


def run_script(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(path)], env=subprocess_env(), cwd=path.parent,
                          capture_output=True, text=True, timeout=300)


def test_a_script_without_the_main_guard_is_told_to_add_it(tmp_path):
    write_class_tree(tmp_path / "photos", per_class=4, size=(32, 32))
    script = tmp_path / "unguarded.py"
    script.write_text("import mmtok\nmmtok.tokenize('photos', 'photos.zarr', modality='image', "
                      "workers=2, shard_size=2, size=32, progress=False)\n")
    result = run_script(script)
    assert result.returncode != 0
    assert 'if __name__ == "__main__":' in result.stderr
    assert "a worker failed while starting: UsageError" in result.stderr
    assert "StoreLockedError" not in result.stderr
    assert "out of memory" not in result.stderr


def test_the_readme_python_example_shows_the_guard_and_runs_as_a_script(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "mmtok.tokenize(" in b)
    assert 'if __name__ == "__main__":' in example
    # the same script on small data, without the embed line (that needs real weights)
    code = "\n".join(line for line in example.splitlines() if "mmtok.embed(" not in line)
    code = code.replace('modality="image", workers=2', 'modality="image", workers=2, '
                        'shard_size=2, size=32, progress=False')
    assert "shard_size=2" in code, "the README's tokenize call changed; update this test"
    write_class_tree(tmp_path / "photos", per_class=4, size=(32, 32))
    script = tmp_path / "example.py"
    script.write_text(code)
    result = run_script(script)
    assert result.returncode == 0, result.stderr
    assert mmtok.open_store(tmp_path / "photos.zarr").complete


def test_a_worker_that_exits_is_reported_with_its_exit_status(tmp_path):
    import crashing  # noqa: F401  (registers the crash-test modality: os._exit(9))

    from mmtok.errors import WorkerDied

    write_class_tree(tmp_path / "data", per_class=4)
    (tmp_path / "data" / "dog" / "crash.png").write_bytes(b"CRASH")
    with pytest.raises(WorkerDied) as caught:
        mmtok.tokenize(tmp_path / "data", tmp_path / "t.zarr", "crash-test", workers=2,
                       shard_size=2, progress=False)
    assert "it exited with status 9" in str(caught.value)
    assert "out of memory" not in str(caught.value)


def test_a_killed_worker_names_the_signal(tmp_path):
    import crashing  # noqa: F401

    from mmtok.errors import WorkerDied

    write_class_tree(tmp_path / "data", per_class=4)
    (tmp_path / "data" / "dog" / "crash.png").write_bytes(b"CRASH-SIGKILL")
    with pytest.raises(WorkerDied, match="it was killed by SIGKILL: the system's out-of-memory "
                                         "killer, or kill -9"):
        mmtok.tokenize(tmp_path / "data", tmp_path / "t.zarr", "crash-test", workers=2,
                       shard_size=2, progress=False)
