"""The timeseries and imu modalities on files the tests write (pyarrow tables, NumPy, .ts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

import mmtok
from mmtok.errors import SampleError, UsageError
from mmtok.modalities import create_tokenizer, make_config
from mmtok.modalities.timeseries import fill_gaps, window_starts
from mmtok.sources import PartRange
from timeseriesfiles import parse_ts_directly, sine_cases, write_table, write_ts

ENCODER = "metatransformer:depth=1,width=32,heads=4"
RNG = np.random.default_rng(7)
RECORDING = RNG.normal(size=(300, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -1.0]



def listed_parts(tokenizer, path):
    """The tokenizer's listing of ``path`` as ``(name, label)`` pairs: a class name for text
    labels, else a label number (None: unknown, the file's own label)."""
    listing = tokenizer.list_parts(path)
    if not isinstance(listing, PartRange):
        return listing
    if listing.labels is None:
        return [(name, None) for name in listing.names]
    labels = listing.labels.tolist()
    if listing.numbered:
        return [(name, k if k >= 0 else None) for name, k in zip(listing.names, labels)]
    return [(name, listing.class_names[k] if k >= 0 else None)
            for name, k in zip(listing.names, labels)]

def tok(**options):
    options = {"scaling": "none", "num_channels": 3, **options}
    return create_tokenizer("timeseries", **options)


def open_arrays(store) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(store), mode="r")
    return {name: group[name][:] for name in ("tokens", "length", "mean", "std", "label",
                                              "valid", "id")}


# --------------------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps,window,stride,tail", [
    (300, 96, 48, "drop"), (300, 96, 48, "pad"), (288, 96, 48, "pad"), (300, 32, 32, "drop"),
    (300, 50, 7, "pad"), (96, 96, 48, "pad"), (40, 96, 48, "pad"), (300, 1, 100, "drop")])
def test_a_recording_gives_the_window_count_formula_in_order(tmp_path, steps, window, stride,
                                                             tail):
    path = tmp_path / "r.npy"
    np.save(path, RECORDING[:steps])
    tokenizer = tok(window=window, stride=stride, tail=tail)
    parts = [name for name, _ in listed_parts(tokenizer, str(path))]
    full = (steps - window) // stride + 1 if steps >= window else 0
    leftover = steps < window or (full - 1) * stride + window < steps
    assert len(parts) == full + (1 if tail == "pad" and leftover else 0)
    starts = [int(p[2:]) for p in parts]
    assert starts == [k * stride for k in range(len(parts))]
    assert starts == window_starts(steps, window, stride, tail)
    for part, out in zip(parts, tokenizer.tokenize_parts(str(path), parts)):
        start = int(part[2:])
        real = min(window, steps - start)
        assert int(out["length"]) == real
        np.testing.assert_array_equal(out["tokens"][:real], RECORDING[start:start + real]
                                      .astype(np.float32))
        assert not out["tokens"][real:].any()


def test_a_recording_shorter_than_a_window_is_too_short_unless_padded(tmp_path):
    path = tmp_path / "r.npy"
    np.save(path, RECORDING[:40])
    with pytest.raises(SampleError) as error:
        listed_parts(tok(window=96), str(path))
    assert error.value.kind == "too_short"
    summary = mmtok.tokenize([str(path)], tmp_path / "t.zarr", "timeseries", window=96,
                             num_channels=3, scaling="none", progress=False)
    assert summary.num_invalid == 1 and summary.errors_by_kind == {"too_short": 1}


def test_window_ids_locate_the_windows_and_labels_follow_the_rule(tmp_path):
    labels = np.repeat([0, 1, 2], 100)
    path = write_table(tmp_path / "data" / "r.csv", RECORDING, extra={"y": labels})
    for rule, expected in (("last", [0, 1, 1, 2, 2]), ("majority", [0, 0, 1, 1, 2])):
        store = tmp_path / f"{rule}.zarr"
        mmtok.tokenize(tmp_path / "data", store, "timeseries", window=96, stride=48,
                       row_labels="y", label_rule=rule, scaling="none", num_channels=3,
                       progress=False)
        arrays = open_arrays(store)
        assert list(arrays["id"]) == [f"r.csv#t={s}" for s in (0, 48, 96, 144, 192)]
        assert list(arrays["label"]) == expected
    assert zarr.open_group(str(store), mode="r").attrs["mmtok"]["class_names"] == ["0", "1", "2"]


