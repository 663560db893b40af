"""The video modality: frame choice against VideoMAE's index rule on clips whose frames draw
their index, decoding only what is needed, tubelets, the inflated projector, bad inputs and
tokenize -> tune -> embed on a motion-direction task."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("av")

import mmtok  # noqa: E402
import videofiles as vf  # noqa: E402
from mmtok.errors import SampleError, UsageError  # noqa: E402
from mmtok.kernels.tubelets import tubelets_reference  # noqa: E402
from mmtok.modalities import create_tokenizer  # noqa: E402
from mmtok.modalities.video import reader  # noqa: E402

TINY = {"num_frames": 4, "rate": 2, "size": 32, "patch": 16}


def videomae_validation_index(length: int, clip_len: int, frame_sample_rate: int) -> np.ndarray:
    """VideoMAE v2's ``VideoClsDataset.load_video`` index rule (validation mode, one segment),
    written out as the upstream code does it."""
    converted_len = int(clip_len * frame_sample_rate)
    seg_len = length
    if seg_len <= converted_len:
        index = np.linspace(0, seg_len, num=seg_len // frame_sample_rate)
        index = np.concatenate((index, np.ones(clip_len - seg_len // frame_sample_rate) * seg_len))
        index = np.clip(index, 0, seg_len - 1).astype(np.int64)
    else:
        end_idx = (converted_len + seg_len) // 2
        str_idx = end_idx - converted_len
        index = np.linspace(str_idx, end_idx, num=clip_len)
        index = np.clip(index, str_idx, end_idx - 1).astype(np.int64)
    return index


def videomae_test_index(length: int, clip_len: int, rate: int, chunk: int, chunks: int):
    """VideoMAE's test mode: every ``rate``-th frame, padded with the last, then the
    ``chunk``-th of ``chunks`` temporal views over that buffer."""
    all_index = [x for x in range(0, length, rate)]
    while len(all_index) < clip_len:
        all_index.append(all_index[-1])
    temporal_step = max(1.0 * (len(all_index) - clip_len) / (chunks - 1), 0)
    temporal_start = int(chunk * temporal_step)
    return np.array(all_index[temporal_start:temporal_start + clip_len])


def read_back(tokens: np.ndarray, num_frames: int = 4, size: int = 32) -> list[int]:
    """The index each tokenized frame draws (read at a pixel away from the corner block)."""
    frames = vf.tokens_to_frames(tokens, num_frames, size)
    return [vf.read_index(frame[size // 2, size // 2 + 4]) for frame in frames]


def _need(ext: str) -> None:
    codec = vf.FORMATS[ext][0]
    if not vf.encoder_available(codec):
        pytest.skip(f"this PyAV wheel has no {codec} encoder to write the .{ext} test clip")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    made = {}
    for ext, (codec, _) in vf.FORMATS.items():
        if not vf.encoder_available(codec):
            continue
        for frames in (1, 5, 8, 9, 20, 31):
            made[ext, frames] = vf.write_clip(folder / f"c{frames}.{ext}", frames)
    return made


@pytest.fixture(scope="module")
def tiny():
    return create_tokenizer("video", **TINY)


# --- frame choice -------------------------------------------------------------------------


@pytest.mark.parametrize("ext", list(vf.FORMATS))
@pytest.mark.parametrize("frames", [1, 5, 8, 9, 20, 31])
def test_frames_are_videomae_validation_indices(clips, tiny, ext, frames):
    _need(ext)
    out = tiny.tokenize_file(clips[ext, frames])
    expected = videomae_validation_index(frames, 4, 2)
    assert read_back(out["tokens"]) == expected.tolist()
    assert out["frame_indices"].tolist() == expected.tolist()
    np.testing.assert_allclose(out["frame_times"], expected / 25.0, atol=1e-6)
    assert out["orig_size"].tolist() == [48, 64]
    assert float(out["fps"]) == 25.0
    assert float(out["duration"]) == pytest.approx(frames / 25.0, abs=1e-6)


@pytest.mark.parametrize("ext,codec", [("mov", "libx265"), ("mkv", "libvpx"),
                                       ("mp4", "mpeg4")], ids=["hevc-mov", "vp8-mkv", "mpeg4"])
def test_other_codecs_and_containers(tmp_path, tiny, ext, codec):
    if not vf.encoder_available(codec):
        pytest.skip(f"this PyAV wheel has no {codec} encoder")
    path = vf.write_clip(tmp_path / f"c.{ext}", 20, codec=codec)
    out = tiny.tokenize_file(path)
    assert read_back(out["tokens"]) == videomae_validation_index(20, 4, 2).tolist()


def test_default_geometry_is_videomae():
    tokenizer = create_tokenizer("video")
    arrays = tokenizer.sample_arrays()
    assert arrays["tokens"].shape == (1568, 1536) and arrays["tokens"].dtype == "uint8"
    positions = tokenizer.static_arrays()["positions"]
    assert positions.shape == (1568, 3) and positions[-1].tolist() == [7, 13, 13]
    assert videomae_validation_index(300, 16, 4).tolist() == \
        tokenizer.indices(300, 0).tolist()


@pytest.mark.parametrize("ext", list(vf.FORMATS))
def test_clips_are_videomae_test_views_from_one_opening(clips, ext, monkeypatch):
    _need(ext)
    tokenizer = create_tokenizer("video", **TINY, clips=3)
    path = clips[ext, 31]
    parts = tokenizer.list_parts(path)
    assert parts == ["clip=0", "clip=1", "clip=2"]
    opened = []
    original = reader.ContainerVideo.__init__

    def counting(self, *args, **kwargs):
        opened.append(args[0])
        original(self, *args, **kwargs)

    monkeypatch.setattr(reader.ContainerVideo, "__init__", counting)
    together = tokenizer.tokenize_parts(path, parts)
    assert len(opened) == 1
    for k, result in enumerate(together):
        expected = videomae_test_index(31, 4, 2, k, 3)
        assert read_back(result["tokens"]) == expected.tolist()
        alone = tokenizer.tokenize_file(path, parts[k])
        for name, value in alone.items():
            np.testing.assert_array_equal(result[name], value)
    with pytest.raises(UsageError):
        tokenizer.tokenize_parts(path, ["clip=3"])


def test_segments_take_the_middle_frame_of_each_segment(clips, tiny):
    tokenizer = create_tokenizer("video", **TINY, sampling="segments")
    out = tokenizer.tokenize_file(clips["mp4", 31])
    tick = 31 / 4
    assert read_back(out["tokens"]) == [int(tick / 2 + tick * x) for x in range(4)]


def test_fps_resamples_by_time(clips):
    # 20 frames at 25 fps resampled to 12.5 fps: a grid of 10 frames, frame i of it at 2i
    out = create_tokenizer("video", **TINY, fps=12.5).tokenize_file(clips["mp4", 20])
    expected = videomae_validation_index(10, 4, 2)
    assert out["frame_indices"].tolist() == expected.tolist()
    assert read_back(out["tokens"]) == (2 * expected).tolist()
    assert float(out["fps"]) == 12.5


@pytest.mark.parametrize("ext", ["mp4", "webm"])
def test_variable_frame_rate_picks_the_frame_nearest_each_time(tmp_path, tiny, ext):
    """Frames at uneven times: index i of the n-frame grid is time i * duration / n, and the
    frame shown nearest to it (by its timestamp) is the one chosen. n is the header's frame
    count, or (WebM has none) its duration times its frame rate."""
    _need(ext)
    gaps = [40, 40, 120, 40, 200, 40, 40, 80, 40, 40, 160, 40, 40, 40, 120, 40, 40, 40, 40]
    pts = np.concatenate([[0], np.cumsum(gaps)]).tolist()
    path = vf.write_clip(tmp_path / f"vfr.{ext}", pts_ms=pts)
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        duration = (float(stream.duration * stream.time_base) if stream.duration
                    else container.duration / 1e6)
        n = stream.frames or round(duration * float(stream.average_rate))
    assert n == (len(pts) if ext == "mp4" else 32)
    grid = videomae_validation_index(n, 4, 2)
    times = np.asarray(pts) / 1000.0
    expected = [int(np.argmin(np.abs(times - i * duration / n))) for i in grid]
    out = tiny.tokenize_file(path)
    assert read_back(out["tokens"]) == expected
    np.testing.assert_allclose(out["frame_times"], times[expected], atol=1e-6)
    assert expected != grid.tolist()  # the clip's times really are uneven


def test_rotation_metadata_is_applied(tmp_path, tiny):
    path = vf.write_clip(tmp_path / "turned.mp4", 6, rotation=90)
    frames, _, _ = tiny.load_clips(path, [0])
    image = np.asarray(frames[0][0].image)
    assert image.shape == (64, 48, 3)  # displayed portrait
    # the coded top-left block, turned a quarter counter-clockwise, sits bottom-left
    assert image[58, 4].min() > 230 and image[4, 4].max() < 200
    assert tiny.tokenize_file(path)["orig_size"].tolist() == [64, 48]


def test_gif_and_odd_pixel_formats(tmp_path, tiny):
    import av

    if "gif" not in av.codecs_available:
        pytest.skip("no gif encoder in this PyAV wheel")
    path = str(tmp_path / "a.gif")
    with av.open(path, "w") as container:
        stream = container.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb8"
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 255 if i % 2 else 0, np.uint8),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tiny.tokenize_file(path)
    expected = videomae_validation_index(12, 4, 2)
    assert out["frame_indices"].tolist() == expected.tolist()
    frames = vf.tokens_to_frames(out["tokens"], 4, 32)
    assert [int(f.mean() > 128) for f in frames] == [int(i % 2) for i in expected]
    # gray and 10-bit H.264 streams convert to RGB
    for pix_fmt, codec in (("gray", "libx264"), ("yuv420p10le", "libx264")):
        gray = str(tmp_path / f"{pix_fmt}.mkv")
        with av.open(gray, "w") as container:
            stream = container.add_stream(codec, rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
            for i in range(6):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 100, np.uint8), "rgb24")
                for packet in stream.encode(frame.reformat(format=pix_fmt)):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        pixels = vf.tokens_to_frames(tiny.tokenize_file(gray)["tokens"], 4, 32)
        assert abs(float(pixels.mean()) - 100) < 4, pix_fmt


# --- decoding only what is needed -------------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """12 s at 25 fps with a keyframe every 10 frames and B-frames."""
    return vf.write_clip(tmp_path_factory.mktemp("long") / "long.mp4", 300, gop=10,
                         preset="veryfast")


def _spy_frames(monkeypatch):
    decoded, seeks = [], []
    original = reader.ContainerVideo._frames

    def spying(self, seek_to, *args):
        seeks.append(seek_to)
        for item in original(self, seek_to, *args):
            decoded.append(item[0])
            yield item

    monkeypatch.setattr(reader.ContainerVideo, "_frames", spying)
    return decoded, seeks


@pytest.mark.parametrize("options", [{"sampling": "segments"}, {}, {"clips": 3}],
                         ids=["segments", "centred-window", "three-views"])
def test_seeking_decodes_few_frames_and_equals_decoding_all(long_clip, monkeypatch, options):
    tokenizer = create_tokenizer("video", **TINY, **options)
    parts = tokenizer.list_parts(long_clip) or [None]
    decoded, seeks = _spy_frames(monkeypatch)
    results = tokenizer.tokenize_parts(long_clip, parts)
    for part, result in zip(parts, results):
        k = tokenizer.clip_index(part)
        expected = tokenizer.indices(300, k)
        assert read_back(result["tokens"]) == expected.tolist()
    assert len(decoded) < 300 * 0.6, len(decoded)
    if options.get("sampling") == "segments":  # 3 s between frames: each one is sought
        assert len([s for s in seeks if s is not None]) >= 3
        # from the start to the first time (1.5 s), then at most a group of 10 per time
        assert len(decoded) <= 38 + 3 * 11


def test_skipping_unneeded_b_frames_changes_nothing(long_clip, monkeypatch):
    """Frames no sampled time can pick are dropped by the decoder when nothing refers to
    them; the tokens equal decoding every frame in the window."""
    tokenizer = create_tokenizer("video", **{**TINY, "rate": 5})
    decoded, _ = _spy_frames(monkeypatch)
    skipped = tokenizer.tokenize_file(long_clip)
    dropped = len(decoded)
    monkeypatch.setattr(reader, "_dispensable", lambda *args: False)
    decoded.clear()
    every = tokenizer.tokenize_file(long_clip)
    assert dropped < len(decoded)  # B-frames really were dropped
    for name in every:
        np.testing.assert_array_equal(skipped[name], every[name])
    assert read_back(skipped["tokens"]) == tokenizer.indices(300, 0).tolist()


def test_max_seconds_refuses_before_decoding(long_clip, monkeypatch):
    decoded, _ = _spy_frames(monkeypatch)
    with pytest.raises(SampleError) as info:
        create_tokenizer("video", **TINY, max_seconds=5).tokenize_file(long_clip)
    assert info.value.kind == "too_long" and decoded == []


def test_tubelets_equal_the_reference_of_the_decoded_frames(clips, tiny):
    from mmtok.modalities.image.tokenizer import resize

    frames, _, _ = tiny.load_clips(clips["avi", 20], [0])
    stack = np.stack([resize(f.image, tiny.image_config) for f in frames[0]])
    reference = tubelets_reference(np.ascontiguousarray(stack.transpose(3, 0, 1, 2))[None],
                                   (2, 16, 16))[0]
    np.testing.assert_array_equal(tiny.tokenize_file(clips["avi", 20])["tokens"], reference)


# --- frame folders ------------------------------------------------------------------------------


def test_frame_folders_through_a_manifest(tmp_path, cli):
    from PIL import Image

    for name, count in (("a", 20), ("b", 5)):
        folder = tmp_path / "frames" / name
        folder.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(vf.frame_pixels(i)).save(folder / f"img_{i:05d}.png")
    (tmp_path / "list.csv").write_text("path,label\nframes/a,0\nframes/b,1\n")
    result = cli("tokenize", "--manifest", tmp_path / "list.csv", "-o", tmp_path / "t.zarr",
                 "--modality", "video", *sum((["--set", f"{k}={v}"] for k, v in TINY.items()), []),
                 "--set", "folder_fps=10", "--no-progress")
    assert result.exit_code == 0, result.output
    import zarr

    store = zarr.open_group(str(tmp_path / "t.zarr"), mode="r")
    tokens = store["tokens"][:]
    assert read_back(tokens[0]) == videomae_validation_index(20, 4, 2).tolist()
    assert read_back(tokens[1]) == videomae_validation_index(5, 4, 2).tolist()
    np.testing.assert_allclose(store["frame_times"][1], videomae_validation_index(5, 4, 2) / 10)


# --- bad input ----------------------------------------------------------------------------------


def _truncated(tmp_path, clips):
    data = open(clips["mp4", 31], "rb").read()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


def _cut_faststart(tmp_path, clips):
    """An MP4 with its index in front ('faststart'), cut: the index lists missing frames."""
    import av

    path = str(tmp_path / "faststart.mp4")
    with av.open(path, "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(40):
            for packet in stream.encode(av.VideoFrame.from_ndarray(vf.frame_pixels(i), "rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = open(path, "rb").read()
    assert b"moov" in data[:64]  # the index really is in front
    cut = tmp_path / "cut_faststart.mp4"
    cut.write_bytes(data[: len(data) * 3 // 4])
    return cut


def _audio_only(tmp_path, clips):
    import av

    path = str(tmp_path / "sound.mkv")
    with av.open(path, "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _jpeg(tmp_path, clips):
    from PIL import Image

    path = tmp_path / "photo.mp4"
    Image.fromarray(vf.frame_pixels(3)).save(path, format="JPEG")
    return path


def _empty(tmp_path, clips):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return path


def _garbage(tmp_path, clips):
    path = tmp_path / "noise.webm"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return path


def _eight_k(tmp_path, clips):
    return vf.write_clip(tmp_path / "8k.avi", 1, width=7680, height=4320,
                         pixels=lambda i, w, h: np.zeros((h, w, 3), np.uint8))


@pytest.mark.parametrize("make,kind", [
    (_empty, "empty_file"), (_truncated, "truncated"), (_cut_faststart, "truncated"),
    (_audio_only, "no_video_stream"),
    (_jpeg, "not_a_video"), (_garbage, "decode_error"), (_eight_k, "too_large"),
], ids=["zero-bytes", "missing-moov", "cut-faststart", "audio-only", "jpeg-named-mp4", "garbage", "8k"])
def test_bad_files_are_recorded_with_a_kind(tmp_path, clips, tiny, make, kind):
    with pytest.raises(SampleError) as info:
        tiny.tokenize_file(str(make(tmp_path, clips)))
    assert info.value.kind == kind, info.value.message


def test_limits(clips, tmp_path):
    with pytest.raises(SampleError) as info:
        create_tokenizer("video", **TINY, max_pixels=1000).tokenize_file(clips["mp4", 20])
    assert info.value.kind == "too_large"
    with pytest.raises(SampleError) as info:
        create_tokenizer("video", **TINY, decode_timeout=1e-9).tokenize_file(clips["mp4", 20])
    assert info.value.kind == "timeout"


def test_one_frame_videos_repeat_their_frame(clips, tiny):
    out = tiny.tokenize_file(clips["mp4", 1])
    assert read_back(out["tokens"]) == [0, 0, 0, 0]


def test_corrupt_packets_mid_stream_keep_decodable_frames_or_record_an_error(tmp_path, tiny):
    path = vf.write_clip(tmp_path / "bad.avi", 31)
    data = bytearray(open(path, "rb").read())
    rng = np.random.default_rng(1)
    middle = slice(len(data) // 3, 2 * len(data) // 3)
    data[middle] = rng.integers(0, 256, middle.stop - middle.start, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    try:
        out = tiny.tokenize_file(str(damaged))
    except SampleError as exc:
        assert exc.kind in ("corrupt_stream", "decode_error"), exc.kind
    else:
        assert out["tokens"].shape == (8, 1536)


def test_bad_options_are_usage_errors():
    for options in ({"num_frames": 5}, {"sampling": "random"}, {"clips": 0}, {"fps": -1},
                    {"size": 30}, {"interpolation": "cubic"}):
        with pytest.raises(UsageError):
            create_tokenizer("video", **options)


# --- projector --------------------------------------------------------------------------------


def test_a_repeated_image_projects_to_the_images_patch_embedding():
    import torch

    from mmtok.embedding.encoders import load_encoder
    from mmtok.embedding.projectors import build_projector
    from mmtok.kernels.patchify import patchify
    from mmtok.kernels.tubelets import tubelets
    from mmtok.modalities import make_config
    from mmtok.modalities.base import config_to_dict

    encoder = load_encoder("vit_tiny_patch16_224", seed=0, model_kwargs={"depth": 1})
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 224, 224), dtype=np.uint8)
    video_config = config_to_dict(make_config("video", num_frames=4))
    video_tok = create_tokenizer("video", num_frames=4)
    video, _ = build_projector("video", video_config, encoder, seed=0,
                               statics=video_tok.static_arrays())
    image_config = config_to_dict(make_config("image"))
    picture, _ = build_projector("image", image_config, encoder, seed=0)
    clip = np.repeat(image[:, None], 4, axis=1)[None]  # (1, 3, 4, 224, 224)
    with torch.no_grad():
        v = video({"tokens": torch.from_numpy(tubelets(clip))}).x
        i = picture({"tokens": torch.from_numpy(patchify(image[None], 16))}).x
    assert v.shape == (1, 1 + 2 * 196, 192)
    torch.testing.assert_close(v[:, 0], i[:, 0], rtol=0, atol=0)
    for t in range(2):
        torch.testing.assert_close(v[:, 1 + 196 * t: 1 + 196 * (t + 1)], i[:, 1:],
                                   rtol=1e-5, atol=1e-5)
    # and a moving video does not: the temporal kernel sees both frames
    clip[0, :, 1] = 255 - clip[0, :, 1]
    with torch.no_grad():
        moved = video({"tokens": torch.from_numpy(tubelets(clip))}).x
    assert not torch.allclose(moved[:, 1:197], i[:, 1:], atol=1e-3)


# --- end to end ---------------------------------------------------------------------------------


def _motion(index, width, height, direction):
    pixels = np.full((height, width, 3), 40, np.uint8)
    x = 4 + 3 * index if direction > 0 else width - 20 - 3 * index
    pixels[16:32, x:x + 16] = 230
    return pixels


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    for split, count in (("train", 12), ("test", 6)):
        for label, direction in (("left", -1), ("right", 1)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for k in range(count):
                start = k % 4
                vf.write_clip(folder / f"{k}.avi", 12, pixels=lambda i, w, h, d=direction, s=start:
                              _motion(i + s, w, h, d))
    return root


def test_tokenize_tune_embed_beats_chance_on_motion_direction(motion, tmp_path, cli):
    encoder = "metatransformer:depth=1,width=32,heads=4"
    sets = ["--set", "num_frames=4", "--set", "rate=2", "--set", "size=32"]
    for split in ("train", "test"):
        result = cli("tokenize", motion / split, "-o", tmp_path / f"{split}.zarr", "--modality",
                     "video", *sets, "--no-progress")
        assert result.exit_code == 0, result.output
    tuned = tmp_path / "tuned"
    result = cli("train-head", tmp_path / "train.zarr", "-o", tuned, "--tune", "tokenizer",
                 "--encoder", encoder, "--epochs", "10", "--batch-size", "8", "--lr", "3e-3",
                 "--test", tmp_path / "test.zarr", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["test"]["top1"] >= 0.8, run["test"]
    result = cli("embed", tmp_path / "test.zarr", "-o", tmp_path / "f.zarr", "--encoder", encoder,
                 "--projector", tuned / "projector.safetensors", "--pool", "cls+mean+max",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    predicted = cli("predict", tuned, tmp_path / "f.zarr", "--format", "jsonl")
    assert predicted.exit_code == 0, predicted.output
    rows = [json.loads(line) for line in predicted.stdout.splitlines() if line.strip()]
    assert len(rows) == 12
    accuracy = np.mean([row["label"] == row["predicted"] for row in rows])
    assert accuracy == pytest.approx(run["test"]["top1"])  # embed reproduces the tuned model


def test_clips_end_to_end_ids_name_the_views(tmp_path, clips):
    import shutil

    import zarr

    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(clips["mp4", 31], folder / "a.mp4")
    (folder / "b.mp4").write_bytes(b"not a video at all")
    summary = mmtok.tokenize(folder, tmp_path / "t.zarr", "video", clips=2, labels="none",
                             progress=False, **TINY)
    assert (summary.num_samples, summary.num_invalid) == (3, 1)
    store = zarr.open_group(str(tmp_path / "t.zarr"), mode="r")
    assert list(store["id"][:]) == ["a.mp4#clip=0", "a.mp4#clip=1", "b.mp4"]
    for k in range(2):
        assert read_back(store["tokens"][k]) == videomae_test_index(31, 4, 2, k, 2).tolist()
