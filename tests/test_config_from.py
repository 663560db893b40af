"""Fitted statistics: fitted on train with --stats-from-data, reused unchanged for test data
with --config-from, recorded (where they came from) outside the hashed config; and every
argument checked before the source is walked."""

import json

import numpy as np
import pytest
import soundfile

import mmtok
from mmtok.errors import UsageError
from mmtok.modalities.audio import AUDIOSET_MEAN, AudioTokenizer
from mmtok.store.writer import read_attrs

FAST = ("--set", "target_frames=64", "--no-progress")


def write_clips(folder, seed: int, per_class: int = 2):
    """Short clips of two classes whose levels differ from AudioSet's (so fitting matters)."""
    rng = np.random.default_rng(seed)
    for name, scale in (("quiet", 0.01), ("loud", 0.3)):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            clip = (rng.normal(size=8000) * scale).astype(np.float32)
            soundfile.write(folder / name / f"{i}.wav", clip, 16000)
    return folder


@pytest.fixture
def fitted(tmp_path, cli):
    """tr.zarr fitted on train/ (--stats-from-data), te.zarr tokenized with --config-from."""
    train, test = write_clips(tmp_path / "train", 0), write_clips(tmp_path / "test", 1, 3)
    tr, te = tmp_path / "tr.zarr", tmp_path / "te.zarr"
    result = cli("tokenize", train, "-m", "audio", "--stats-from-data", "-o", tr, *FAST)
    assert result.exit_code == 0, result.output
    result = cli("tokenize", test, "--config-from", tr, "-o", te, "--no-progress")
    assert result.exit_code == 0, result.output
    return tmp_path, tr, te


def test_test_store_takes_train_config_hash_and_fitted_statistics(fitted):
    tmp_path, tr, te = fitted
    train, test = read_attrs(tr), read_attrs(te)
    assert train["config"]["mean"] != pytest.approx(AUDIOSET_MEAN, abs=0.1)  # really fitted
    assert test["modality"] == "audio"  # from the store: no -m was given
    assert test["config"] == train["config"]
    assert test["config_hash"] == train["config_hash"]
    assert test["source_hash"] != train["source_hash"]  # other data, same config
    # where the statistics came from: train's source, not the test data
    assert test["fitted"] == train["fitted"]
    assert test["fitted"]["source_hash"] == train["source_hash"]
    assert test["fitted"]["fields"] == ["mean", "std"]
    assert test["fitted"]["source"]["root"] == str(tmp_path / "train")
    assert test["config_from"] == {"path": str(tr), "kind": "tokens",
                                   "config_hash": train["config_hash"]}
    assert "config_from" not in train


def test_reused_statistics_are_the_tokens_statistics(fitted, cli):
    """te.zarr holds the tokens that train's mean and std, given by hand, make."""
    tmp_path, tr, te = fitted
    config = read_attrs(tr)["config"]
    by_hand = tmp_path / "by_hand.zarr"
    result = cli("tokenize", tmp_path / "test", "-m", "audio", "-o", by_hand, *FAST,
                 "--set", f"mean={config['mean']!r}", "--set", f"std={config['std']!r}")
    assert result.exit_code == 0, result.output
    assert read_attrs(by_hand)["config_hash"] == read_attrs(te)["config_hash"]
    assert np.array_equal(mmtok.open_store(te).group["tokens"][:],
                          mmtok.open_store(by_hand).group["tokens"][:])
    assert "fitted" not in read_attrs(by_hand)


def test_rerun_of_a_config_from_run_resumes(fitted, cli):
    tmp_path, tr, te = fitted
    rerun = cli("tokenize", tmp_path / "test", "--config-from", tr, "-o", te, "--no-progress")
    assert rerun.exit_code == 0, rerun.output
    assert "1 shard(s) were already done" in rerun.stdout


@pytest.mark.parametrize("extra, message", [
    (("--set", "mean=0"), "mean=0.0 (the store has"),
    (("--set", "target_frames=32"), "target_frames=32"),
    (("-m", "image"), "-m image was given"),
    (("--stats-from-data",), "give one or the other"),
])
def test_config_from_refuses_what_would_change_the_tokens(fitted, cli, extra, message):
    tmp_path, tr, _ = fitted
    result = cli("tokenize", tmp_path / "test", "--config-from", tr, "-o", tmp_path / "x.zarr",
                 "--no-progress", *extra)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "x.zarr").exists()


def test_config_from_accepts_options_equal_to_the_stores(fitted, cli):
    tmp_path, tr, te = fitted
    result = cli("tokenize", tmp_path / "test", "--config-from", tr, "-o", tmp_path / "x.zarr",
                 "-m", "audio", "--set", "target_frames=64", "--no-progress")
    assert result.exit_code == 0, result.output
    assert read_attrs(tmp_path / "x.zarr")["config_hash"] == read_attrs(te)["config_hash"]