def test_text_row_labels_are_class_names_numbered_over_every_file(tmp_path):
    write_table(tmp_path / "d" / "a.csv", RECORDING[:100], extra={"act": ["walk"] * 100})
    write_table(tmp_path / "d" / "b.csv", RECORDING[:100],
                extra={"act": ["run"] * 50 + ["sit"] * 50})
    store = tmp_path / "t.zarr"
    mmtok.tokenize(tmp_path / "d", store, "timeseries", window=50, row_labels="act",
                   scaling="none", num_channels=3, progress=False)
    arrays = open_arrays(store)
    assert zarr.open_group(str(store), mode="r").attrs["mmtok"]["class_names"] == \
        ["run", "sit", "walk"]
    assert list(arrays["label"]) == [2, 2, 0, 1]


# --------------------------------------------------------------------------------------
# formats give the same tokens
# --------------------------------------------------------------------------------------


def test_csv_tsv_parquet_npy_and_npz_of_the_same_data_give_identical_tokens(tmp_path):
    paths = {
        "csv": write_table(tmp_path / "csv" / "r.csv", RECORDING, ["a", "b", "c"]),
        "tsv": write_table(tmp_path / "tsv" / "r.tsv", RECORDING, ["a", "b", "c"]),
        "parquet": write_table(tmp_path / "parquet" / "r.parquet", RECORDING, ["a", "b", "c"]),
    }
    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "r.npy", RECORDING)
    (tmp_path / "npz").mkdir()
    np.savez_compressed(tmp_path / "npz" / "r.npz", x=RECORDING.T)
    (tmp_path / "ctnpy").mkdir()
    np.save(tmp_path / "ctnpy" / "r.npy", np.ascontiguousarray(RECORDING.T))
    stores = {}
    for name in ("csv", "tsv", "parquet", "npy", "npz", "ctnpy"):
        layout = "ct" if name in ("npz", "ctnpy") else "auto"
        mmtok.tokenize(tmp_path / name, tmp_path / f"{name}.zarr", "timeseries", window=64,
                       stride=24, tail="pad", num_channels=3, layout=layout,
                       mean=(0.5, 4.0, -1.0), std=(2.0, 10.0, 0.5), shard_size=4,
                       progress=False)
        stores[name] = open_arrays(tmp_path / f"{name}.zarr")
    reference = stores.pop("npy")
    assert reference["valid"].all() and len(reference["valid"]) == 11
    expected = (RECORDING[24:88] - [0.5, 4.0, -1.0]) / [2.0, 10.0, 0.5]
    np.testing.assert_allclose(reference["tokens"][1], expected, rtol=1e-6)
    for name, arrays in stores.items():
        for array in ("tokens", "length", "mean", "std", "valid"):
            assert arrays[array].tobytes() == reference[array].tobytes(), (name, array)


def test_a_run_of_windows_equals_each_window_alone_byte_for_byte(tmp_path):
    values = RECORDING.copy()
    values[130, 1] = np.inf  # one bad window among good ones
    values[200:202, 0] = np.nan
    path = str(write_table(tmp_path / "r.csv", values))
    tokenizer = tok(window=40, stride=20, tail="pad", max_gap=2)
    parts = [name for name, _ in listed_parts(tokenizer, path)]
    together = tokenizer.tokenize_parts(path, parts)
    kinds = []
    for part, outcome in zip(parts, together):
        try:
            alone = tokenizer.tokenize_file(path, part)
        except SampleError as exc:
            assert isinstance(outcome, SampleError) and outcome.kind == exc.kind
            kinds.append(exc.kind)
            continue
        for name, array in alone.items():
            assert np.asarray(array).tobytes() == np.asarray(outcome[name]).tobytes()
    assert kinds == ["bad_value", "bad_value"]


# --------------------------------------------------------------------------------------
# .ts files
# --------------------------------------------------------------------------------------


