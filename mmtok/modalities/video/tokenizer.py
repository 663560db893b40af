"""The ``video`` modality's tokenizer: VideoMAE's evaluation sampling, the image family's
resize and centre crop, and 2x16x16 tubelets in the order of a Conv3d patch embedding.

Sampling works on the stream's frame grid: ``n`` frames (the header's count, or its duration
times its frame rate when the container has none, as WebM), frame ``i`` at time
``start + i * duration / n`` (with ``fps=R``: ``n = floor(duration * R)`` frames ``1/R`` apart).
Indices follow VideoMAE (v2) evaluation: ``dense`` takes a centred window of
``num_frames * rate`` frames and ``num_frames`` indices spread over it by ``np.linspace``; a
clip no longer than the window takes every ``rate``-th frame and repeats the last.
``segments`` (TSN) takes the middle frame of ``num_frames`` equal segments. ``clips=K`` takes
VideoMAE's K test-time temporal views, spread from the first frame to the last, one sample
each, with ids ``FILE#clip=k``. Each index's time picks the frame whose presentation
timestamp is nearest, so a constant-rate stream gives exactly frame ``i`` and a variable-rate
one the frame shown then. Only the frames needed are decoded (see ``reader.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...errors import SampleError, UsageError
from ...kernels.tubelets import tubelet_grid, tubelets
from ...store.layout import ArraySpec
from ..base import Tokenizer
from ..image.tokenizer import CLIP_MEAN, CLIP_STD, RESAMPLE, ImageConfig, resize
from .reader import open_video

EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRESETS = {
    "clip": {},  # the encoder's own (CLIP) statistics, as the image modality
    "videomae": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD},  # what VideoMAE's code uses
}
PART = re.compile(r"clip=(\d+)")


@dataclass(frozen=True)
class VideoConfig:
    modality: str = "video"
    preset: str = "clip"
    num_frames: int = 16
    rate: int = 4  # VideoMAE's sampling rate: a window of num_frames * rate frames
    sampling: str = "dense"  # "dense" (VideoMAE) or "segments" (TSN: one frame per segment)
    clips: int = 1  # temporal views per video, one sample each (ids FILE#clip=k)
    fps: float = 0.0  # > 0: resample the stream to this rate (by time) before sampling
    size: int = 224
    patch: int = 16
    tubelet: int = 2  # frames per tubelet
    resize: str = "shorter"  # as the image modality: shorter side + centre crop, or "plain"
    crop_pct: float = 1.0
    interpolation: str = "bilinear"  # VideoMAE resizes bilinearly
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD
    max_pixels: int = 3840 * 2160  # per frame; 4K UHD passes, 8K is refused
    max_seconds: float = 86400.0  # cost does not grow with length: windows are sought
    decode_timeout: float = 120.0  # seconds per sample
    folder_fps: float = 30.0  # frame rate of a frame folder (a manifest path that is a folder)

    def __post_init__(self) -> None:
        problems = []
        if self.num_frames < 1 or self.tubelet < 1 or self.num_frames % self.tubelet:
            problems.append(f"num_frames {self.num_frames} must be a positive multiple of "
                            f"tubelet {self.tubelet}")
        if self.rate < 1:
            problems.append(f"rate must be >= 1, not {self.rate}")
        if self.sampling not in ("dense", "segments"):
            problems.append(f"sampling must be 'dense' or 'segments', not {self.sampling!r}")
        if self.clips < 1:
            problems.append(f"clips must be >= 1, not {self.clips}")
        if self.fps < 0:
            problems.append(f"fps must be 0 (the stream's own frames) or positive, not {self.fps}")
        if self.size <= 0 or self.patch <= 0 or self.size % self.patch:
            problems.append(f"size {self.size} must be a positive multiple of patch {self.patch}")
        if self.resize not in ("shorter", "plain"):
            problems.append(f"resize must be 'shorter' or 'plain', not {self.resize!r}")
        if not 0 < self.crop_pct <= 1:
            problems.append(f"crop_pct must be in (0, 1], not {self.crop_pct}")
        if self.interpolation not in RESAMPLE:
            problems.append(f"interpolation must be one of {sorted(RESAMPLE)}")
        if len(self.mean) not in (1, 3) or len(self.std) != len(self.mean):
            problems.append("mean/std need 1 or 3 values each")
        for name in ("max_pixels", "max_seconds", "decode_timeout", "folder_fps"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive, not {getattr(self, name)}")
        if problems:
            raise UsageError("; ".join(problems))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def image_config(self) -> ImageConfig:
        """The image modality's resize settings, so frames resize exactly as images do."""
        return ImageConfig(size=self.size, patch=self.patch, resize=self.resize,
                           crop_pct=self.crop_pct, interpolation=self.interpolation)


