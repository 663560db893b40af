"""The audio reader and tokenizer on files the tests write with soundfile."""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

import mmtok
import mmtok.modalities.audio  # noqa: F401  (registers "audio"; harmless once the package does)
from mmtok.errors import SampleError, UsageError
from mmtok.kernels.patchify import patchify_reference
from mmtok.modalities import create_tokenizer, make_config
from mmtok.modalities.audio import AUDIOSET_MEAN, AUDIOSET_STD, dataset_statistics, to_float16
from mmtok.modalities.audio.fbank import fbank

SR = 16000
PAD_VALUE = -AUDIOSET_MEAN / (2 * AUDIOSET_STD)  # a zero-padded frame after normalisation
SILENT_VALUE = (math.log(np.finfo(np.float32).eps) - AUDIOSET_MEAN) / (2 * AUDIOSET_STD)


def tone(seconds: float, freq: float = 1000.0, sr: int = SR, amp: float = 0.5,
         channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = amp * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 3 * freq * t)
    x = x.astype(np.float32)
    return x if channels == 1 else np.stack([x] * channels, axis=1)


def expected_grid(wave: np.ndarray, frames: int = 1024) -> np.ndarray:
    """(128, frames) un-normalised features of a 16 kHz float waveform, AST's way."""
    x = wave.astype(np.float64) - wave.astype(np.float64).mean()
    bank = fbank(x)[:frames]
    grid = np.zeros((128, frames), np.float32)
    grid[:, :len(bank)] = bank.T
    return grid


def loudest_channel(tokenizer, path, part=None) -> int:
    grid, length = tokenizer.features(tokenizer.load(path, part))
    return int(np.bincount(grid[:, 2:length - 2].argmax(axis=0)).argmax())


def cut_patches(tokens: np.ndarray) -> np.ndarray:
    """The AST patches the projector cuts from one stored (frames, mel) spectrogram."""
    import torch

    from mmtok.modalities.audio.projector import spectrogram_patches

    return spectrogram_patches(torch.from_numpy(tokens[None]), 16, 10)[0].numpy()


def columns_of(length: int, columns: int = 101) -> int:
    """Patch columns holding a real frame (what the projector masks by)."""
    import torch

    from mmtok.modalities.audio.projector import valid_columns

    return int(valid_columns(torch.tensor([length]), 10, columns)[0])


@pytest.fixture(scope="module")
def tokenizer():
    return create_tokenizer("audio")


# --------------------------------------------------------------------------------------
# formats, channels, sample rates
# --------------------------------------------------------------------------------------

LOSSLESS = [("wav", "PCM_U8", 0.15), ("wav", "PCM_16", 0.02), ("wav", "PCM_24", 0.02),
            ("wav", "PCM_32", 0.02), ("wav", "FLOAT", 0.02), ("flac", "PCM_16", 0.02),
            ("flac", "PCM_24", 0.02)]


@pytest.mark.parametrize("ext,subtype,tolerance", LOSSLESS)
def test_lossless_formats_give_the_features_of_the_waveform(tmp_path, tokenizer, ext, subtype,
                                                            tolerance):
    wave = tone(1.0)
    path = str(tmp_path / f"x.{ext}")
    sf.write(path, wave, SR, subtype=subtype)
    out = tokenizer.tokenize_file(path)
    assert out["tokens"].shape == (1024, 128) and out["tokens"].dtype == np.float16
    assert int(out["length"]) == 1 + (SR - 400) // 160 == 98
    grid, length = tokenizer.features(tokenizer.load(path))
    reference = expected_grid(wave)
    strong = reference[:, :length] > -5  # where quantisation noise does not dominate
    assert strong.sum() > 500
    assert np.abs(grid[:, :length][strong] - reference[:, :length][strong]).mean() < tolerance


