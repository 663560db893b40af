"""Tiny video clips written with PyAV for the video tests. Frame ``i`` draws its index in
its pixels: red is level ``8 * (i % 32) + 4``, green ``8 * (i // 32) + 4`` (so a test reads
back which frame it got, through any lossy codec), with a white 12x12 block in the top-left
corner of the coded picture (so it can tell a rotation)."""

from __future__ import annotations

import fractions

import numpy as np

# (extension, encoder, pixel format) of the containers the tests cover
FORMATS = {"mp4": ("libx264", "yuv420p"), "webm": ("libvpx-vp9", "yuv420p"),
           "avi": ("mjpeg", "yuvj420p")}


def level(index: int) -> int:
    return 8 * index + 4


def read_index(rgb) -> int:
    """The frame index drawn in an (R, G, ...) pixel."""
    low, high = (int(round((float(v) - 4) / 8)) for v in rgb[:2])
    return low + 32 * high


def frame_pixels(index: int, width: int = 64, height: int = 48) -> np.ndarray:
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = level(index % 32), level(index // 32), 128
    pixels[:12, :12] = 255
    return pixels


def encoder_available(codec: str) -> bool:
    import av

    return codec in av.codecs_available


def write_clip(path, frames: int = 20, fps: int = 25, ext: str | None = None, *,
               pts_ms: list[int] | None = None, rotation: int | None = None,
               gop: int | None = None, width: int = 64, height: int = 48,
               preset: str = "ultrafast", codec: str | None = None,
               pixels=frame_pixels) -> str:
    """Write ``frames`` frames (or one per ``pts_ms`` entry, at those milliseconds: a
    variable-rate clip) with the container's encoder; returns the path."""
    import av

    path = str(path)
    ext = ext or path.rsplit(".", 1)[-1]
    default_codec, pix_fmt = FORMATS.get(ext, ("libx264", "yuv420p"))
    codec = codec or default_codec
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        options = {"g": str(gop)} if gop else {}
        if codec == "libx264":
            options.update({"crf": "1", "preset": preset})  # veryfast: B-frames
        elif codec == "libx265":
            options.update({"crf": "2", "preset": "ultrafast", "x265-params": "log-level=error"})
        elif codec in ("libvpx-vp9", "libvpx"):
            options.update({"crf": "4", "b": "0", "deadline": "realtime", "cpu-used": "8"})
        stream.options = options
        if pts_ms is not None:
            stream.time_base = fractions.Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        count = len(pts_ms) if pts_ms is not None else frames
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(pixels(i, width, height), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def tokens_to_frames(tokens: np.ndarray, num_frames: int, size: int, patch: int = 16,
                     tubelet: int = 2) -> np.ndarray:
    """(L, 3*tubelet*patch*patch) tokens -> (T, size, size, 3) frames (inverse tubelets)."""
    g = size // patch
    x = tokens.reshape(num_frames // tubelet, g, g, 3, tubelet, patch, patch)
    return x.transpose(0, 4, 1, 5, 2, 6, 3).reshape(num_frames, size, size, 3)
