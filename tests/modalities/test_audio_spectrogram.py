"""Audio stores hold the normalised spectrogram; AST patches are cut at embed time and equal
the patches (hence the features) the patch-storing layout gave (tests/audioreference.py)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
from audioreference import CONFIGS, ENCODER, REFERENCE, write_clips

import mmtok
from mmtok.errors import UsageError
from mmtok.kernels.patchify import patchify_reference
from mmtok.modalities import create_tokenizer, make_config
from mmtok.modalities.audio import PRESETS
from mmtok.modalities.audio.projector import spectrogram_patches, valid_columns


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    write_clips(root / "clips")
    for name, options in CONFIGS.items():
        mmtok.tokenize(root / "clips", root / f"{name}.zarr", "audio", progress=False, **options)
        mmtok.embed(root / f"{name}.zarr", root / f"{name}-f.zarr", ENCODER,
                    pool_how="cls+mean+max", progress=False)
    return root


@pytest.mark.parametrize("name", list(CONFIGS))
def test_patches_and_features_equal_the_patch_storing_version(reference_run, name):
    reference = np.load(REFERENCE)
    store = mmtok.open_store(reference_run / f"{name}.zarr")
    config = CONFIGS[name]
    assert store.group["tokens"].shape == (4, config["target_frames"], config["num_mel_bins"])
    spectrogram = torch.from_numpy(store.group["tokens"][:])
    length = torch.from_numpy(store.group["length"][:])
    patches = spectrogram_patches(spectrogram, 16, 10)
    np.testing.assert_array_equal(patches.numpy(), reference[f"{name}_patches"].astype(np.float32))
    np.testing.assert_array_equal(length.numpy(), reference[f"{name}_length"])
    columns = int(store.static("positions")[:, 1].max()) + 1
    np.testing.assert_array_equal(valid_columns(length, 10, columns).numpy(),
                                  reference[f"{name}_valid_columns"])
    features = mmtok.open_store(reference_run / f"{name}-f.zarr").group["features"][:]
    np.testing.assert_allclose(features, reference[f"{name}_features"], atol=1e-6, rtol=0)


def test_the_store_holds_the_normalised_spectrogram_with_constant_padding(tmp_path):
    rng = np.random.default_rng(3)
    wave = (0.1 * rng.standard_normal(8000)).astype(np.float32)  # 0.5 s: 48 real frames
    sf.write(tmp_path / "x.wav", wave, 16000, subtype="FLOAT")
    tokenizer = create_tokenizer("audio", target_frames=128, num_mel_bins=64)
    out = tokenizer.tokenize_file(str(tmp_path / "x.wav"))
    grid, length = tokenizer.features(tokenizer.load(str(tmp_path / "x.wav")))
    c = tokenizer.config
    want = ((grid - np.float32(c.mean)) / np.float32(2 * c.std)).astype(np.float16).T
    assert out["tokens"].shape == (128, 64) and int(out["length"]) == length == 48
    np.testing.assert_array_equal(out["tokens"], want)
    assert (out["tokens"][48:] == np.float16(-c.mean / (2 * c.std))).all()
    # patches cut at embed time are AST's Conv2d(1, D, 16, stride 10) windows
    cut = spectrogram_patches(torch.from_numpy(out["tokens"][None]), 16, 10).numpy()
    np.testing.assert_array_equal(cut, patchify_reference(want.T[None, None], 16, 10)
                                  .astype(np.float32))


def test_presets_set_asts_target_lengths_and_statistics():
    assert {name: (p["target_frames"], p["mean"], p["std"]) for name, p in PRESETS.items()} == {
        "audioset": (1024, -4.2677393, 4.5689974), "esc50": (512, -6.6268077, 5.358466),
        "speechcommands": (128, -6.845978, 5.5654526)}
    config = make_config("audio", preset="speechcommands")
    assert (config.preset, config.target_frames, config.mean) == ("speechcommands", 128,
                                                                  -6.845978)
    assert make_config("audio").preset == "audioset"
    with pytest.raises(UsageError, match="no preset"):
        make_config("audio", preset="librispeech")
    tokenizer = create_tokenizer("audio", preset="esc50")
    assert tokenizer.sample_arrays()["tokens"].shape == (512, 128)


def test_an_old_patch_store_is_refused_with_a_re_tokenize_message(reference_run, tmp_path):
    import shutil

    old = tmp_path / "old.zarr"
    shutil.copytree(reference_run / "tiny.zarr", old)
    meta = json.loads((old / "zarr.json").read_text())
    del meta["attributes"]["mmtok"]["config"]["layout"]  # as layout 1 wrote it
    from mmtok.store.layout import config_hash

    attrs = meta["attributes"]["mmtok"]
    attrs["config_hash"] = config_hash(attrs["kind"], attrs["modality"], attrs["config"],
                                       attrs["shard_size"])
    (old / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="Re-tokenize the audio files"):
        mmtok.embed(old, tmp_path / "f.zarr", ENCODER, progress=False)


@pytest.mark.interpret
def test_the_triton_kernel_cuts_the_same_patches_from_the_stored_layout():
    """The CUDA path (the patchify kernel reading the (frames, mel) store through a
    transposed view), run on the CPU by Triton's interpreter, equals the CPU path."""
    pytest.importorskip("triton")
    code = textwrap.dedent("""
        import numpy as np, torch
        from mmtok.modalities.audio.projector import spectrogram_patches
        rng = np.random.default_rng(0)
        spec = torch.from_numpy(rng.standard_normal((2, 48, 32)).astype(np.float16))
        cpu = spectrogram_patches(spec, 16, 10, impl="torch")
        kernel = spectrogram_patches(spec, 16, 10, impl="triton")
        assert cpu.shape == kernel.shape == (2, 2 * 4, 256), kernel.shape
        assert kernel.dtype == torch.float32
        assert torch.equal(cpu, kernel)
    """)
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_stereo_mixing_is_numpys_channel_mean_bit_for_bit():
    from mmtok.modalities.audio.tokenizer import _mix_to_mono

    rng = np.random.default_rng(5)
    for channels in (1, 2, 3):
        data = (rng.standard_normal((10_001, channels)) * 0.4).astype(np.float32)
        data[:5] = [[2.0 ** -130] * channels, [1.0] * channels, [-1.0] * channels,
                    [np.float32(1e-38)] * channels, [0.0] * channels]  # subnormal, edges
        np.testing.assert_array_equal(_mix_to_mono(data), data.mean(axis=1, dtype=np.float32))