@pytest.mark.parametrize("fmt,subtype", [("OGG", "VORBIS"), ("OGG", "OPUS"), ("MP3", None)])
def test_lossy_formats_decode_with_the_tone_in_the_right_channel(tmp_path, tokenizer, fmt,
                                                                 subtype):
    if fmt not in sf.available_formats() or (
            subtype and subtype not in sf.available_subtypes(fmt)):
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write {fmt}/{subtype}")
    path = str(tmp_path / ("x.mp3" if fmt == "MP3" else "x.ogg"))
    rate = 48000 if subtype == "OPUS" else SR  # Opus runs at 48 kHz
    sf.write(path, tone(1.0, sr=rate), rate, format=fmt, subtype=subtype)
    reference = int(np.bincount(expected_grid(tone(1.0))[:, 2:96].argmax(axis=0)).argmax())
    assert loudest_channel(tokenizer, path) == reference
    assert 90 <= int(tokenizer.tokenize_file(path)["length"]) <= 110  # encoder padding varies


@pytest.mark.parametrize("rate,channels", [(44100, 2), (8000, 1), (22050, 3), (48000, 2)])
def test_any_rate_and_channel_count_is_mixed_and_resampled(tmp_path, tokenizer, rate, channels):
    path = str(tmp_path / "x.wav")
    sf.write(path, tone(2.0, sr=rate, channels=channels), rate, subtype="PCM_16")
    out = tokenizer.tokenize_file(path)
    assert int(out["length"]) == 1 + (2 * SR - 400) // 160
    assert loudest_channel(tokenizer, path) == loudest_channel(tokenizer, _write16(tmp_path))


def _write16(tmp_path) -> str:
    path = str(tmp_path / "ref16.wav")
    sf.write(path, tone(2.0), SR, subtype="FLOAT")
    return path


def test_channels_are_averaged(tmp_path, tokenizer):
    left, right = tone(1.0, 700.0), tone(1.0, 2500.0)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), SR, subtype="FLOAT")
    grid, length = tokenizer.features(tokenizer.load(str(tmp_path / "st.wav")))
    np.testing.assert_allclose(grid, expected_grid((left + right) / 2), atol=1e-4)


def test_resampling_a_window_equals_resampling_the_whole_file(tmp_path):
    import soxr

    rate = 44100
    rng = np.random.default_rng(0)
    wave = (tone(23.0, 523.0, sr=rate) + 0.05 * rng.standard_normal(23 * rate)).astype(np.float32)
    sf.write(tmp_path / "long.wav", wave, rate, subtype="FLOAT")
    whole = soxr.resample(wave, rate, SR, quality="HQ")
    split = create_tokenizer("audio", long_clips="split")
    parts = split.list_parts(str(tmp_path / "long.wav"))
    assert parts == ["t=0.00-10.24", "t=10.24-20.48", "t=20.48-23.00"]
    for index, part in enumerate(parts):
        got = split.load(str(tmp_path / "long.wav"), part)
        start = index * 163840
        want = whole[start:start + 164080]
        assert len(got) == len(want)
        assert np.abs(got - want).max() < 1e-5


# --------------------------------------------------------------------------------------
# padding, silence, short and long clips
# --------------------------------------------------------------------------------------


def test_silence_is_valid_and_pads_with_zeros_in_the_log_mel_domain(tmp_path, tokenizer):
    sf.write(tmp_path / "silence.wav", np.zeros(3 * SR, np.float32), SR, subtype="PCM_16")
    out = tokenizer.tokenize_file(str(tmp_path / "silence.wav"))
    length = int(out["length"])
    assert length == 1 + (3 * SR - 400) // 160 == 298
    assert columns_of(length) == 30  # patch columns 0..29 start before frame 298
    np.testing.assert_allclose(out["tokens"][:length], np.float16(SILENT_VALUE), rtol=1e-3)
    np.testing.assert_allclose(out["tokens"][length:], np.float16(PAD_VALUE), rtol=1e-3)
    patches = cut_patches(out["tokens"])
    np.testing.assert_allclose(patches[-1], np.float16(PAD_VALUE), rtol=1e-3)  # frames 1000+