def ts_cases(count: int = 7, seed: int = 1) -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)
    cases = [rng.normal(size=(int(rng.integers(10, 30)), 3)).round(6) for _ in range(count)]
    cases[2][[3, 4], 1] = np.nan  # missing values, a gap of 2
    cases[-2][0, 2] = np.nan  # a missing first value
    labels = [["walk", "run", "sit"][i % 3] for i in range(count)]
    return cases, labels


def test_ts_cases_read_to_the_arrays_of_a_direct_parse(tmp_path):
    cases, labels = ts_cases()
    path = write_ts(tmp_path / "train.ts", cases, labels, classes=["walk", "run", "sit"])
    direct, direct_labels = parse_ts_directly(path)
    tokenizer = tok(window=32)
    read = tokenizer.read_cases(str(path), list(range(len(cases))))
    assert len(read) == len(direct) == 7
    for ours, theirs in zip(read, direct):
        np.testing.assert_array_equal(ours, theirs)  # NaN where '?'
    assert [p for p in listed_parts(tokenizer, str(path))] == [(str(i), ["walk", "run", "sit"].index(lab))
                                                       for i, lab in enumerate(direct_labels)]
    outcomes = tokenizer.tokenize_parts(str(path), [str(i) for i in range(7)])
    assert [getattr(o, "kind", None) for o in outcomes] == [None, None, "missing_values", None,
                                                           None, "missing_values", None]
    filled = tok(window=32, max_gap=2).tokenize_file(str(path), "2")
    gap = direct[2][:, 1]
    steps = np.arange(len(gap))
    expected = np.interp(steps, steps[~np.isnan(gap)], gap[~np.isnan(gap)])
    np.testing.assert_allclose(filled["tokens"][:len(gap), 1], expected.astype(np.float32))
    assert int(filled["length"]) == len(gap)


def test_ts_store_takes_the_class_labels_from_the_file(tmp_path):
    cases, labels = ts_cases()
    write_ts(tmp_path / "data" / "train.ts", cases, labels, classes=["walk", "run", "sit"])
    store = tmp_path / "t.zarr"
    summary = mmtok.tokenize(tmp_path / "data", store, "timeseries", window=32, max_gap=2,
                             stats_from_data=True, progress=False)
    assert summary.num_invalid == 0
    arrays = open_arrays(store)
    attrs = zarr.open_group(str(store), mode="r").attrs["mmtok"]
    assert attrs["class_names"] == ["walk", "run", "sit"]
    assert list(arrays["label"]) == [0, 1, 2, 0, 1, 2, 0]
    assert list(arrays["id"]) == [f"train.ts#{i}" for i in range(7)]
    steps = np.concatenate(cases)
    np.testing.assert_allclose(attrs["config"]["mean"], np.nanmean(steps, axis=0), rtol=1e-9)
    np.testing.assert_allclose(attrs["config"]["std"], np.nanstd(steps, axis=0), rtol=1e-9)


@pytest.mark.parametrize("problem,kind", [
    ("dimensions", "bad_header"), ("length", "bad_header"), ("label", "bad_label"),
    ("ragged", "ragged_rows"), ("text", "bad_value")])
def test_a_ts_case_that_disagrees_with_its_header_is_that_cases_error(tmp_path, problem, kind):
    cases, labels = ts_cases(4)
    options = {}
    if problem == "dimensions":
        options["dimensions"] = 4
    elif problem == "length":
        cases = [c[:12] for c in cases]
        cases[1] = cases[1][:11]
        options["equal_length"] = True
    path = write_ts(tmp_path / "x.ts", cases, labels, classes=["walk", "run", "sit"], **options)
    lines = path.read_text().splitlines()
    if problem == "label":
        lines[-1] = lines[-1].rpartition(":")[0] + ":jump"
    elif problem == "ragged":
        lines[-1] = lines[-1].replace(":", ",1.0:", 1)
    elif problem == "text":
        lines[-1] = lines[-1].replace(",", ",abc,", 1)
    path.write_text("\n".join(lines) + "\n")
    outcomes = tok(window=32, max_gap=3).tokenize_parts(str(path), ["0", "1", "2", "3"])
    bad = [i for i, o in enumerate(outcomes) if isinstance(o, SampleError)]
    expected = {"dimensions": [0, 1, 2, 3], "length": [1]}.get(problem, [3])
    assert bad == expected and all(outcomes[i].kind == kind for i in bad)


