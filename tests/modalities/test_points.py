"""The points modality: every reader on real files, the grouping, errors, end to end."""

import json

import numpy as np
import pytest
from pointfiles import (
    random_cloud,
    write_modelnet_h5,
    write_o3d_mesh,
    write_off,
    write_ply,
)

import mmtok
from mmtok.errors import SampleError
from mmtok.kernels.fps import farthest_point_sample_reference
from mmtok.kernels.knn import knn_group_reference
from mmtok.modalities import create_tokenizer, make_config
from mmtok.modalities.points.readers import hdf5_rows, read_cloud

SMALL = {"num_points": 128, "num_groups": 16, "group_size": 8}


def read(path, part=None):
    return read_cloud(str(path), part, mesh_points=512, seed=0)


def test_point_readers_return_what_was_written(tmp_path):
    xyz = random_cloud(50)
    normals = random_cloud(50, seed=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    colors = np.random.default_rng(2).random((50, 3)).astype(np.float32)
    write_ply(tmp_path / "a.ply", xyz, normals, colors, ascii=True)
    write_ply(tmp_path / "b.ply", xyz, normals, ascii=False)
    write_ply(tmp_path / "c.pcd", xyz, ascii=False)
    np.savetxt(tmp_path / "d.xyz", xyz)
    np.savetxt(tmp_path / "e.txt", np.hstack([xyz, normals]), delimiter=",")
    (tmp_path / "f.pts").write_text("50\n" + "\n".join(" ".join(map(str, p)) for p in xyz))
    np.save(tmp_path / "g.npy", np.hstack([xyz, normals]))
    np.savez(tmp_path / "h.npz", points=xyz, colors=colors)
    for name in "a.ply b.ply c.pcd d.xyz e.txt f.pts g.npy h.npz".split():
        cloud = read(tmp_path / name)
        np.testing.assert_allclose(cloud.xyz, xyz, rtol=1e-5, atol=1e-6, err_msg=name)
        if name in ("a.ply", "b.ply", "e.txt", "g.npy"):
            np.testing.assert_allclose(cloud.normals, normals, atol=1e-5, err_msg=name)
        if name in ("a.ply", "h.npz"):
            np.testing.assert_allclose(cloud.colors, colors, atol=1 / 255, err_msg=name)
    assert read(tmp_path / "d.xyz").normals is None


@pytest.mark.parametrize("name,writer", [
    ("plain.off", lambda p: write_off(p)),
    ("glued.off", lambda p: write_off(p, glued_header=True)),
    ("quads.off", lambda p: write_off(p, quads=True)),
    ("cube.obj", write_o3d_mesh),
    ("cube.stl", write_o3d_mesh),
])
def test_meshes_are_sampled_on_their_surface_reproducibly(tmp_path, name, writer):
    writer(tmp_path / name)
    first, again = read(tmp_path / name), read(tmp_path / name)
    assert first.xyz.shape == (512, 3)
    np.testing.assert_array_equal(first.xyz, again.xyz)
    # every point lies on a face of the unit cube: its largest coordinate is +-0.5
    np.testing.assert_allclose(np.abs(first.xyz).max(axis=1), 0.5, atol=1e-5)
    assert np.abs(first.xyz).max() <= 0.5 + 1e-6
    other_seed = read_cloud(str(tmp_path / name), None, mesh_points=512, seed=1)
    assert not np.array_equal(first.xyz, other_seed.xyz)


def test_hdf5_rows_and_labels(tmp_path):
    clouds = np.stack([random_cloud(64, seed=i) for i in range(3)])
    write_modelnet_h5(tmp_path / "train0.h5", clouds, [2, 0, 1])
    cloud = read_cloud(str(tmp_path / "train0.h5"), "1", 512, 0)
    np.testing.assert_array_equal(cloud.xyz, clouds[1])
    assert hdf5_rows(str(tmp_path / "train0.h5"))[1] == ("1", 0)  # row 1's label


def test_grouping_is_fps_centres_and_knn_offsets(tmp_path):
    xyz = random_cloud(300)
    np.save(tmp_path / "c.npy", xyz)
    tokenizer = create_tokenizer("points", **SMALL)
    out = tokenizer.tokenize_file(str(tmp_path / "c.npy"))
    prepared = tokenizer.prepare(read(tmp_path / "c.npy")).xyz
    reduced_index = farthest_point_sample_reference(
        tokenizer_normalized(xyz), 128)
    np.testing.assert_array_equal(prepared, tokenizer_normalized(xyz)[reduced_index])
    centres = farthest_point_sample_reference(prepared, 16)
    assert centres[0] == 0
    np.testing.assert_array_equal(out["centers"], prepared[centres])
    index, offsets = knn_group_reference(prepared, centres, 8)
    np.testing.assert_array_equal(out["group_index"], index)
    np.testing.assert_array_equal(out["tokens"], offsets.astype(np.float16))
    assert out["tokens"].shape == (16, 8, 3) and int(out["length"]) == 16
    assert int(out["num_input_points"]) == 300


def tokenizer_normalized(xyz):
    from mmtok.modalities.points.tokenizer import normalize_unit_sphere

    return normalize_unit_sphere(xyz)


def test_normalisation_puts_the_cloud_in_the_unit_sphere(tmp_path):
    np.save(tmp_path / "c.npy", random_cloud(200) * 50 + 7)
    prepared = create_tokenizer("points", **SMALL).prepare(read(tmp_path / "c.npy")).xyz
    np.testing.assert_allclose(np.linalg.norm(prepared, axis=1).max(), 1, rtol=1e-5)
    raw = create_tokenizer("points", normalize=False, **SMALL).prepare(read(tmp_path / "c.npy"))
    assert np.abs(raw.xyz).max() > 20


def test_extra_channels_ride_along(tmp_path):
    xyz, normals = random_cloud(200), random_cloud(200, seed=5)
    np.save(tmp_path / "n.npy", np.hstack([xyz, normals]))
    tokenizer = create_tokenizer("points", channels=("normals",), **SMALL)
    out = tokenizer.tokenize_file(str(tmp_path / "n.npy"))
    assert out["tokens"].shape == (16, 8, 6)
    cloud = tokenizer.prepare(read(tmp_path / "n.npy"))
    np.testing.assert_array_equal(out["tokens"][..., 3:],
                                  cloud.normals[out["group_index"]].astype(np.float16))
    np.save(tmp_path / "plain.npy", xyz)
    with pytest.raises(SampleError) as info:
        tokenizer.tokenize_file(str(tmp_path / "plain.npy"))
    assert info.value.kind == "missing_channel"


def test_small_clouds_error_or_pad_by_repetition(tmp_path):
    np.save(tmp_path / "s.npy", random_cloud(40))
    with pytest.raises(SampleError) as info:
        create_tokenizer("points", **SMALL).tokenize_file(str(tmp_path / "s.npy"))
    assert info.value.kind == "too_few_points" and "pad=repeat" in info.value.message
    padded = create_tokenizer("points", pad="repeat", **SMALL)
    cloud = padded.prepare(read(tmp_path / "s.npy"))
    np.testing.assert_array_equal(cloud.xyz[40:80], cloud.xyz[:40])
    assert padded.tokenize_file(str(tmp_path / "s.npy"))["tokens"].shape == (16, 8, 3)


@pytest.mark.parametrize("make,kind", [
    (lambda p: np.save(p, np.full((200, 3), np.nan, np.float32)), "nan_points"),
    (lambda p: np.save(p, np.ones((200, 3), np.float32)), "degenerate_cloud"),
    (lambda p: np.save(p, np.zeros((0, 3), np.float32)), "empty_cloud"),
    (lambda p: np.save(p, np.zeros((200, 2), np.float32)), "bad_shape"),
    (lambda p: p.write_bytes(b""), "empty_file"),
    (lambda p: p.write_bytes(b"\x93NUMPY garbage"), "decode_error"),
])
def test_bad_clouds_are_sample_errors(tmp_path, make, kind):
    path = tmp_path / "bad.npy"
    make(path)
    with pytest.raises(SampleError) as info:
        create_tokenizer("points", **SMALL).tokenize_file(str(path))
    assert info.value.kind == kind


@pytest.mark.parametrize("name,content", [
    ("bad.ply", b"ply\nformat ascii 1.0\nelement vertex 10\nend_header\n1 2\n"),
    ("bad.off", b"OFF\n8 12 0\n0 0 0\n"),
    ("bad.txt", b"1 2 3\nfour five six\n"),
    ("bad.h5", b"not hdf5 at all"),
])
def test_corrupt_files_of_each_format_are_recorded(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    part = "0" if name.endswith(".h5") else None
    with pytest.raises(SampleError) as info:
        create_tokenizer("points", **SMALL).tokenize_file(str(tmp_path / name), part)
    assert info.value.kind in ("decode_error", "truncated", "empty_cloud")


def test_a_million_points_are_thinned_before_the_quadratic_work(tmp_path):
    np.save(tmp_path / "big.npy", random_cloud(1_000_000))
    out = create_tokenizer("points").tokenize_file(str(tmp_path / "big.npy"))
    assert out["tokens"].shape == (256, 32, 3) and int(out["num_input_points"]) == 1_000_000


def test_presets():
    assert (make_config("points", preset="point-mae").num_groups,
            make_config("points", preset="modelnet8k").num_points) == (64, 8192)
    assert make_config("points", preset="point-mae", num_groups=32).num_groups == 32
    with pytest.raises(Exception, match="no preset"):
        make_config("points", preset="pointnet")


def test_tokenize_a_folder_of_ply_files(tmp_path, cli):
    for c, name in enumerate(("chair", "table")):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(3):
            write_ply(tmp_path / "data" / name / f"{i}.ply", random_cloud(200, seed=10 * c + i),
                      ascii=bool(i % 2))
    (tmp_path / "data" / "table" / "broken.ply").write_bytes(b"ply\ngarbage")
    result = cli("tokenize", tmp_path / "data", "-m", "points", "-o", tmp_path / "p.zarr",
                 "--json", "--no-progress", "--set", "num_points=128", "--set", "num_groups=16",
                 "--set", "group_size=8", "-j", "2", "--shard-size", "2")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["num_valid"], summary["errors_by_kind"]) == (6, {"decode_error": 1})
    store = mmtok.open_store(tmp_path / "p.zarr")
    assert store.class_names == ["chair", "table"]
    item = store[0]
    assert item["tokens"].shape == (16, 8, 3) and item["centers"].shape == (16, 3)
    assert mmtok.validate_store(tmp_path / "p.zarr").ok


def test_tokenize_modelnet_hdf5(tmp_path, cli):
    data = tmp_path / "modelnet"
    data.mkdir()
    write_modelnet_h5(data / "ply_data_test0.h5",
                      np.stack([random_cloud(256, seed=i) for i in range(5)]), [3, 1, 0, 2, 1])
    (data / "shape_names.txt").write_text("airplane\nbathtub\nbed\nbench\n")
    result = cli("tokenize", data, "-m", "points", "-o", tmp_path / "m.zarr", "--json",
                 "--no-progress", "--set", "preset=point-mae", "--set", "num_points=128")
    assert result.exit_code == 0, result.output
    store = mmtok.open_store(tmp_path / "m.zarr")
    assert [store[i]["id"] for i in range(5)] == [f"ply_data_test0.h5#{i}" for i in range(5)]
    assert [store[i]["label"] for i in range(5)] == [3, 1, 0, 2, 1]
    assert store.class_names == ["airplane", "bathtub", "bed", "bench"]
    assert store[0]["tokens"].shape == (64, 32, 3)
    # the class-names file is no sample (it used to be read as an XYZ cloud and fail)
    assert len(store) == 5 and json.loads(result.stdout)["num_invalid"] == 0
    assert store.attrs["source"]["not_samples"] == ["shape_names.txt"]