@pytest.mark.parametrize("seconds,frames", [(0.1, 8), (0.025, 1), (0.01, 1), (1 / SR, 1)])
def test_very_short_clips_are_valid(tmp_path, tokenizer, seconds, frames):
    sf.write(tmp_path / "short.wav", tone(seconds), SR, subtype="PCM_16")
    out = tokenizer.tokenize_file(str(tmp_path / "short.wav"))
    assert int(out["length"]) == frames
    assert columns_of(frames) == 1
    assert np.isfinite(out["tokens"].astype(np.float32)).all()


def test_long_clips_are_cut_to_the_first_window(tmp_path, tokenizer):
    rate = 22050
    first, second = tone(10.3, 600.0, sr=rate), tone(9.7, 4000.0, sr=rate)
    sf.write(tmp_path / "long.wav", np.concatenate([first, second]), rate, subtype="PCM_16")
    assert tokenizer.list_parts is None
    out = tokenizer.tokenize_file(str(tmp_path / "long.wav"))
    assert int(out["length"]) == 1024 and columns_of(1024) == 101
    channel = loudest_channel(tokenizer, str(tmp_path / "long.wav"))
    sf.write(tmp_path / "first.wav", first, rate, subtype="PCM_16")
    assert channel == loudest_channel(tokenizer, str(tmp_path / "first.wav"))


def test_split_windows_are_consecutive_blocks_of_the_whole_fbank(tmp_path):
    wave = np.concatenate([tone(10.24, 500.0), tone(10.24, 2000.0), tone(3.0, 6000.0)])
    sf.write(tmp_path / "long.wav", wave, SR, subtype="FLOAT")
    split = create_tokenizer("audio", long_clips="split")
    parts = split.list_parts(str(tmp_path / "long.wav"))
    assert parts == ["t=0.00-10.24", "t=10.24-20.48", "t=20.48-23.48"]
    whole = fbank(wave.astype(np.float64) - wave.mean())
    for index, part in enumerate(parts):
        grid, length = split.features(split.load(str(tmp_path / "long.wav"), part))
        block = whole[index * 1024:(index + 1) * 1024]
        assert length == len(block)
        np.testing.assert_allclose(grid[:, :length], block.T, atol=2e-4)
    with pytest.raises(UsageError, match="not a window name"):
        split.tokenize_file(str(tmp_path / "long.wav"), "t=3.00-13.24")
    with pytest.raises(UsageError, match="long_clips"):
        create_tokenizer("audio").tokenize_file(str(tmp_path / "long.wav"), parts[0])


# --------------------------------------------------------------------------------------
# tokens and positions
# --------------------------------------------------------------------------------------


def test_tokens_are_ast_overlapping_patches_of_the_normalised_fbank(tmp_path, tokenizer):
    wave = tone(4.0, 1500.0) + np.random.default_rng(1).standard_normal(4 * SR).astype(np.float32) * 0.01
    sf.write(tmp_path / "x.wav", wave, SR, subtype="FLOAT")
    out = tokenizer.tokenize_file(str(tmp_path / "x.wav"))
    grid, length = tokenizer.features(tokenizer.load(str(tmp_path / "x.wav")))
    mean, std = make_config("audio").mean, make_config("audio").std
    normalised = ((grid - np.float32(mean)) / np.float32(2 * std)).astype(np.float16)
    np.testing.assert_array_equal(out["tokens"], normalised.T)  # (frame, mel), stored
    patches = cut_patches(out["tokens"])  # what the projector cuts at embed time
    np.testing.assert_array_equal(patches, patchify_reference(normalised[None, None], 16, 10)[0])
    # and the fused-normalisation reference (float64 arithmetic): within one float16 step
    fused = patchify_reference(grid[None, None], 16, 10, mean=[mean], std=[2 * std])[0]
    np.testing.assert_allclose(patches, fused.astype(np.float32), rtol=1e-3, atol=1e-3)
    positions = tokenizer.static_arrays()["positions"]
    assert positions.shape == (1212, 2) and positions.dtype == np.int32
    assert positions[:, 0].max() == 11 and positions[:, 1].max() == 100
    # token i is rows 10*f..10*f+15, frames 10*c..10*c+15 of the (mel, frame) image
    f, c = positions[777]
    np.testing.assert_array_equal(patches[777].reshape(16, 16),
                                  normalised[10 * f:10 * f + 16, 10 * c:10 * c + 16])


