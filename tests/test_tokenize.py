"""`mmtok tokenize` end to end on real files: formats, workers, resume, errors, sources."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from imagefiles import jpeg_bytes, noise_image, write_class_tree, write_format_zoo

import mmtok
from mmtok.store.lock import StoreLock

SMALL = ("--size", "32", "--patch", "16", "--no-progress")


def tree_bytes(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file()}


def summary(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_format_tokenizes_and_bad_files_are_recorded(tmp_path, cli):
    data = tmp_path / "data"
    write_format_zoo(data / "good")
    bad = data / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    (bad / "text.jpg").write_text("not an image")
    (bad / "cut.jpg").write_bytes(jpeg_bytes()[:300])
    out = summary(cli("tokenize", data, "-o", tmp_path / "t.zarr", "--json", *SMALL))
    assert out["num_samples"] == 17 and out["num_valid"] == 14
    assert out["errors_by_kind"] == {"empty_file": 1, "decode_error": 1, "truncated": 1}
    store = mmtok.open_store(tmp_path / "t.zarr")
    invalid = [store[i]["id"] for i in range(len(store)) if not store[i]["valid"]]
    assert sorted(invalid) == ["bad/cut.jpg", "bad/empty.png", "bad/text.jpg"]
    assert store.class_names == ["bad", "good"]


def test_workers_one_and_two_write_byte_identical_stores(tmp_path, cli):
    write_class_tree(tmp_path / "data", per_class=9)
    (tmp_path / "data" / "cat" / "zz_bad.png").write_bytes(b"garbage")
    for workers in ("1", "2"):
        summary(cli("tokenize", tmp_path / "data", "-o", tmp_path / f"w{workers}.zarr",
                    "--shard-size", "4", "-j", workers, "--json", *SMALL))
    one, two = tree_bytes(tmp_path / "w1.zarr"), tree_bytes(tmp_path / "w2.zarr")
    assert len(one) > 10 and one == two


def test_rerun_skips_committed_shards_and_changed_config_is_refused(tmp_path, cli):
    write_class_tree(tmp_path / "data", per_class=4)
    out = tmp_path / "t.zarr"
    first = summary(cli("tokenize", tmp_path / "data", "-o", out, "--shard-size", "4",
                        "--json", *SMALL))
    assert first["shards_written"] == 2
    again = summary(cli("tokenize", tmp_path / "data", "-o", out, "--shard-size", "4",
                        "--json", *SMALL))
    assert (again["shards_written"], again["shards_skipped"]) == (0, 2)
    changed = cli("tokenize", tmp_path / "data", "-o", out, "--shard-size", "4",
                  "--size", "48", "--patch", "16", "--no-progress")
    assert changed.exit_code == 4 and "differs in: size" in changed.stderr
    noise_image(tmp_path / "data" / "cat" / "new.png")
    grown = cli("tokenize", tmp_path / "data", "-o", out, "--shard-size", "4", *SMALL)
    assert grown.exit_code == 4 and "another list of samples" in grown.stderr
    replaced = summary(cli("tokenize", tmp_path / "data", "-o", out, "--shard-size", "4",
                           "--overwrite", "--json", *SMALL))
    assert replaced["num_samples"] == 9


def test_refuses_to_overwrite_a_folder_that_is_not_a_store(tmp_path, cli):
    write_class_tree(tmp_path / "data", per_class=1)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    result = cli("tokenize", tmp_path / "data", "-o", precious, "--overwrite", *SMALL)
    assert result.exit_code == 2 and "not an mmtok store" in result.stderr
    assert (precious / "thesis.tex").exists()


def test_a_second_writer_is_refused(tmp_path, cli):
    write_class_tree(tmp_path / "data", per_class=1)
    out = tmp_path / "t.zarr"
    with StoreLock(out):
        result = cli("tokenize", tmp_path / "data", "-o", out, *SMALL)
    assert result.exit_code == 3 and "is being written by pid" in result.stderr
    assert summary(cli("tokenize", tmp_path / "data", "-o", out, "--json", *SMALL))


def test_strict_and_max_errors_stop_the_run(tmp_path, cli):
    write_class_tree(tmp_path / "data", per_class=4)
    for i in range(3):
        (tmp_path / "data" / "cat" / f"bad{i}.png").write_bytes(b"x")
    strict = cli("tokenize", tmp_path / "data", "-o", tmp_path / "s.zarr", "--strict", *SMALL)
    assert strict.exit_code == 5 and "cat/bad0.png: decode_error" in strict.stderr
    capped = cli("tokenize", tmp_path / "data", "-o", tmp_path / "m.zarr", "--max-errors", "1",
                 "--shard-size", "2", *SMALL)
    assert capped.exit_code == 5 and "more than --max-errors 1" in capped.stderr
    lenient = summary(cli("tokenize", tmp_path / "data", "-o", tmp_path / "m.zarr",
                          "--max-errors", "3", "--shard-size", "2", "--json", *SMALL))
    assert lenient["num_invalid"] == 3 and lenient["status"] == "complete"


def test_files_from_stdin_and_manifest(tmp_path, cli):
    ids = write_class_tree(tmp_path / "data", per_class=3)
    listing = "\0".join(str(tmp_path / "data" / i) for i in reversed(ids)).encode()
    out = summary(cli("tokenize", "--files-from", "-", "-o", tmp_path / "l.zarr", "--json",
                      *SMALL, input=listing))
    assert out["num_valid"] == 6
    store = mmtok.open_store(tmp_path / "l.zarr")
    assert [store[i]["id"] for i in range(6)] == list(reversed(ids))
    assert [store[i]["label"] for i in range(6)] == [1, 1, 1, 0, 0, 0]
    (tmp_path / "data" / "m.csv").write_text("path,label\ncat/00.png,x\nmissing.png,y\n")
    out = summary(cli("tokenize", "--manifest", tmp_path / "data" / "m.csv", "-o",
                      tmp_path / "m.zarr", "--json", *SMALL))
    assert out["num_valid"] == 1 and out["errors_by_kind"] == {"not_found": 1}


def test_symlink_escape_is_recorded(tmp_path, cli):
    write_class_tree(tmp_path / "data", per_class=1)
    noise_image(tmp_path / "secret.png")
    os.symlink(tmp_path / "secret.png", tmp_path / "data" / "cat" / "link.png")
    out = summary(cli("tokenize", tmp_path / "data", "-o", tmp_path / "t.zarr", "--json", *SMALL))
    assert out["errors_by_kind"] == {"symlink_escape": 1}
    out = summary(cli("tokenize", tmp_path / "data", "-o", tmp_path / "f.zarr", "--json",
                      "--follow-external-symlinks", *SMALL))
    assert out["num_invalid"] == 0


def test_python_api_dataset(tmp_path):
    import torch

    write_class_tree(tmp_path / "data", per_class=5)
    result = mmtok.tokenize(tmp_path / "data", tmp_path / "t.zarr", "image", size=32, patch=16,
                            shard_size=4, progress=False)
    assert result.status == "complete"
    store = mmtok.open_store(tmp_path / "t.zarr")
    assert isinstance(store, torch.utils.data.Dataset) and len(store) == 10
    item = store[-1]
    assert item["id"] == "dog/04.png" and item["label"] == 1 and item["valid"]
    assert item["tokens"].shape == (4, 768) and item["tokens"].dtype == np.uint8
    np.testing.assert_array_equal(store.static("positions"), [[0, 0], [0, 1], [1, 0], [1, 1]])
    batch = next(iter(torch.utils.data.DataLoader(store, batch_size=4)))
    assert batch["tokens"].shape == (4, 4, 768) and batch["label"].tolist() == [0, 0, 0, 0]
    with pytest.raises(IndexError):
        store[10]


def test_usage_errors_are_clear(tmp_path, cli):
    result = cli("tokenize", tmp_path / "nowhere", "-o", tmp_path / "t.zarr", *SMALL)
    assert result.exit_code == 2 and "nowhere does not exist" in result.stderr
    (tmp_path / "file.png").write_bytes(b"")  # a file SOURCE is a list of one file
    result = cli("tokenize", tmp_path / "file.png", "-o", tmp_path / "f.zarr", *SMALL)
    assert result.exit_code == 8 and "every sample failed (empty_file 1)" in result.stderr
    (tmp_path / "empty").mkdir()
    result = cli("tokenize", tmp_path / "empty", "-o", tmp_path / "t.zarr", *SMALL)
    assert result.exit_code == 2 and "no image files found" in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_cleanly_and_the_store_resumes(tmp_path, workers):
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    for i in range(48):
        noise_image(data / "a" / f"{i:02d}.png", size=(640, 480), seed=i)
    out = tmp_path / "t.zarr"
    command = [sys.executable, "-m", "mmtok", "tokenize", str(data), "-o", str(out),
               "--shard-size", "2", "--no-progress", "--size", "64", "-j", workers]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "commits" / "c" / "0").exists() and time.time() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted; rerun the same command to resume" in stderr
    assert "Traceback" not in stderr
    assert len(list((out / "commits" / "c").iterdir())) < 24, "interrupt landed after the end"
    with StoreLock(out):  # the lock was released
        pass
    assert subprocess.run(command).returncode == 0
    assert mmtok.validate_store(out).ok


def test_a_dying_worker_is_reported_and_the_store_resumes(tmp_path):
    import crashing  # noqa: F401  (registers the crash-test modality)

    from mmtok.errors import WorkerDied

    write_class_tree(tmp_path / "data", per_class=6)
    (tmp_path / "data" / "dog" / "crash.png").write_bytes(b"CRASH")
    with pytest.raises(WorkerDied, match="worker process died while writing shard"):
        mmtok.tokenize(tmp_path / "data", tmp_path / "t.zarr", "crash-test", workers=2,
                       shard_size=2, progress=False)
    with StoreLock(tmp_path / "t.zarr"):  # released
        pass
    (tmp_path / "data" / "dog" / "crash.png").write_bytes(b"now just a bad file")
    # same ids, same config: the rerun resumes and records the file instead of dying
    result = mmtok.tokenize(tmp_path / "data", tmp_path / "t.zarr", "crash-test", workers=2,
                            shard_size=2, progress=False)
    assert result.status == "complete" and result.errors_by_kind == {"decode_error": 1}


def test_max_errors_counts_the_errors_of_shards_committed_before_an_interruption(tmp_path):
    """--max-errors N stops once more than N samples have failed, errors of earlier runs
    included: a resumed run must add the errors recorded in the shards it skips."""
    import crashing  # noqa: F401  (registers the crash-test modality here too)
    from pyrun import subprocess_env

    from mmtok.errors import TooManyErrors

    data = tmp_path / "data"
    write_class_tree(data, per_class=4)  # cat/00-03, dog/00-03
    for name in ("bad0.png", "bad1.png"):  # both in shard 2 of 2-sample shards
        (data / "cat" / name).write_bytes(b"not an image")
    crash = data / "dog" / "zz_crash.png"  # the last sample: shard 5 of 0..5
    crash.write_bytes(b"CRASH")
    out = tmp_path / "t.zarr"
    # The process dies (like a kill) in the last shard, after committing shards 0-4 in order.
    first_run = (f"import crashing, mmtok; mmtok.tokenize({str(data)!r}, {str(out)!r}, "
                 "'crash-test', shard_size=2, progress=False)")
    died = subprocess.run([sys.executable, "-c", first_run], env=subprocess_env(), check=False,
                          capture_output=True, text=True, timeout=300)
    assert died.returncode == 9, died.stderr
    markers = mmtok.open_store(out).markers
    assert [m is not None for m in markers] == [True] * 5 + [False]
    assert sum(len(m["errors"]) for m in markers[:5]) == 2

    crash.write_bytes(b"now just a bad file")  # same id: the rerun resumes the store
    with pytest.raises(TooManyErrors, match="3 samples failed, more than --max-errors 2"):
        mmtok.tokenize(data, out, "crash-test", shard_size=2, max_errors=2, progress=False)
    # Each error counts once: the committed ones are not counted again on the next resume.
    result = mmtok.tokenize(data, out, "crash-test", shard_size=2, max_errors=3, progress=False)
    assert (result.status, result.num_invalid) == ("complete", 3)


def test_set_reaches_every_tokenizer_option(tmp_path, cli):
    write_class_tree(tmp_path / "data", per_class=1)
    out = summary(cli("tokenize", tmp_path / "data", "-o", tmp_path / "t.zarr", "--json",
                      "--no-progress", "--set", "size=48", "--set", "patch=16",
                      "--set", "mean=0.1,0.2,0.3", "--set", "jpeg_draft=yes"))
    assert out["status"] == "complete"
    config = mmtok.open_store(tmp_path / "t.zarr").config
    assert (config["size"], config["mean"], config["jpeg_draft"]) == (48, [0.1, 0.2, 0.3], True)
    bad = cli("tokenize", tmp_path / "data", "-o", tmp_path / "u.zarr", "--set", "size=big")
    assert bad.exit_code == 2 and "'big' is not an integer" in bad.stderr
    bad = cli("tokenize", tmp_path / "data", "-o", tmp_path / "u.zarr", "--set", "mean=a,b,c")
    assert bad.exit_code == 2 and "'a,b,c' is not comma-separated numbers" in bad.stderr
    unknown = cli("tokenize", tmp_path / "data", "-o", tmp_path / "u.zarr", "--set", "colour=1")
    assert unknown.exit_code == 2 and "KEY one of:" in unknown.stderr
    listing = cli("modalities").stdout
    assert "xray: image family (1 channel(s), 16-bit)" in listing
    assert "--set mean=0.48145466,0.4578275,0.40821073" in listing