def test_a_case_longer_than_the_window_is_too_long(tmp_path):
    path = write_ts(tmp_path / "x.ts", [np.ones((40, 3))], ["a"])
    with pytest.raises(SampleError, match="raise it with --set window=40") as error:
        tok(window=32).tokenize_file(str(path), "0")
    assert error.value.kind == "too_long"


def test_3d_arrays_are_cases_with_labels_from_the_npz(tmp_path):
    cases, labels = sine_cases(6, 20, 3)
    data = np.stack(cases)
    (tmp_path / "a").mkdir()
    np.savez(tmp_path / "a" / "cases.npz", x=data, y=labels)
    (tmp_path / "b").mkdir()
    np.savez(tmp_path / "b" / "cases.npz", data=data.transpose(0, 2, 1), labels=labels)
    results = []
    for name, layout in (("a", "ntc"), ("b", "nct")):
        store = tmp_path / f"{name}.zarr"
        mmtok.tokenize(tmp_path / name, store, "timeseries", window=24, num_channels=3,
                       scaling="none", layout=layout, progress=False)
        results.append(open_arrays(store))
    assert list(results[0]["label"]) == list(labels)
    assert results[0]["tokens"].tobytes() == results[1]["tokens"].tobytes()
    np.testing.assert_array_equal(results[0]["tokens"][2, :20], data[2].astype(np.float32))


# --------------------------------------------------------------------------------------
# statistics: fitted on train, reused for test
# --------------------------------------------------------------------------------------