def test_image_flags_count_as_options(tmp_path, cli):
    from imagefiles import noise_image

    (tmp_path / "img" / "a").mkdir(parents=True)
    noise_image(tmp_path / "img" / "a" / "x.png", (40, 40))
    first = tmp_path / "first.zarr"
    assert cli("tokenize", tmp_path / "img", "-o", first, "--size", "32", "--no-progress",
               "--set", "patch=16").exit_code == 0
    refused = cli("tokenize", tmp_path / "img", "-o", tmp_path / "x.zarr", "--config-from",
                  first, "--size", "64", "--no-progress")
    assert refused.exit_code == 2 and "size=64 (the store has 32)" in refused.stderr
    same = cli("tokenize", tmp_path / "img", "-o", tmp_path / "y.zarr", "--config-from",
               first, "--size", "32", "--no-progress")
    assert same.exit_code == 0, same.output


def test_info_shows_where_statistics_were_fitted(fitted, cli):
    tmp_path, tr, te = fitted
    shown = cli("info", te)
    line = next(x for x in shown.stdout.splitlines() if x.startswith("statistics"))
    assert f"mean, std fitted on {tmp_path / 'train'} (4 samples" in line
    assert f"config reused from {tr}" in line
    details = json.loads(cli("info", te, "--json").stdout)
    assert details["fitted"]["source_hash"] == read_attrs(tr)["source_hash"]
    assert details["config_from"]["path"] == str(tr)
    plain = json.loads(cli("info", tr, "--json").stdout)
    assert plain["config_from"] is None and plain["fitted"]["fields"] == ["mean", "std"]


def test_config_from_a_feature_store(fitted):
    """A feature store records its token config and the fitted record: enough to reuse."""
    tmp_path, tr, te = fitted
    feats = tmp_path / "tr.features.zarr"
    mmtok.embed(tr, feats, "metatransformer:depth=1,width=32,heads=4", progress=False)
    assert read_attrs(feats)["fitted"] == read_attrs(tr)["fitted"]
    again = tmp_path / "again.zarr"
    mmtok.tokenize(tmp_path / "test", again, config_from=feats, progress=False)
    assert read_attrs(again)["config_hash"] == read_attrs(te)["config_hash"]
    assert read_attrs(again)["fitted"] == read_attrs(tr)["fitted"]
    assert read_attrs(again)["config_from"]["kind"] == "features"


def test_config_from_refuses_stores_without_a_trustworthy_config(tmp_path, fitted):
    _, tr, _ = fitted
    with pytest.raises(UsageError, match="no such store"):
        mmtok.tokenize(tmp_path / "test", tmp_path / "x.zarr", config_from=tmp_path / "nope")
    with pytest.raises(UsageError, match="not an mmtok store"):
        mmtok.tokenize(tmp_path / "test", tmp_path / "x.zarr", config_from=tmp_path / "test")
    meta = tr / "zarr.json"
    edited = json.loads(meta.read_text())
    edited["attributes"]["mmtok"]["config"]["mean"] = 0.0
    meta.write_text(json.dumps(edited))
    with pytest.raises(UsageError, match="does not hash"):
        mmtok.tokenize(tmp_path / "test", tmp_path / "x.zarr", config_from=tr)


# --- every argument is checked before the source is walked ------------------------------

@pytest.fixture
def unwalkable(monkeypatch):
    """A source whose walk (folder listing, part listing, statistics pass) fails the test."""
    def walked(*args, **kwargs):
        raise AssertionError("the source was walked before the arguments were checked")

    monkeypatch.setattr("mmtok.pipeline.from_folder", walked)
    monkeypatch.setattr("mmtok.pipeline.expand_parts", walked)
    monkeypatch.setattr(AudioTokenizer, "statistics_from", walked)


@pytest.mark.parametrize("arguments, message", [
    ({"workers": 0}, "--workers"),
    ({"max_errors": -1}, "--max-errors"),
    ({"shard_size": 0}, "--shard-size"),
    ({"config_from": "missing.zarr", "stats_from_data": False}, "no such store"),
    ({"config_from": "missing.zarr", "stats_from_data": True}, "one or the other"),
    ({"modality": "audio", "target_frames": 3}, "target_frames"),
    ({"modality": "audio", "loudness": 3}, "no option"),
    ({"modality": "image", "stats_from_data": True}, "cannot compute"),
    ({"modality": "nonsense"}, "unknown modality"),
])
def test_arguments_are_checked_before_the_source_is_walked(tmp_path, unwalkable, arguments,
                                                           message):
    arguments = {"modality": "audio", "stats_from_data": True, **arguments}
    with pytest.raises(UsageError, match=message):
        mmtok.tokenize(tmp_path, tmp_path / "x.zarr", progress=False, **arguments)
    assert not (tmp_path / "x.zarr").exists()


def test_cli_workers_zero_never_walks_the_source(tmp_path, unwalkable, cli):
    result = cli("tokenize", tmp_path, "-m", "audio", "--stats-from-data", "-j", "0",
                 "-o", tmp_path / "x.zarr")
    assert result.exit_code == 2 and "--workers must be at least 1" in result.stderr