def test_float16_rounding_is_bit_for_bit_numpys():
    rng = np.random.default_rng(0)
    edges = np.array([0.0, -0.0, 1e-8, -3e-8, 2.0 ** -24, 2.0 ** -25, 6.09e-5, 2.0 ** -14,
                      1.00048828125, 1.00146484375, -2.5, 65504, 65519.99, 65520, -1e30,
                      np.inf, -np.inf, np.nan], np.float32)
    spread = (rng.standard_normal(200_000) * 10.0 ** rng.uniform(-9, 6, 200_000))
    random_bits = rng.integers(0, 2 ** 32, 200_000, dtype=np.uint64).astype(np.uint32)
    for x in (edges, spread.astype(np.float32), random_bits.view(np.float32),
              rng.standard_normal((128, 1024)).astype(np.float32)):
        with np.errstate(over="ignore", invalid="ignore"):
            want = x.astype(np.float16)
        got = to_float16(x)
        assert got.shape == x.shape and got.dtype == np.float16
        np.testing.assert_array_equal(got.view(np.uint16)[~np.isnan(want)],
                                      want.view(np.uint16)[~np.isnan(want)])
        assert np.isnan(got[np.isnan(want)]).all()


@pytest.mark.interpret
def test_triton_interpreter_patchifies_the_audio_grid_like_the_reference():
    pytest.importorskip("triton")
    code = textwrap.dedent("""
        import numpy as np, torch
        from mmtok.kernels.patchify import patchify, patchify_reference
        rng = np.random.default_rng(0)
        grid = (rng.standard_normal((1, 1, 128, 96)) * 4 - 4).astype(np.float32)
        out = patchify(torch.from_numpy(grid), 16, 10, mean=[-4.2677393], std=[9.1379948],
                       impl="triton").numpy()
        ref = patchify_reference(grid, 16, 10, mean=[-4.2677393], std=[9.1379948])
        assert out.shape == ref.shape == (1, 12 * 9, 256), out.shape
        np.testing.assert_allclose(out.astype(np.float32), ref.astype(np.float32), rtol=1e-3,
                                   atol=1e-3)
    """)
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


# --------------------------------------------------------------------------------------
# bad files
# --------------------------------------------------------------------------------------


def _wav_bytes(seconds: float = 1.0) -> bytes:
    import io

    buffer = io.BytesIO()
    sf.write(buffer, tone(seconds), SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.mark.parametrize("writer,kind", [
    (lambda p: p.write_bytes(b""), "empty_file"),
    (lambda p: p.write_bytes(b"this is text, not audio"), "decode_error"),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "decode_error"),
    (lambda p: p.write_bytes(_wav_bytes()[:30]), "decode_error"),  # header cut before 'data'
    (lambda p: p.write_bytes(_wav_bytes()[:44]), "empty_audio"),  # a whole header, no samples
    (lambda p: sf.write(p, np.zeros(0, np.float32), SR, format="WAV"), "empty_audio"),
    (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2] * 1000, np.float32), SR, format="WAV",
                        subtype="FLOAT"), "nan_audio"),
    (lambda p: sf.write(p, np.array([0.1, np.inf] * 1000, np.float32), SR, format="WAV",
                        subtype="FLOAT"), "nan_audio"),
])
def test_bad_files_raise_sample_errors_with_a_kind(tmp_path, tokenizer, writer, kind):
    path = tmp_path / "bad.wav"
    writer(path)
    with pytest.raises(SampleError) as info:
        tokenizer.tokenize_file(str(path))
    assert info.value.kind == kind, info.value.message