def test_the_test_store_config_does_not_depend_on_the_test_data(tmp_path, cli):
    write_table(tmp_path / "train" / "r.csv", RECORDING, ["a", "b", "c"])
    for name, scale in (("test1", 3.0), ("test2", -50.0)):
        write_table(tmp_path / name / "r.csv", RECORDING[:200] * scale + 7, ["a", "b", "c"])
    result = cli("tokenize", tmp_path / "train", "-o", tmp_path / "train.zarr", "-m",
                 "timeseries", "--set", "window=96", "--set", "stride=48", "--stats-from-data",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    train = zarr.open_group(str(tmp_path / "train.zarr"), mode="r").attrs["mmtok"]
    np.testing.assert_allclose(train["config"]["mean"], RECORDING.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(train["config"]["std"], RECORDING.std(axis=0), rtol=1e-9)
    assert train["config"]["channels"] == ["a", "b", "c"]
    configs = []
    for name in ("test1", "test2"):
        result = cli("tokenize", tmp_path / name, "-o", tmp_path / f"{name}.zarr",
                     "--config-from", tmp_path / "train.zarr", "--no-progress")
        assert result.exit_code == 0, result.output
        attrs = zarr.open_group(str(tmp_path / f"{name}.zarr"), mode="r").attrs["mmtok"]
        configs.append((attrs["config"], attrs["config_hash"], attrs["fitted"]))
    assert configs[0] == configs[1] == (train["config"], train["config_hash"], train["fitted"])
    tokens = open_arrays(tmp_path / "test1.zarr")["tokens"]
    mean, std = np.array(train["config"]["mean"]), np.array(train["config"]["std"])
    np.testing.assert_allclose(tokens[0], (RECORDING[:96] * 3 + 7 - mean) / std, rtol=1e-5)


def test_standard_scaling_without_statistics_is_refused_with_what_to_do(tmp_path, cli):
    write_table(tmp_path / "d" / "r.csv", RECORDING)
    result = cli("tokenize", tmp_path / "d", "-o", tmp_path / "t.zarr", "-m", "timeseries",
                 "--no-progress")
    assert result.exit_code == 2
    assert "--stats-from-data" in result.stderr and "--config-from" in result.stderr


def test_a_test_file_without_the_training_columns_is_that_files_error(tmp_path):
    write_table(tmp_path / "train" / "r.csv", RECORDING, ["a", "b", "c"])
    write_table(tmp_path / "test" / "r.csv", RECORDING, ["a", "b", "x"])
    mmtok.tokenize(tmp_path / "train", tmp_path / "train.zarr", "timeseries",
                   stats_from_data=True, progress=False)
    summary = mmtok.tokenize(tmp_path / "test", tmp_path / "test.zarr",
                             config_from=tmp_path / "train.zarr", progress=False)
    assert summary.num_invalid == 1 and summary.num_samples == 1
    assert summary.errors_by_kind == {"missing_column": 1}


# --------------------------------------------------------------------------------------
# missing values, bad input, time
# --------------------------------------------------------------------------------------


def test_gaps_up_to_max_gap_are_interpolated_longer_ones_refused():
    x = np.arange(20, dtype=np.float64)[:, None] * [1.0, -2.0]
    x[[0, 5, 6, 7], 0] = np.nan
    filled = fill_gaps(x, 3)
    np.testing.assert_array_equal(filled[1:, 0], np.arange(1, 20))
    assert filled[0, 0] == 1.0  # an end gap takes the nearest value
    with pytest.raises(SampleError, match="more than max_gap 2") as error:
        fill_gaps(x, 2)
    assert error.value.kind == "missing_values"
    x[:, 1] = np.nan
    with pytest.raises(SampleError, match="no value at all"):
        fill_gaps(x, 100)


@pytest.mark.parametrize("problem,kind", [
    ("ragged", "ragged_rows"), ("text", "bad_value"), ("duplicate", "bad_timestamps"),
    ("backwards", "bad_timestamps"), ("inf", "bad_value"), ("quoted", "unsupported")])
def test_bad_tables_are_sample_errors(tmp_path, problem, kind):
    rows = ["t,a,b,c"] + [f"{i * 0.02:.2f},{i},{i % 7},{-i}" for i in range(100)]
    if problem == "ragged":
        rows[50] += ",9"
    elif problem == "text":
        rows[50] = rows[50].rpartition(",")[0] + ",oops"
    elif problem == "duplicate":
        rows[50] = rows[49].partition(",")[0] + "," + rows[50].partition(",")[2]
    elif problem == "backwards":
        rows[50], rows[51] = rows[51], rows[50]
    elif problem == "inf":
        rows[50] = rows[50].rpartition(",")[0] + ",inf"
    elif problem == "quoted":
        rows[50] = '"' + rows[50].replace(",", '",', 1)
    path = tmp_path / "r.csv"
    path.write_text("\n".join(rows) + "\n")
    tokenizer = tok(window=100, time_column="t")
    with pytest.raises(SampleError) as error:
        tokenizer.tokenize_parts(str(path), [p for p, _ in listed_parts(tokenizer, str(path))])
        outcome = tokenizer.tokenize_file(str(path), "t=0")
        raise AssertionError(f"no error: {outcome}")
    assert error.value.kind == kind, error.value.message


def test_resampling_to_rate_follows_the_timestamps(tmp_path):
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.uniform(0.005, 0.015, size=400))  # about 100 Hz, irregular
    values = np.stack([np.sin(times * 3), np.cos(times * 5), times], axis=1)
    path = write_table(tmp_path / "r.parquet", values, extra={"ts": times})
    tokenizer = tok(window=50, stride=25, time_column="ts", rate=50.0)
    parts = [p for p, _ in listed_parts(tokenizer, str(path))]
    grid = times[0] + np.arange(int(np.floor((times[-1] - times[0]) * 50 + 1e-9)) + 1) / 50
    assert len(parts) == (len(grid) - 50) // 25 + 1
    out = tokenizer.tokenize_file(str(path), parts[2])
    expected = np.stack([np.interp(grid[50:100], times, values[:, c]) for c in range(3)], 1)
    np.testing.assert_allclose(out["tokens"], expected.astype(np.float32), rtol=1e-6)


def test_imu_presets_and_options():
    imu = make_config("imu")
    assert (imu.num_channels, imu.window, imu.stride) == (6, 128, 64)
    assert imu.units == ("m/s^2",) * 3 + ("rad/s",) * 3
    har = make_config("imu", preset="uci-har")
    assert (har.rate, har.window, har.stride, har.num_channels) == (50.0, 128, 64, 6)
    with pytest.raises(UsageError, match="tail must be"):
        make_config("timeseries", tail="wrap")
    with pytest.raises(UsageError, match="3 values for 2 channels"):
        make_config("timeseries", num_channels=2, mean=(0, 0, 0), std=(1, 1, 1))


# --------------------------------------------------------------------------------------
# projectors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("modality,kind,record", [
    ("timeseries", None, "informer-conv1d"), ("timeseries", "patch", "patchtst"),
    ("timeseries", "imagebind", "imagebind-imu-patch"), ("imu", None, "imagebind-imu-patch")])
