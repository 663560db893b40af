"""Damaged stores: `validate` names each problem; a resumed run repairs what it can (plain
resume: what is cheap to see; `--repair`: everything a checksum catches), and never mixes
configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import zarr
from imagefiles import write_class_tree
from killing import assert_same_store, file_bytes
from pointfiles import random_cloud

import mmtok
from mmtok.errors import StoreError
from mmtok.store.summary import RunSummary

SMALL = ("--size", "32", "--patch", "16", "--no-progress", "--shard-size", "4")
POINTS = {"num_points": 64, "num_groups": 8, "group_size": 8, "shard_size": 2}
TINY_ENCODER = "metatransformer:depth=1,width=32,heads=2"


@pytest.fixture
def stores(tmp_path, cli) -> tuple[Path, Path, Path]:
    """(data folder, a healthy store to damage, an untouched copy of it)."""
    write_class_tree(tmp_path / "data", per_class=5)
    (tmp_path / "data" / "dog" / "broken.png").write_bytes(b"\x89PNG garbage")
    store = tmp_path / "t.zarr"
    assert cli("tokenize", tmp_path / "data", "-o", store, *SMALL).exit_code == 0
    shutil.copytree(store, tmp_path / "reference.zarr")
    return tmp_path / "data", store, tmp_path / "reference.zarr"


def delete_shard_file(store: Path) -> None:
    (store / "tokens" / "c" / "1" / "0" / "0").unlink()


def truncate_shard_file(store: Path) -> None:
    shard = store / "tokens" / "c" / "1" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:50])


def flip_a_byte_of_data(store: Path) -> None:
    zarr.open_array(store / "orig_size", mode="r+")[5] = [1, 1]


def change_a_marker_checksum(store: Path) -> None:
    edit_marker(store, 1, lambda m: m["checksums"].update(valid="0" * 64))


def break_a_marker(store: Path) -> None:
    zarr.open_array(store / "commits", mode="r+")[1] = '{"shard": 1, "start": 4'


def edit_marker(store: Path, shard: int, change: Callable[[dict], object]) -> None:
    commits = zarr.open_array(store / "commits", mode="r+")
    marker = json.loads(str(commits[shard]))
    change(marker)
    commits[shard] = json.dumps(marker)


# (damage, what validate says about it, whether a plain resume already repairs it)
DAMAGE = [
    (delete_shard_file, "shard 1 (samples 4..7): tokens shard file tokens/c/1/0/0 is missing",
     True),
    (truncate_shard_file, "shard 1 (samples 4..7): tokens cannot be read", False),
    (flip_a_byte_of_data, "shard 1 (samples 4..7): orig_size checksum does not match its "
                          "commit marker", False),
    (change_a_marker_checksum, "shard 1 (samples 4..7): valid checksum does not match its "
                               "commit marker", False),
    (break_a_marker, "shard 1: commit marker is not valid JSON", True),
]


@pytest.mark.parametrize("damage,problem,cheap", DAMAGE, ids=[d[0].__name__ for d in DAMAGE])
def test_validate_names_the_damage_and_a_resumed_run_repairs_it(stores, cli, damage, problem,
                                                               cheap):
    data, store, reference = stores
    damage(store)
    report = cli("validate", store)
    assert report.exit_code == 1 and problem in report.stdout, report.stdout
    assert len(report.stdout.strip().splitlines()) == 2, "one problem and the verdict"
    resumed = json.loads(cli("tokenize", data, "-o", store, "--json", *SMALL).stdout)
    assert resumed["shards_repaired"] == (1 if cheap else 0)
    if not cheap:  # the damage is only visible to a checksum: plain resume trusts the marker
        assert cli("validate", store).exit_code == 1
        repaired = json.loads(cli("tokenize", data, "-o", store, "--repair", "--json",
                                  *SMALL).stdout)
        assert (repaired["shards_repaired"], repaired["shards_written"]) == (1, 1)
    assert cli("validate", store).exit_code == 0
    assert_same_store(store, reference)


def test_a_broken_marker_is_a_clear_error_for_readers(stores, cli):
    _, store, _ = stores
    break_a_marker(store)
    result = cli("info", store)
    assert result.exit_code == 2 and "the commit marker of shard 1 is damaged" in result.stderr
    with pytest.raises(StoreError, match="commit marker of shard 1 is damaged"):
        mmtok.open_store(store)


def test_repair_says_what_it_rewrote(stores, cli):
    data, store, _ = stores
    truncate_shard_file(store)
    result = cli("tokenize", data, "-o", store, "--repair", *SMALL)
    assert result.exit_code == 0 and "rewrote 1 damaged shard(s)" in result.stdout
    summary = mmtok.tokenize(data, store, size=32, patch=16, shard_size=4, progress=False,
                             repair=True)
    assert (summary.shards_repaired, summary.shards_skipped) == (0, 3)


def test_a_marker_of_another_config_is_never_mixed_in(stores, cli):
    data, store, _ = stores
    edit_marker(store, 2, lambda m: m.update(config_hash="f" * 64))
    assert "shard 2 (samples 8..10): marker was written with another config" in \
        cli("validate", store).stdout
    before = file_bytes(store)
    for extra in ((), ("--repair",)):
        result = cli("tokenize", data, "-o", store, *extra, *SMALL)
        assert result.exit_code == 4 and "committed with another config" in result.stderr
        assert file_bytes(store) == before, "a refused run must not touch the store"
    assert cli("tokenize", data, "-o", store, "--overwrite", *SMALL).exit_code == 0
    assert cli("validate", store).exit_code == 0


def test_a_store_of_another_version_is_named_and_refused(stores, cli):
    data, store, reference = stores
    group = zarr.open_group(store, mode="r+")
    group.attrs["mmtok"] = {**group.attrs["mmtok"], "version": "0.0.1"}
    report = cli("validate", store)
    assert report.exit_code == 0 and "written by mmtok 0.0.1" in report.stderr
    refused = cli("tokenize", data, "-o", store, "--repair", *SMALL)
    assert refused.exit_code == 4 and "was written by mmtok 0.0.1" in refused.stderr
    assert cli("tokenize", data, "-o", store, "--overwrite", *SMALL).exit_code == 0
    assert_same_store(store, reference)


def test_edited_attrs_are_named_and_refused(stores, cli):
    data, store, _ = stores
    group = zarr.open_group(store, mode="r+")
    attrs = group.attrs["mmtok"]
    group.attrs["mmtok"] = {**attrs, "config": {**attrs["config"], "size": 48}}
    assert "does not hash to its recorded config_hash" in cli("validate", store).stdout
    refused = cli("tokenize", data, "-o", store, *SMALL)
    assert refused.exit_code == 4 and "was edited or damaged" in refused.stderr


@pytest.fixture
def point_stores(tmp_path) -> tuple[Path, Path]:
    (tmp_path / "data" / "a").mkdir(parents=True)
    for i in range(6):
        np.save(tmp_path / "data" / "a" / f"{i}.npy", random_cloud(100, seed=i))
    tokens = tmp_path / "t.zarr"
    mmtok.tokenize(tmp_path / "data", tokens, "points", progress=False, **POINTS)
    return tmp_path / "data", tokens


def embed(tokens: Path, out: Path, **kwargs) -> RunSummary:
    return mmtok.embed(tokens, out, TINY_ENCODER, progress=False, **kwargs)


def test_embed_refuses_damaged_tokens_until_they_are_repaired(point_stores, tmp_path):
    data, tokens = point_stores
    embed(tokens, tmp_path / "reference.zarr")
    zarr.open_array(tokens / "centers", mode="r+")[3] = 0  # shard 1
    with pytest.raises(StoreError, match=r"shard 1's centers do not match the checksums"):
        embed(tokens, tmp_path / "f.zarr")
    assert mmtok.store_info(tmp_path / "f.zarr")["shards_done"] == 1, "shard 0 is kept"
    mmtok.tokenize(data, tokens, "points", progress=False, repair=True, **POINTS)
    assert embed(tokens, tmp_path / "f.zarr").status == "complete"
    assert_same_store(tmp_path / "f.zarr", tmp_path / "reference.zarr")


def test_embed_repair_rewrites_damaged_features(point_stores, tmp_path):
    _, tokens = point_stores
    features = tmp_path / "f.zarr"
    embed(tokens, features)
    shutil.copytree(features, tmp_path / "reference.zarr")
    shard = features / "features" / "c" / "2" / "0"
    shard.write_bytes(shard.read_bytes()[:-7])
    assert not mmtok.validate_store(features).ok
    assert embed(tokens, features, repair=True).shards_repaired == 1
    assert_same_store(features, tmp_path / "reference.zarr")