def test_truncated_data_is_a_shorter_valid_clip(tmp_path, tokenizer):
    (tmp_path / "cut.wav").write_bytes(_wav_bytes(1.0)[:44 + 2 * 8000])
    assert int(tokenizer.tokenize_file(str(tmp_path / "cut.wav"))["length"]) == 48


def test_missing_folder_and_too_long(tmp_path, tokenizer):
    (tmp_path / "dir.wav").mkdir()
    sf.write(tmp_path / "two.wav", tone(2.0), SR)
    cases = [(tokenizer, "nope.wav", "not_found"), (tokenizer, "dir.wav", "unreadable"),
             (create_tokenizer("audio", max_seconds=1.5), "two.wav", "too_long"),
             (create_tokenizer("audio", max_seconds=1.5, long_clips="split"), "two.wav",
              "too_long")]
    for tok, name, kind in cases:
        with pytest.raises(SampleError) as info:
            if tok.list_parts is not None:
                tok.list_parts(str(tmp_path / name))
            tok.tokenize_file(str(tmp_path / name))
        assert info.value.kind == kind


def test_bad_configs_are_refused_with_a_reason():
    with pytest.raises(UsageError, match="long_clips"):
        make_config("audio", long_clips="loop")
    with pytest.raises(UsageError, match="std"):
        make_config("audio", std=0.0)
    with pytest.raises(UsageError, match="at least patch"):
        make_config("audio", target_frames=8)
    with pytest.raises(UsageError, match="low_freq"):
        make_config("audio", low_freq=9000.0)
    with pytest.raises(UsageError, match="window_type"):
        make_config("audio", window_type="kaiser")
    config = make_config("audio", mean=-6.6268077, std=5.358466)
    assert (config.sample_rate, config.num_mel_bins, config.target_frames) == (16000, 128, 1024)


# --------------------------------------------------------------------------------------
# end to end and statistics
# --------------------------------------------------------------------------------------