def test_projectors_mask_padding_and_train(modality, kind, record):
    import torch

    from mmtok.embedding.encoders import load_encoder
    from mmtok.embedding.pooling import pool
    from mmtok.embedding.projectors import build_projector, run_encoder

    config = {"window": 40, "num_channels": 3, "channels": [], "mean": []}
    encoder = load_encoder(ENCODER, seed=0)
    options = {"kind": kind} if kind else None
    projector, made = build_projector(modality, config, encoder, 0, options=options)
    assert made["kind"] == record and projector.trainable
    x = torch.randn(2, 40, 3)
    length = torch.tensor([40, 23])
    x[1, 23:] = 0
    real = torch.arange(40)[None, :, None] < length[:, None, None]
    mean = (x * real).sum(1) / length[:, None]
    std = (((x - mean[:, None]) ** 2 * real).sum(1) / length[:, None] + 1e-5).sqrt()
    batch = {"tokens": x, "length": length, "mean": mean, "std": std}

    def feature(batch):
        return pool(*(lambda p: (run_encoder(encoder, p), p.mask, p.prefix))(projector(batch)),
                    "cls+mean+max")

    before = feature(batch)
    alone = feature({k: v[1:] for k, v in batch.items()})
    torch.testing.assert_close(before[1:], alone, rtol=1e-5, atol=1e-5)
    # the same 23 steps cut to a 23-step sample embed alike when positions do not depend
    # on the window (the fixed sinusoidal table)
    if record == "informer-conv1d":
        short, _ = build_projector(modality, {**config, "window": 23}, encoder, 0)
        out = run_encoder(encoder, short({"tokens": x[1:, :23], "length": length[1:],
                                          "mean": mean[1:], "std": std[1:]}))
        torch.testing.assert_close(pool(out, None, 1, "cls+mean+max"), alone, rtol=1e-5,
                                   atol=1e-5)
    projector.requires_grad_(True)
    feature(batch).sum().backward()
    assert all(p.grad is not None for p in projector.parameters())


def test_projector_options_are_checked():
    from mmtok.embedding.encoders import load_encoder
    from mmtok.embedding.projectors import build_projector

    encoder = load_encoder(ENCODER, seed=0)
    config = {"window": 40, "num_channels": 3, "channels": [], "mean": []}
    with pytest.raises(UsageError, match="choose one of informer, patch, imagebind"):
        build_projector("timeseries", config, encoder, 0, options={"kind": "lstm"})
    with pytest.raises(UsageError, match="no option"):
        build_projector("timeseries", config, encoder, 0, options={"kind": "informer",
                                                                   "patch": 4})
    _, record = build_projector("timeseries", config, encoder, 0,
                                options={"kind": "patch", "patch": "8"})
    assert record["options"] == {"kind": "patch", "patch": 8, "stride": 8}
    with pytest.raises(UsageError, match="takes no --projector-option"):
        build_projector("points", {}, encoder, 0, options={"kind": "patch"})


