"""`mmtok info` and `mmtok validate` on good and damaged stores."""

import json

import pytest
import zarr
from imagefiles import write_class_tree

import mmtok
from mmtok.errors import StoreError

SMALL = ("--size", "32", "--patch", "16", "--no-progress", "--shard-size", "4")


@pytest.fixture
def store(tmp_path, cli):
    write_class_tree(tmp_path / "data", per_class=5)
    (tmp_path / "data" / "dog" / "broken.png").write_bytes(b"\x89PNG garbage")
    out = tmp_path / "t.zarr"
    assert cli("tokenize", tmp_path / "data", "-o", out, *SMALL).exit_code == 0
    return out


def test_info_reports_everything(store, cli):
    result = cli("info", store, "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["modality"] == "image" and info["num_samples"] == 11
    assert (info["num_valid"], info["num_invalid"]) == (10, 1)
    assert info["class_names"] == ["cat", "dog"]
    assert (info["shards_done"], info["shards_total"], info["complete"]) == (3, 3, True)
    assert info["errors_by_kind"] == {"decode_error": 1}
    assert info["config"]["size"] == 32 and info["bytes_on_disk"] > 0
    text = cli("info", store).stdout
    assert "3/3 done" in text and "decode_error 1" in text and "cat, dog" in text


def test_validate_passes_a_good_store(store, cli):
    result = cli("validate", store)
    assert result.exit_code == 0 and "ok (3 shards checked)" in result.stdout


def test_validate_names_a_deleted_shard_file(store, cli):
    (store / "tokens" / "c" / "1" / "0" / "0").unlink()
    result = cli("validate", store)
    assert result.exit_code == 1
    assert "shard 1 (samples 4..7): tokens shard file tokens/c/1/0/0 is missing" in result.stdout


def test_validate_catches_changed_data_and_missing_markers(store, cli):
    labels = zarr.open_array(store / "label", mode="r+")
    labels[0] = 1  # a silent change: the marker's checksum no longer agrees
    markers = zarr.open_array(store / "commits", mode="r+")
    markers[2] = ""
    result = cli("validate", store, "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and not report["ok"]
    assert report["problems"] == [
        "shard 0 (samples 0..3): label checksum does not match its commit marker",
        "shard 2 is not committed (no commit marker); rerun the writing command to finish "
        "the store",
    ]


def test_truncated_shard_file_is_named(store, cli):
    shard_file = store / "tokens" / "c" / "0" / "0" / "0"
    shard_file.write_bytes(shard_file.read_bytes()[:50])
    result = cli("validate", store)
    assert result.exit_code == 1 and "shard 0 (samples 0..3): tokens" in result.stdout


def test_resume_rewrites_an_uncommitted_shard_and_clears_leftovers(store, cli, tmp_path):
    before = mmtok.open_store(store)[5]["tokens"].copy()
    zarr.open_array(store / "commits", mode="r+")[1] = ""
    (store / "tokens" / "c" / "1" / "0" / "0").unlink()
    (store / "tokens" / "c" / "1" / "0" / "0.abc.partial").write_bytes(b"half")
    with pytest.raises(StoreError, match="shard 1, which is not committed"):
        mmtok.open_store(store)[5]
    assert "leftover temp file" in cli("validate", store).stderr
    assert cli("tokenize", tmp_path / "data", "-o", store, *SMALL).exit_code == 0
    assert cli("validate", store).exit_code == 0
    assert not list(store.rglob("*.partial"))
    assert (mmtok.open_store(store)[5]["tokens"] == before).all()


def test_info_and_validate_refuse_what_is_not_a_store(tmp_path, cli):
    (tmp_path / "plain").mkdir()
    for command in ("info", "validate"):
        result = cli(command, tmp_path / "plain")
        assert result.exit_code == 2 and "not an mmtok store" in result.stderr


def test_a_shard_of_only_invalid_unlabeled_samples_is_written_and_validates(tmp_path, cli):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        (data / f"bad{i}.png").write_bytes(b"not an image")
    out = tmp_path / "t.zarr"
    # every sample failed: the store is still written and complete, but the run exits 8
    assert cli("tokenize", data, "-o", out, *SMALL).exit_code == 8
    assert (out / "tokens" / "c" / "0" / "0" / "0").exists()
    assert (out / "label" / "c" / "0").exists()
    assert cli("validate", out).exit_code == 0