def _audio_folder(root) -> None:
    for label, freq in (("birds", 3000.0), ("engines", 200.0)):
        (root / label).mkdir(parents=True)
        for i in range(3):
            sf.write(root / label / f"clip{i}.wav", tone(1.0 + i, freq + 50 * i), SR,
                     subtype="PCM_16")
    sf.write(root / "birds" / "long.flac", tone(12.0, 3100.0, sr=44100, channels=2), 44100)
    (root / "engines" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")


def test_tokenize_a_folder_of_class_subfolders(tmp_path):
    _audio_folder(tmp_path / "data")
    summary = mmtok.tokenize(tmp_path / "data", tmp_path / "out.zarr", "audio", shard_size=4,
                             progress=False)
    assert (summary.num_samples, summary.num_valid) == (8, 7)
    assert summary.errors_by_kind == {"decode_error": 1}
    store = mmtok.open_store(tmp_path / "out.zarr")
    assert store.class_names == ["birds", "engines"]
    ids = [store[i]["id"] for i in range(len(store))]
    assert ids == ["birds/clip0.wav", "birds/clip1.wav", "birds/clip2.wav", "birds/long.flac",
                   "engines/broken.wav", "engines/clip0.wav", "engines/clip1.wav",
                   "engines/clip2.wav"]
    items = [store[i] for i in range(len(store))]
    assert [it["label"] for it in items] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [it["valid"] for it in items] == [True] * 4 + [False] + [True] * 3
    assert [int(it["length"]) for it in items] == [98, 198, 298, 1024, 0, 98, 198, 298]
    assert items[0]["tokens"].shape == (1024, 128) and items[0]["tokens"].dtype == np.float16
    assert store.static("positions").shape == (1212, 2)
    assert store.config["long_clips"] == "cut" and store.modality == "audio"
    assert mmtok.validate_store(tmp_path / "out.zarr").ok


def test_split_mode_end_to_end_ids_name_the_windows(tmp_path):
    _audio_folder(tmp_path / "data")
    summary = mmtok.tokenize(tmp_path / "data", tmp_path / "split.zarr", "audio", shard_size=4,
                             progress=False, long_clips="split")
    store = mmtok.open_store(tmp_path / "split.zarr")
    ids = [store[i]["id"] for i in range(len(store))]
    assert ids[3:5] == ["birds/long.flac#t=0.00-10.24", "birds/long.flac#t=10.24-12.00"]
    assert ids[0] == "birds/clip0.wav#t=0.00-1.00"
    assert summary.num_samples == 9 and summary.num_valid == 8
    assert int(store[4]["length"]) == 1 + (12 * SR - 400) // 160 - 1024
    assert mmtok.validate_store(tmp_path / "split.zarr").ok


def test_dataset_statistics_pool_the_real_frames(tmp_path):
    _audio_folder(tmp_path / "data")
    paths = sorted(str(p) for p in (tmp_path / "data").rglob("clip*.wav"))
    mean, std = dataset_statistics(paths + [str(tmp_path / "data/engines/broken.wav")])
    tokenizer = create_tokenizer("audio")
    values = np.concatenate([
        grid[:, :length].ravel()
        for grid, length in (tokenizer.features(tokenizer.load(p)) for p in paths)])
    assert mean == pytest.approx(values.astype(np.float64).mean(), abs=1e-6)
    assert std == pytest.approx(values.astype(np.float64).std(), rel=1e-6)
    with pytest.raises(UsageError, match="no readable"):
        dataset_statistics([str(tmp_path / "data/engines/broken.wav")])


def test_stats_from_data_records_the_data_sets_own_statistics(tmp_path, cli):
    import soundfile

    from mmtok.modalities.audio import dataset_statistics

    rng = np.random.default_rng(4)
    (tmp_path / "data" / "a").mkdir(parents=True)
    paths = []
    for i in range(3):
        path = tmp_path / "data" / "a" / f"{i}.wav"
        soundfile.write(path, (rng.normal(size=16000) * 0.05 * (i + 1)).astype(np.float32), 16000)
        paths.append(str(path))
    result = cli("tokenize", tmp_path / "data", "-m", "audio", "-o", tmp_path / "t.zarr",
                 "--stats-from-data", "--no-progress", "--set", "target_frames=128")
    assert result.exit_code == 0, result.output
    config = mmtok.open_store(tmp_path / "t.zarr").config
    mean, std = dataset_statistics(paths, target_frames=128)
    assert (config["mean"], config["std"]) == (pytest.approx(mean), pytest.approx(std))
    assert config["mean"] != -4.2677393
    rerun = cli("tokenize", tmp_path / "data", "-m", "audio", "-o", tmp_path / "t.zarr",
                "--stats-from-data", "--no-progress", "--set", "target_frames=128")
    assert rerun.exit_code == 0 and "1 shard(s) were already done" in rerun.stdout
    from PIL import Image

    (tmp_path / "img").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "img" / "x.png")
    images = cli("tokenize", tmp_path / "img", "-o", tmp_path / "i.zarr", "--stats-from-data")
    assert images.exit_code == 2 and "cannot compute its normalisation" in images.stderr


@pytest.mark.parametrize("fmt", ["WAV", "AIFF", "AU", "W64", "CAF"])
def test_16_bit_pcm_read_as_integers_is_libsndfiles_float_bit_for_bit(tmp_path, fmt):
    from mmtok.modalities.audio.tokenizer import _read_float32

    rng = np.random.default_rng(0)
    pcm = rng.integers(-32768, 32768, (3000, 2), dtype=np.int16)
    pcm[:3] = [[-32768, 32767], [0, -1], [1, 32767]]
    path = tmp_path / f"t.{fmt.lower()}"
    sf.write(path, pcm, 8000, format=fmt, subtype="PCM_16")
    for start in (0, 1, 2990):
        with sf.SoundFile(path) as handle:
            handle.seek(start)
            expected = handle.read(20, dtype="float32", always_2d=True)
        with sf.SoundFile(path) as handle:
            handle.seek(start)
            ours = _read_float32(handle, 20)
        assert ours.dtype == np.float32 and ours.shape == expected.shape
        assert np.array_equal(ours.view(np.uint32), expected.view(np.uint32))
