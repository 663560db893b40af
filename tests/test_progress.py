"""Progress when stderr is not a terminal: plain lines, not tqdm's carriage-return frames;
the embed bar moves per batch (issue 20)."""

import subprocess
import sys

from imagefiles import write_class_tree
from pyrun import subprocess_env


def run_logged(args: list[str], tmp_path, seconds: str = "0") -> str:
    """Run mmtok with stderr redirected to a file (as in a batch job); returns the log."""
    log = tmp_path / "log.txt"
    with open(log, "w") as stderr:
        result = subprocess.run([sys.executable, "-m", "mmtok", *args], stderr=stderr,
                                stdout=subprocess.PIPE, text=True, timeout=300,
                                env=subprocess_env(MMTOK_PROGRESS_SECONDS=seconds))
    text = log.read_text()
    assert result.returncode == 0, text
    return text


def test_tokenize_logs_plain_lines(tmp_path):
    write_class_tree(tmp_path / "data", per_class=4, size=(32, 32))
    log = run_logged(["tokenize", str(tmp_path / "data"), "-o", str(tmp_path / "t.zarr"),
                      "--size", "32", "--patch", "16", "--shard-size", "2"], tmp_path)
    assert "\r" not in log
    lines = [line for line in log.splitlines() if line.startswith("tokenize: ")]
    assert lines[-1].startswith("tokenize: 8/8 samples (100%), ")
    assert "errors 0" in lines[-1] and "samples/s" in lines[-1]


def test_a_quiet_interval_prints_only_the_last_line(tmp_path):
    write_class_tree(tmp_path / "data", per_class=2, size=(32, 32))
    log = run_logged(["tokenize", str(tmp_path / "data"), "-o", str(tmp_path / "t.zarr"),
                      "--size", "32", "--patch", "16"], tmp_path, seconds="600")
    assert [line for line in log.splitlines() if line.startswith("tokenize: ")] == [
        line for line in log.splitlines() if line.startswith("tokenize: 4/4 samples")]


def test_embed_progress_moves_per_batch(tmp_path):
    write_class_tree(tmp_path / "data", per_class=4, size=(32, 32))
    run_logged(["tokenize", str(tmp_path / "data"), "-o", str(tmp_path / "t.zarr"),
                "--size", "32", "--patch", "16", "--no-progress"], tmp_path)
    log = run_logged(["embed", str(tmp_path / "t.zarr"), "-o", str(tmp_path / "f.zarr"),
                      "--encoder", "vit_tiny_patch16_224", "--encoder-option", "img_size=32",
                      "--encoder-option", "depth=1", "--batch-size", "3", "--device", "cpu"],
                     tmp_path)
    counts = [line.split()[2] for line in log.splitlines() if line.startswith("embed (cpu): ")]
    assert counts == ["3/8", "6/8", "8/8"], log  # one shard of 8, three batches
