"""`mmtok tokenize --dry-run`: the plan (samples, classes, shards, first ids) without reading
a sample or writing anything (issue 20)."""

import json

from imagefiles import write_class_tree

SMALL = ("--size", "32", "--patch", "16", "--no-progress")


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, cli):
    write_class_tree(tmp_path / "data", per_class=5, size=(32, 32))
    result = cli("tokenize", tmp_path / "data", "-o", tmp_path / "t.zarr", *SMALL,
                 "--shard-size", "4", "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "dry run: nothing read or written" in out and "would be created" in out
    assert "samples    10 image samples" in out
    assert "classes    cat, dog" in out
    assert "shards     3 of 4 samples, the last 2" in out
    assert "first ids  cat/00.png, cat/01.png, cat/02.png, cat/03.png, cat/04.png" in out
    assert not (tmp_path / "t.zarr").exists()
    assert not list(tmp_path.glob("t.zarr*"))  # no lock file, no .creating folder either


def test_dry_run_json_and_resume(tmp_path, cli):
    write_class_tree(tmp_path / "data", per_class=2, size=(32, 32))
    assert cli("tokenize", tmp_path / "data", "-o", tmp_path / "t.zarr", *SMALL).exit_code == 0
    plan = json.loads(cli("tokenize", tmp_path / "data", "-o", tmp_path / "t.zarr", *SMALL,
                          "--dry-run", "--json").stdout)
    assert (plan["num_samples"], plan["num_shards"], plan["output"]) == (4, 1, "resume")
    assert plan["class_names"] == ["cat", "dog"] and plan["config"]["size"] == 32
    text = cli("tokenize", tmp_path / "data", "-o", tmp_path / "t.zarr", *SMALL, "--dry-run")
    assert "shards     1 of 4 samples (" in text.stdout  # not "1 of 4096 samples"
    assert "would be resumed" in text.stdout


def test_dry_run_refuses_what_tokenize_refuses(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    result = cli("tokenize", tmp_path / "empty", "-o", tmp_path / "t.zarr", "--dry-run")
    assert result.exit_code == 2 and "no image files found" in result.stderr