# --------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    """A learnable two-class task as a .ts file (timeseries) and an NPZ of 6-channel cases
    (imu), tokenized with statistics fitted on the training data."""
    folder = tmp_path_factory.mktemp("learnable")
    lengths = [int(n) for n in np.random.default_rng(1).integers(24, 33, 40)]
    cases, labels = sine_cases(40, 32, 3, seed=0, lengths=lengths)
    write_ts(folder / "ts" / "train.ts", cases, [["slow", "fast"][i] for i in labels],
             classes=["slow", "fast"])
    mmtok.tokenize(folder / "ts", folder / "ts.zarr", "timeseries", window=32,
                   stats_from_data=True, shard_size=16, progress=False)
    imu, imu_labels = sine_cases(40, 64, 6, seed=2)
    (folder / "imu").mkdir()
    np.savez(folder / "imu" / "train.npz", x=np.stack(imu), y=imu_labels)
    mmtok.tokenize(folder / "imu", folder / "imu.zarr", "imu", window=64, stride=32,
                   stats_from_data=True, shard_size=16, progress=False)
    return folder


@pytest.mark.parametrize("store,options", [
    ("ts.zarr", []), ("imu.zarr", []),
    pytest.param("ts.zarr", ["kind=patch"], marks=pytest.mark.slow)])
def test_tuning_the_projector_beats_the_majority_class(learnable, tmp_path, cli, store,
                                                        options):
    flags = [flag for option in options for flag in ("--projector-option", option)]
    result = cli("train-head", learnable / store, "-o", tmp_path / "tuned", "--tune",
                 "tokenizer", "--encoder", ENCODER, "--epochs", "10", "--batch-size", "8",
                 "--lr", "5e-3", "--val-split", "0.25", "--json", "--no-progress", *flags)
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["val"]["top1"] >= 0.8, run["val"]  # majority class: 0.5
    record = json.loads((tmp_path / "tuned" / "projector.json").read_text())
    if options:
        assert record["options"]["kind"] == "patch"
        embedded = cli("embed", learnable / store, "-o", tmp_path / "f.zarr", "--encoder",
                       ENCODER, "--projector", tmp_path / "tuned" / "projector.safetensors",
                       "--pool", "cls+mean+max", "--no-progress", *flags)
        assert embedded.exit_code == 0, embedded.output
        attrs = zarr.open_group(str(tmp_path / "f.zarr"), mode="r").attrs["mmtok"]
        assert attrs["config"]["projector"]["options"] == {"kind": "patch", "patch": 16,
                                                           "stride": 8}
        assert cli("predict", tmp_path / "tuned", tmp_path / "f.zarr").exit_code == 0


def test_embed_records_the_projector_options(learnable, tmp_path, cli):
    result = cli("embed", learnable / "ts.zarr", "-o", tmp_path / "f.zarr", "--encoder", ENCODER,
                 "--projector-option", "kind=patch", "--projector-option", "patch=8",
                 "--pool", "mean", "--no-progress")
    assert result.exit_code == 0, result.output
    attrs = zarr.open_group(str(tmp_path / "f.zarr"), mode="r").attrs["mmtok"]
    assert attrs["config"]["projector"]["kind"] == "patchtst"
    assert attrs["config"]["projector"]["options"] == {"kind": "patch", "patch": 8, "stride": 8}
    refused = cli("embed", learnable / "ts.zarr", "-o", tmp_path / "g.zarr", "--encoder",
                  ENCODER, "--projector-option", "kind=lstm", "--no-progress")
    assert refused.exit_code == 2 and "informer, patch, imagebind" in refused.stderr


def test_ts_cases_read_like_sktime_when_it_is_installed(tmp_path):
    datasets = pytest.importorskip("sktime.datasets")
    rng = np.random.default_rng(5)
    cases = [rng.normal(size=(20, 2)).round(5) for _ in range(5)]
    path = write_ts(tmp_path / "x.ts", cases, ["a", "b", "a", "b", "a"])
    theirs, labels = datasets.load_from_tsfile(str(path), return_data_type="numpy3d")
    ours = tok(window=20, num_channels=2).read_cases(str(path), list(range(5)))
    np.testing.assert_allclose(np.stack(ours), np.asarray(theirs).transpose(0, 2, 1))
    assert list(labels) == ["a", "b", "a", "b", "a"]


def test_a_long_recording_costs_no_memory_per_window(tmp_path):
    """The windows are listed as one compact range (names made when asked for) and each
    shard's samples are made when that shard is handed out: the traced peak of a run grows
    by a few bytes per window, where before every window's Sample, id and name were held
    from the start."""
    import tracemalloc

    def traced_peak(windows: int) -> int:
        path = tmp_path / f"r{windows}.npy"
        np.save(path, np.random.default_rng(0).normal(size=(4 * windows, 1)))  # memory-mapped
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            mmtok.tokenize([str(path)], tmp_path / f"t{windows}.zarr", "timeseries", window=4,
                           scaling="none", num_channels=1, shard_size=1024, progress=False)
            return tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()

    traced_peak(1024)  # imports and first-use caches
    small, large = traced_peak(4_000), traced_peak(16_000)
    # about 12 bytes a window now (per-shard costs spread over the windows), 260 before
    assert large - small < 12_000 * 40, f"{(large - small) / 12_000:.0f} bytes per window"
