"""`mmtok info --errors` lists every failed sample, `--errors-to` exports them, the
--max-errors message points there, and the plain output reads well (issue 20)."""

import csv
import json

import pytest
from imagefiles import write_class_tree

SMALL = ("--size", "32", "--patch", "16", "--no-progress")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from typer.testing import CliRunner

    from mmtok.cli import app

    folder = tmp_path_factory.mktemp("info")
    write_class_tree(folder / "data", per_class=3, size=(32, 32))
    (folder / "data" / "cat" / "broken.png").write_bytes(b"not an image")
    (folder / "data" / "dog" / "empty.png").write_bytes(b"")
    made = CliRunner().invoke(app, ["tokenize", str(folder / "data"), "-o",
                                    str(folder / "t.zarr"), *SMALL, "--shard-size", "4"])
    assert made.exit_code == 0, made.output
    return folder / "t.zarr"


def test_info_errors_lists_every_failed_sample(store, cli):
    result = cli("info", store, "--errors")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    listed = lines[lines.index("invalid samples (index, id, kind, stage: message)") + 1:]
    assert len(listed) == 2
    assert "cat/broken.png\tdecode_error\tread:" in listed[0]
    assert "dog/empty.png\tempty_file\tread:" in listed[1]


def test_info_json_errors_and_the_export(store, cli, tmp_path):
    details = json.loads(cli("info", store, "--json", "--errors").stdout)
    assert [(e["id"], e["kind"]) for e in details["errors"]] == [
        ("cat/broken.png", "decode_error"), ("dog/empty.png", "empty_file")]
    assert set(details["errors"][0]) == {"index", "id", "kind", "stage", "message"}
    assert "errors" not in json.loads(cli("info", store, "--json").stdout)
    assert cli("info", store, "--errors-to", tmp_path / "e.csv").exit_code == 0
    rows = list(csv.DictReader(open(tmp_path / "e.csv", encoding="utf-8")))
    assert [r["id"] for r in rows] == ["cat/broken.png", "dog/empty.png"]
    assert cli("info", store, "--errors-to", tmp_path / "e.jsonl").exit_code == 0
    records = [json.loads(line) for line in open(tmp_path / "e.jsonl", encoding="utf-8")]
    assert records == details["errors"]
    refused = cli("info", store, "--errors-to", tmp_path / "e.txt")
    assert refused.exit_code == 2 and ".csv or .jsonl" in refused.stderr


def test_plain_info_points_to_errors_and_prints_the_config_as_lines(store, cli):
    out = cli("info", store).stdout
    assert f"(list them: mmtok info {store} --errors)" in out
    assert "\n  size: 32\n" in out and "\n  patch: 16\n" in out
    assert "size=32" not in out
    assert "shards     2/2 done (4 samples each, the last 4)" not in out  # 8 = 4 + 4
    assert "shards     2/2 done (4 samples each)" in out


def test_shard_sizes_say_what_is_there(tmp_path, cli):
    write_class_tree(tmp_path / "data", per_class=3, size=(32, 32))
    assert cli("tokenize", tmp_path / "data", "-o", tmp_path / "one.zarr", *SMALL).exit_code == 0
    assert "shards     1/1 done (one shard of 6 samples)" in cli("info", tmp_path / "one.zarr").stdout
    assert cli("tokenize", tmp_path / "data", "-o", tmp_path / "two.zarr", *SMALL,
               "--shard-size", "4").exit_code == 0
    assert "(4 samples each, the last 2)" in cli("info", tmp_path / "two.zarr").stdout


def test_max_errors_points_to_info_errors(tmp_path, cli):
    write_class_tree(tmp_path / "data", per_class=2, size=(32, 32))
    for i in range(3):
        (tmp_path / "data" / "cat" / f"bad{i}.png").write_bytes(b"nope")
    out = tmp_path / "m.zarr"
    result = cli("tokenize", tmp_path / "data", "-o", out, *SMALL, "--max-errors", "1",
                 "--shard-size", "2")
    assert result.exit_code == 5
    assert f"`mmtok info {out} --errors` lists the failed samples" in " ".join(
        result.stderr.split())


def test_one_sample_is_not_samples(tmp_path, cli):
    write_class_tree(tmp_path / "data", classes=("cat",), per_class=1, size=(32, 32))
    (tmp_path / "data" / "cat" / "bad.png").write_bytes(b"nope")
    capped = cli("tokenize", tmp_path / "data", "-o", tmp_path / "m.zarr", *SMALL,
                 "--max-errors", "0")
    assert capped.exit_code == 5 and "1 sample failed, more than --max-errors 0" in capped.stderr
    single = tmp_path / "one"
    write_class_tree(single, classes=("cat",), per_class=1, size=(32, 32))
    result = cli("tokenize", single, "-o", tmp_path / "one.zarr", *SMALL)
    assert "1 sample, 1 valid" in result.stdout and "wrote 1 sample in" in result.stdout