# --------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------


def dense_indices(length: int, num_frames: int, rate: int, clips: int = 1,
                  clip: int = 0) -> np.ndarray:
    """VideoMAE (v2) evaluation indices of ``clip`` (of ``clips``) into ``length`` frames.

    One clip (validation): a clip no longer than the window (``num_frames * rate``) takes
    ``length // rate`` indices spread over it by ``np.linspace`` and repeats the last frame; a
    longer one takes ``num_frames`` indices by ``np.linspace`` over the centred window.
    Several clips (test-time views): every ``rate``-th frame (the last repeated up to
    ``num_frames``), and clip k takes ``num_frames`` consecutive ones of them starting
    ``int(k * (count - num_frames) / (clips - 1))`` in.
    """
    window = num_frames * rate
    if clips > 1:
        every = list(range(0, length, rate))
        every += [every[-1]] * (num_frames - len(every))
        step = max((len(every) - num_frames) / (clips - 1), 0.0)
        begin = int(clip * step)
        return np.asarray(every[begin:begin + num_frames], dtype=np.int64)
    if length <= window:
        index = np.linspace(0, length, num=length // rate)
        index = np.concatenate((index, np.ones(num_frames - length // rate) * length))
        return np.clip(index, 0, length - 1).astype(np.int64)
    end = (window + length) // 2
    begin = end - window
    index = np.linspace(begin, end, num=num_frames)
    return np.clip(index, begin, end - 1).astype(np.int64)


def segment_indices(length: int, num_frames: int, clips: int = 1, clip: int = 0) -> np.ndarray:
    """TSN evaluation: the middle frame of each of ``num_frames`` equal segments (with K
    clips, clip k is offset (k + 0.5) / K of a segment instead of one half)."""
    tick = length / num_frames
    offset = tick * (clip + 0.5) / clips
    index = (offset + tick * np.arange(num_frames)).astype(np.int64)
    return np.clip(index, 0, length - 1)


# --------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------


class VideoTokenizer(Tokenizer):
    extensions = EXTENSIONS

    def __init__(self, config: VideoConfig) -> None:
        self.config = config
        self.grid = config.size // config.patch
        self.image_config = config.image_config()

    def sample_arrays(self) -> dict[str, ArraySpec]:
        c = self.config
        length = (c.num_frames // c.tubelet) * self.grid * self.grid
        return {
            "tokens": ArraySpec((length, 3 * c.tubelet * c.patch * c.patch), "uint8"),
            "frame_times": ArraySpec((c.num_frames,), "float64"),
            "frame_indices": ArraySpec((c.num_frames,), "int32"),
            "orig_size": ArraySpec((2,), "int32"),
            "fps": ArraySpec((), "float32"),
            "duration": ArraySpec((), "float32"),
        }

    def static_arrays(self) -> dict[str, np.ndarray]:
        c = self.config
        return {"positions": tubelet_grid(c.num_frames, c.size, c.size,
                                          (c.tubelet, c.patch, c.patch))}

    # --- parts ----------------------------------------------------------------------------

    def list_parts(self, path: str) -> list[str] | None:  # type: ignore[override]
        """``clip=0 .. clip=K-1`` when ``clips`` > 1. Reads the header only, so a file that
        cannot be opened is recorded once, while the sample list is built."""
        if self.config.clips == 1:
            return None
        c = self.config
        with open_video(path, c.max_pixels, c.max_seconds, c.folder_fps):
            pass
        return [f"clip={k}" for k in range(c.clips)]

    def clip_index(self, part: str | None) -> int:
        if part is None:
            if self.config.clips != 1:
                raise UsageError(f"clips={self.config.clips} tokenizes parts clip=0..; "
                                 "a whole file was asked for")
            return 0
        match = PART.fullmatch(part)
        if not match or int(match.group(1)) >= self.config.clips:
            raise UsageError(f"video part {part!r} is not one of clip=0..clip="
                             f"{self.config.clips - 1}")
        return int(match.group(1))

    # --- sampling ---------------------------------------------------------------------------

    def frame_grid(self, info) -> tuple[int, float]:
        """(frame count, seconds between frames) of the grid the indices refer to."""
        if self.config.fps > 0:
            count = max(1, int(np.floor(info.duration * self.config.fps + 1e-6)))
            return count, 1.0 / self.config.fps
        return info.frames, info.duration / info.frames

    def indices(self, length: int, clip: int) -> np.ndarray:
        c = self.config
        if c.sampling == "segments":
            return segment_indices(length, c.num_frames, c.clips, clip)
        return dense_indices(length, c.num_frames, c.rate, c.clips, clip)

    # --- tokenize -----------------------------------------------------------------------------

    def tokenize_file(self, path: str, part: str | None = None) -> dict[str, np.ndarray]:
        return self.tokenize_clips(path, [self.clip_index(part)])[0]

    def tokenize_parts(self, path: str, parts: Sequence[str | None]
                       ) -> list[dict[str, np.ndarray] | SampleError]:
        """Every clip of ``path`` asked for, from one opening of the container and one
        forward pass over the times they need."""
        clips = [self.clip_index(part) for part in parts]  # bad names stop the run first
        try:
            return list(self.tokenize_clips(path, clips))
        except SampleError as exc:
            return [exc] * len(parts)

    def load_clips(self, path: str, clips: Sequence[int]):
        """(frames per clip, grid indices per clip, info): the chosen upright RGB frames."""
        c = self.config
        with open_video(path, c.max_pixels, c.max_seconds, c.folder_fps) as video:
            info = video.info
            length, step = self.frame_grid(info)
            per_clip = [self.indices(length, k) for k in clips]
            wanted = np.unique(np.concatenate(per_clip))
            times = info.start + wanted * step
            frames, errors = video.frames_at(list(times), c.decode_timeout * len(clips))
        if errors:  # damaged packets were skipped: keep the frames if they still fit the times
            off = max(abs(f.time - t) for f, t in zip(frames, times))
            if off > 2 * step:
                raise SampleError("corrupt_stream", f"{len(errors)} damaged packet(s) ("
                                  f"{errors[0]}); the nearest decodable frame is {off:.2f} s "
                                  "from a sampled time", stage="decode")
        by_index = dict(zip(wanted.tolist(), frames))
        return [[by_index[i] for i in index.tolist()] for index in per_clip], per_clip, info

    def tokenize_clips(self, path: str, clips: Sequence[int]) -> list[dict[str, np.ndarray]]:
        c = self.config
        frame_lists, per_clip, info = self.load_clips(path, clips)
        pixels_of: dict[int, np.ndarray] = {}
        results = []
        for frames, index in zip(frame_lists, per_clip):
            first = frames[0].image
            stack = np.empty((c.num_frames, c.size, c.size, 3), np.uint8)
            for t, frame in enumerate(frames):
                key = id(frame)
                if key not in pixels_of:
                    pixels_of[key] = resize(frame.image, self.image_config)
                stack[t] = pixels_of[key]
            # (T, H, W, C) -> a (1, C, T, H, W) view; the kernel reads it through its strides
            tokens = tubelets(stack[None].transpose(0, 4, 1, 2, 3),
                              (c.tubelet, c.patch, c.patch))[0]
            results.append({
                "tokens": tokens,
                "frame_times": np.array([f.time for f in frames], np.float64),
                "frame_indices": index.astype(np.int32),
                "orig_size": np.array((first.height, first.width), np.int32),
                "fps": np.float32(info.fps if c.fps <= 0 else c.fps),
                "duration": np.float32(info.duration),
            })
        return results
