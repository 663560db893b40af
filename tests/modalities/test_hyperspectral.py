"""The hyperspectral modality: SpectralFormer's gather as the reference, every cube format
giving the same tokens, band scaling fitted on training pixels only, hostile inputs, and
tokenize -> embed -> train-head --tune tokenizer end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mmtok
from cubefiles import spectralformer_tokens, write_envi, write_mat73
from mmtok.errors import SampleError, UsageError
from mmtok.modalities import create_tokenizer
from mmtok.modalities.hyperspectral.readers import Cube

H, W, B = 13, 11, 9


@pytest.fixture(scope="module")
def cube():
    return np.random.default_rng(0).random((H, W, B)).astype(np.float32)


@pytest.fixture(scope="module")
def labels():
    gt = np.zeros((H, W), np.uint8)
    gt[0:4, 0:5] = 1  # touches the top-left corner: mirror padding on two sides
    gt[8:13, 6:11] = 2  # the bottom-right corner
    gt[6, 3] = 3
    return gt


@pytest.fixture(scope="module")
def files(cube, labels, tmp_path_factory):
    import scipy.io
    import tifffile

    folder = tmp_path_factory.mktemp("cubes")
    out = {"npy": folder / "cube.npy"}
    np.save(out["npy"], cube)
    for interleave in ("bsq", "bil", "bip"):
        out[interleave] = write_envi(folder / f"c_{interleave}.hdr", cube, interleave)
    out["bip-big-offset"] = write_envi(folder / "c_big.hdr", cube, "bip", big=True, offset=64,
                                       data_suffix="")
    out["mat"] = folder / "c5.mat"
    scipy.io.savemat(out["mat"], {"indian_pines": cube, "other": np.ones(3)})
    out["mat73"] = write_mat73(folder / "c73.mat", "indian_pines", cube)
    out["tif"] = folder / "c.tif"
    tifffile.imwrite(out["tif"], cube.transpose(2, 0, 1), photometric="minisblack",
                     planarconfig="separate")
    out["labels"] = folder / "gt.npy"
    np.save(out["labels"], labels)
    return out


def pixel_parts(labels):
    rows, cols = np.nonzero(labels)
    return [f"r={r},c={c}" for r, c in zip(rows, cols)], np.stack([rows, cols], 1)


@pytest.mark.parametrize("patch,group", [(1, 1), (3, 1), (5, 3), (7, 3)])
def test_tokens_equal_spectralformers_mirror_padded_gather(files, cube, labels, patch, group):
    tok = create_tokenizer("hyperspectral", bands=B, patch=patch, band_group=group)
    parts, pixels = pixel_parts(labels)
    got = tok.tokenize_parts(str(files["npy"]), parts)
    expected = spectralformer_tokens(cube.astype(np.float64), pixels, patch, group)
    assert np.array_equal(np.stack([g["tokens"] for g in got]), expected.astype(np.float32))
    assert [tuple(g["position"]) for g in got] == [tuple(p) for p in pixels]
    for part, result in zip(parts[:5], got):  # tokenize_parts == tokenize_file
        assert np.array_equal(tok.tokenize_file(str(files["npy"]), part)["tokens"],
                              result["tokens"])


def test_every_cube_format_gives_identical_tokens(files, labels):
    tok = create_tokenizer("hyperspectral", bands=B, patch=3, band_group=3)
    parts, _ = pixel_parts(labels)
    reference = np.stack([r["tokens"] for r in tok.tokenize_parts(str(files["npy"]), parts)])
    for name in ("bsq", "bil", "bip", "bip-big-offset", "mat", "mat73", "tif"):
        got = np.stack([r["tokens"] for r in tok.tokenize_parts(str(files[name]), parts)])
        assert np.array_equal(got, reference), name


def test_envi_data_types_and_byte_orders(tmp_path, cube):
    values = (cube * 1000).astype(np.uint16)
    tok = create_tokenizer("hyperspectral", bands=B)
    np.save(tmp_path / "u16.npy", values)
    reference = tok.tokenize_file(str(tmp_path / "u16.npy"), "r=3,c=4")["tokens"]
    for dtype in ("uint16", "int32", "float64"):
        for big in (False, True):
            path = write_envi(tmp_path / f"{dtype}{big}.hdr", values.astype(dtype), "bil", big)
            assert np.array_equal(tok.tokenize_file(str(path), "r=3,c=4")["tokens"], reference)


def test_label_map_samples_ids_labels_and_drop_bands(files, labels, tmp_path):
    summary = mmtok.tokenize(files["bil"], tmp_path / "t.zarr", "hyperspectral",
                             label_map=files["labels"], bands=B - 4, drop_bands="2-3,9,5",
                             progress=False)
    assert summary.num_samples == summary.num_valid == int((labels > 0).sum())
    store = mmtok.open_store(tmp_path / "t.zarr")
    parts, pixels = pixel_parts(labels)
    assert list(store.group["id"][:]) == [f"c_bil.hdr#{p}" for p in parts]
    assert list(store.group["label"][:]) == [int(labels[r, c]) - 1 for r, c in pixels]
    assert store.attrs["class_names"] == ["1", "2", "3"]
    assert store.attrs["source"]["label_map"] == str(files["labels"])
    tokens = store.group["tokens"][:]
    kept = [0, 3, 5, 6, 7]  # bands 1, 4, 6, 7, 8 (1-based) survive
    full = create_tokenizer("hyperspectral", bands=B).tokenize_parts(str(files["bil"]), parts)
    assert np.array_equal(tokens, np.stack([r["tokens"] for r in full])[:, kept])


def test_band_scaling_is_fitted_on_the_training_pixels_only(tmp_path, cube, labels):
    rng = np.random.default_rng(5)
    train = np.where(rng.random((H, W)) < 0.5, labels, 0).astype(np.uint8)
    test = np.where(train > 0, 0, labels).astype(np.uint8)
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "test.npy", test)
    np.save(tmp_path / "cube.npy", cube)
    changed = cube.copy()
    changed[train == 0] = rng.random(((train == 0).sum(), B)) * 50 - 20  # every other pixel
    (tmp_path / "other").mkdir()
    np.save(tmp_path / "other" / "cube.npy", changed)
    configs = {}
    for scale in ("minmax", "standard"):
        for name, folder in (("same", tmp_path), ("changed", tmp_path / "other")):
            store = tmp_path / f"{scale}-{name}.zarr"
            mmtok.tokenize(folder / "cube.npy", store, "hyperspectral", bands=B, scale=scale,
                           label_map=tmp_path / "train.npy", stats_from_data=True,
                           progress=False)
            configs[scale, name] = mmtok.open_store(store).attrs["config"]
        # pixels outside the training map never move the fitted statistics ...
        assert configs[scale, "same"] == configs[scale, "changed"]
    train_pixels = cube[train > 0].astype(np.float64)
    np.testing.assert_allclose(configs["minmax", "same"]["band_offset"], train_pixels.min(0))
    np.testing.assert_allclose(configs["minmax", "same"]["band_scale"],
                               train_pixels.max(0) - train_pixels.min(0))
    np.testing.assert_allclose(configs["standard", "same"]["band_offset"], train_pixels.mean(0))
    np.testing.assert_allclose(configs["standard", "same"]["band_scale"], train_pixels.std(0))
    whole = cube.reshape(-1, B).astype(np.float64)  # the reference's whole-image fit differs
    assert not np.allclose(configs["minmax", "same"]["band_offset"], whole.min(0))
    # ... and the test map reuses them unchanged
    mmtok.tokenize(tmp_path / "cube.npy", tmp_path / "test.zarr", label_map=tmp_path / "test.npy",
                   config_from=tmp_path / "minmax-same.zarr", progress=False)
    test_store = mmtok.open_store(tmp_path / "test.zarr")
    assert test_store.attrs["config"] == configs["minmax", "same"]
    assert test_store.attrs["source"]["label_map"] == str(tmp_path / "test.npy")
    parts, pixels = pixel_parts(test)
    offset = np.array(configs["minmax", "same"]["band_offset"], np.float32)
    scale = np.array(configs["minmax", "same"]["band_scale"], np.float32)
    np.testing.assert_allclose(test_store.group["tokens"][:, :, 0],
                               (cube[pixels[:, 0], pixels[:, 1]] - offset) / scale, rtol=1e-6)
    # a changed training pixel does move them
    moved = cube.copy()
    r, c = np.argwhere(train > 0)[0]
    moved[r, c, 0] = 7.0
    (tmp_path / "moved").mkdir()
    np.save(tmp_path / "moved" / "cube.npy", moved)
    mmtok.tokenize(tmp_path / "moved" / "cube.npy", tmp_path / "moved.zarr", "hyperspectral",
                   bands=B, scale="minmax", label_map=tmp_path / "train.npy",
                   stats_from_data=True, progress=False)
    assert mmtok.open_store(tmp_path / "moved.zarr").attrs["config"] != configs["minmax", "same"]


def test_a_run_reads_only_the_rows_its_pixels_touch(files, labels, monkeypatch):
    calls = []
    real = Cube.rows
    monkeypatch.setattr(Cube, "rows", lambda self, r0, r1: calls.append((r0, r1)) or
                        real(self, r0, r1))
    tok = create_tokenizer("hyperspectral", bands=B, patch=3)
    tok.tokenize_parts(str(files["bsq"]), ["r=9,c=7", "r=10,c=7"])
    assert calls == [(8, 12)]


def sample_error(tok, path, part=None) -> SampleError:
    with pytest.raises(SampleError) as info:  # a file's error: raised for every part
        tok.tokenize_file(str(path), part)
    return info.value


def test_bad_cubes_and_label_maps_are_clear_errors(tmp_path, cube, files):
    tok = create_tokenizer("hyperspectral", bands=B)
    hdr = write_envi(tmp_path / "short.hdr", cube)
    (tmp_path / "short.img").write_bytes((tmp_path / "short.img").read_bytes()[:-10])
    error = sample_error(tok, hdr, "r=0,c=0")
    assert error.kind == "bad_header" and "bytes" in error.message
    odd = write_envi(tmp_path / "odd.hdr", cube)
    odd.write_text(odd.read_text().replace("interleave = bsq", "interleave = bpi"))
    assert sample_error(tok, odd, "r=0,c=0").kind == "bad_header"
    nan = cube.copy()
    nan[5, 5, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    outcomes = tok.tokenize_parts(str(tmp_path / "nan.npy"), ["r=5,c=5", "r=0,c=0"])
    assert outcomes[0].kind == "nan_pixel" and isinstance(outcomes[1], dict)  # per pixel
    assert sample_error(create_tokenizer("hyperspectral", bands=B + 1), files["npy"]).kind \
        == "band_mismatch"
    np.save(tmp_path / "flat.npy", cube[:, :, 0])
    assert sample_error(tok, tmp_path / "flat.npy").kind == "bad_shape"
    # label maps: another size; non-integer values
    np.save(tmp_path / "small.npy", np.ones((H - 1, W), np.uint8))
    with pytest.raises(SampleError) as info:
        tok.with_label_map(str(tmp_path / "small.npy")).list_parts(str(files["npy"]))
    assert info.value.kind == "size_mismatch"
    np.save(tmp_path / "frac.npy", np.full((H, W), 0.5))
    with pytest.raises(SampleError) as info:
        tok.with_label_map(str(tmp_path / "frac.npy")).list_parts(str(files["npy"]))
    assert info.value.kind == "bad_label_map" and "non-integer" in info.value.message
    summary = mmtok.tokenize(files["npy"], tmp_path / "s.zarr", "hyperspectral", bands=B,
                             label_map=tmp_path / "small.npy", progress=False)
    assert (summary.num_samples, summary.num_invalid) == (1, 1)  # recorded on the cube's slot
    # a saturated (constant) band on the training pixels cannot be scaled: say which
    flat = cube.copy()
    flat[:, :, 4] = 65535
    np.save(tmp_path / "sat.npy", flat)
    with pytest.raises(UsageError, match=r"band\(s\) 5 are constant"):
        mmtok.tokenize(tmp_path / "sat.npy", tmp_path / "sat.zarr", "hyperspectral", bands=B,
                       label_map=files["labels"], stats_from_data=True, progress=False)


def test_bad_options_are_usage_errors(files):
    for options in ({"patch": 4}, {"band_group": 0}, {"scale": "log"}, {"drop_bands": "5-2"},
                    {"scale": "minmax", "bands": 2, "band_offset": (0.0,), "band_scale": (1.0,)},
                    {"scale": "minmax", "bands": 1, "band_offset": (0.0,), "band_scale": (0.0,)}):
        with pytest.raises(UsageError):
            create_tokenizer("hyperspectral", **options)
    with pytest.raises(UsageError, match="--stats-from-data"):
        mmtok.tokenize(files["npy"], files["npy"].parent / "y.zarr", "hyperspectral", bands=B,
                       scale="standard", label_map=files["labels"], progress=False)
    with pytest.raises(UsageError, match="takes no --label-map"):
        mmtok.tokenize(files["npy"], files["npy"].parent / "x.zarr", "points",
                       label_map=files["labels"], progress=False)


@pytest.mark.slow
def test_tune_tokenizer_beats_chance_on_a_generated_scene(tmp_path, cli):
    rng = np.random.default_rng(0)
    h, w, b = 24, 24, 16
    classes = np.repeat(np.arange(1, 4), (h * w) // 3 + 1)[:h * w].reshape(h, w)
    signatures = rng.random((4, b)) * 2
    cube = signatures[classes] + 0.4 * rng.normal(size=(h, w, b))
    np.save(tmp_path / "cube.npy", cube.astype(np.float32))
    train = np.where(rng.random((h, w)) < 0.1, classes, 0)
    test = np.where((train == 0) & (rng.random((h, w)) < 0.2), classes, 0)
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "test.npy", test)
    mmtok.tokenize(tmp_path / "cube.npy", tmp_path / "tr.zarr", "hyperspectral", bands=b,
                   patch=3, label_map=tmp_path / "train.npy", stats_from_data=True,
                   progress=False)
    mmtok.tokenize(tmp_path / "cube.npy", tmp_path / "te.zarr", label_map=tmp_path / "test.npy",
                   config_from=tmp_path / "tr.zarr", progress=False)
    result = cli("train-head", tmp_path / "tr.zarr", "-o", tmp_path / "tuned", "--tune",
                 "tokenizer", "--encoder", "metatransformer:depth=1,width=32,heads=4",
                 "--epochs", "15", "--batch-size", "16", "--lr", "3e-3", "--test",
                 tmp_path / "te.zarr", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    assert metrics["test"]["top1"] > 0.7, metrics["test"]


def test_a_shard_of_one_cube_costs_one_buffer_of_tokens(tmp_path, monkeypatch):
    """The run's tokens are gathered straight into one array that ``work_shard`` writes as
    the shard (no second shard-sized copy; the old path held the blocks and the shard
    buffer at once, over 3 buffers at peak with Zarr's chunk copies)."""
    import tracemalloc

    import mmtok.store.layout as layout

    monkeypatch.setattr(layout, "TARGET_CHUNK_BYTES", 256 << 10)  # 16 chunks per shard
    h, w, b, shard = 48, 48, 32, 1024
    np.save(tmp_path / "cube.npy", np.random.default_rng(0).random((h, w, b), np.float32))
    np.save(tmp_path / "gt.npy", np.ones((h, w), np.uint8))  # 2304 pixels: 2 full shards
    options = dict(bands=b, patch=3, band_group=3, label_map=tmp_path / "gt.npy",
                   shard_size=shard, progress=False)
    mmtok.tokenize(str(tmp_path / "cube.npy"), tmp_path / "warm.zarr", "hyperspectral",
                   **options)  # imports and first-use caches are not the shard's memory
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        mmtok.tokenize(str(tmp_path / "cube.npy"), tmp_path / "t.zarr", "hyperspectral",
                       **options)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    buffer = shard * b * 3 * 3 * 3 * 4  # one shard of float32 tokens
    # the buffer, the encoded shard (random values: a large fraction of it), the listing
    assert peak < 1.7 * buffer, f"{peak / buffer:.2f} shard buffers"
