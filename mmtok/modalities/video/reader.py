"""Video readers: containers through PyAV (its wheels bundle FFmpeg) and frame folders.

Both expose the same two things: :class:`VideoInfo` (read from the header, nothing decoded)
and ``frames_at(times)``, the frames shown nearest to each of a sorted list of times. A
container decodes only what those times need: it seeks to the keyframe before each run of
times (a gap longer than ``SEEK_GAP_SECONDS`` starts a new run), decodes forward and stops
after the last needed frame; frames are matched by presentation timestamp, so variable
frame rates and containers that report no frame count (WebM) work. Only the chosen frames
are converted to RGB (any pixel format: 10-bit, gray, yuvj, palette) and turned upright
(the display matrix's rotation). A frame folder opens only the images it needs.
"""

from __future__ import annotations

import bisect
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from ...errors import SampleError
from ..files import check_input_file
from ..image.tokenizer import EXTENSIONS as IMAGE_EXTENSIONS
from ..image.tokenizer import open_image

SEEK_GAP_SECONDS = 2.0  # a later time this far past the last decoded frame is sought, not decoded to
# FFmpeg demuxers of still images: a ".mp4" that is really a JPEG opens as a one-frame "video"
STILL_IMAGE_FORMATS = {"image2", "image2pipe", "mjpeg", "jpeg_pipe", "png_pipe", "webp_pipe",
                       "bmp_pipe", "tiff_pipe", "gif_pipe", "j2k_pipe", "jpegls_pipe",
                       "qoi_pipe", "pgm_pipe", "ppm_pipe", "pam_pipe", "svg_pipe"}
_TRANSPOSE = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180,
              3: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class VideoInfo:
    """What the header says: the stream's frame count (or one counted from its duration and
    rate), its duration and first timestamp in seconds, and its nominal frame rate."""

    frames: int
    duration: float
    start: float
    fps: float
    width: int  # coded size; frames may be displayed rotated
    height: int


@dataclass
class Frame:
    """A chosen frame: upright RGB pixels and its presentation time in seconds."""

    image: Image.Image
    time: float


def upright(image: Image.Image, rotation: float | int | None) -> Image.Image:
    """``image`` turned by the display matrix's counter-clockwise ``rotation`` (degrees)."""
    quarter = int(round((rotation or 0) / 90.0)) % 4
    return image.transpose(_TRANSPOSE[quarter]) if quarter else image


def nearest_choice(times: Sequence[float], frame_times: Sequence[float]) -> list[int]:
    """For each target time, the index of the frame whose time is nearest (ties: the earlier
    frame; times before the first frame take it, after the last take the last). The rule
    ``frames_at`` applies while streaming, written out plainly for tests and frame folders."""
    frame_times = np.asarray(frame_times, dtype=np.float64)
    chosen = []
    for t in times:
        after = int(np.searchsorted(frame_times, t, side="left"))  # first frame >= t
        if after == 0:
            chosen.append(0)
        elif after == len(frame_times):
            chosen.append(len(frame_times) - 1)
        else:
            before = after - 1
            closer_after = frame_times[after] - t < t - frame_times[before]
            chosen.append(after if closer_after else before)
    return chosen


def _dispensable(when: float, known: Sequence[float], targets: Sequence[float]) -> bool:
    """Whether a frame at ``when`` cannot be the nearest to any of ``targets``: for each, one
    of the ``known`` (sorted) frame times is nearer (or as near and earlier, the tie rule).
    The nearest known time is never itself a skipped frame's (it was skipped for a nearer
    one, still known), so the frame ``frames_at`` would choose is always decoded."""
    if not known or not targets:
        return False
    for t in targets:
        i = bisect.bisect_left(known, t)
        gap = abs(when - t)
        for q in known[max(0, i - 1):i + 1]:
            d = abs(q - t)
            if d < gap or (d == gap and q < when):
                break
        else:
            return False
    return True


class ContainerVideo:
    """One opened container (MP4/MOV, WebM/MKV, AVI, GIF, ...) and its first video stream."""

    def __init__(self, path: str, max_pixels: int, max_seconds: float) -> None:
        import av

        self._av = av
        self.max_pixels, self.max_seconds = max_pixels, max_seconds
        self.size = check_input_file(path)
        with open(path, "rb") as handle:
            head = handle.read(16)
        try:
            self.container = av.open(path, metadata_errors="ignore")
        except av.FFmpegError as exc:
            if head[4:8] == b"ftyp":
                raise SampleError("truncated", "an MP4/MOV file whose index (the 'moov' atom) is "
                                  "missing: the file was cut short while being written or "
                                  "copied; re-download or re-encode it") from None
            raise SampleError("decode_error", f"not a video FFmpeg can open ({exc}); check the "
                              "file is a video and not truncated") from None
        try:
            self._check()
        except BaseException:
            self.container.close()
            raise

    def _check(self) -> None:
        av, container = self._av, self.container
        if container.format.name in STILL_IMAGE_FORMATS:
            raise SampleError("not_a_video", f"the file is a still image (FFmpeg reads it as "
                              f"{container.format.name!r}), not a video; tokenize it with the "
                              "image modality")
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise SampleError("no_video_stream", f"the file has no video stream (streams: "
                              f"{', '.join(kinds)})")
        stream = self.stream = container.streams.video[0]
        context = stream.codec_context
        width, height = int(context.width or 0), int(context.height or 0)
        if width * height > self.max_pixels:
            raise SampleError("too_large", f"{width}x{height} = {width * height} pixels per "
                              f"frame exceeds max_pixels {self.max_pixels}; raise it with "
                              "--set max_pixels=...")
        entries = stream.index_entries  # the container's own index (MP4/MOV, AVI, MKV cues)
        if len(entries):
            last = entries[len(entries) - 1]
            if last.pos >= 0 and last.pos + last.size > self.size:
                raise SampleError("truncated", f"the file ends at byte {self.size} but its index "
                                  f"lists frame data up to byte {last.pos + last.size}: it was "
                                  "cut short; re-download or re-encode it")
        base = stream.time_base
        start = float(stream.start_time * base) if stream.start_time is not None else 0.0
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if stream.duration:
            duration = float(stream.duration * base)
        elif container.duration:
            duration = container.duration / av.time_base - max(
                0.0, start - (container.start_time or 0) / av.time_base)
        else:
            duration = 0.0
        frames = int(stream.frames or 0)
        if frames <= 0 and duration > 0 and fps > 0:
            frames = max(1, int(round(duration * fps)))
        if frames <= 0 or duration <= 0:
            frames, duration, start = self._count_packets()
            fps = frames / duration if duration > 0 else 0.0
        if fps <= 0:
            fps = frames / duration
        if duration > self.max_seconds:
            raise SampleError("too_long", f"{duration:.1f} s exceeds max_seconds "
                              f"{self.max_seconds:g}; raise it with --set max_seconds=...")
        self.info = VideoInfo(frames, duration, start, fps, width, height)

    def _count_packets(self) -> tuple[int, float, float]:
        """Frame count, duration and start from the packets' timestamps (demuxed, never
        decoded): for streams whose header gives neither."""
        pts = []
        last_duration = 0
        try:
            for packet in self.container.demux(self.stream):
                if packet.pts is not None:
                    pts.append(packet.pts)
                    last_duration = packet.duration or last_duration
        except self._av.FFmpegError:
            pass
        if not pts:
            raise SampleError("decode_error", "the video stream holds no timestamped frames")
        base = self.stream.time_base
        first, last = min(pts), max(pts)
        duration = float((last - first + (last_duration or 1)) * base)
        self.container.seek(0)
        return len(pts), duration, float(first * base)

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "ContainerVideo":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- decoding ---------------------------------------------------------------------

    def _frames(self, seek_to: float | None, deadline: float, errors: list[str],
                pending: Callable[[], Sequence[float]] | None = None):
        """Decoded frames from the keyframe at or before ``seek_to`` (None: from here on),
        as (time, frame); packets that fail to decode are skipped and counted in ``errors``.

        With ``pending`` (the times still to be served), a packet whose frame cannot be the
        nearest to any of them (an already demuxed packet is nearer to each) is decoded with
        ``skip_frame=NONREF``: the decoder drops it if no other frame refers to it (H.264 and
        HEVC B-frames), and decodes it as usual otherwise, so the result is the same.
        """
        av, stream = self._av, self.stream
        if seek_to is not None:
            offset = int(math.floor(seek_to / stream.time_base))
            self.container.seek(offset, backward=True, any_frame=False, stream=stream)
        context = stream.codec_context
        context.skip_frame, skipping = "DEFAULT", False
        known: list[float] = []  # times of the packets demuxed since the seek, sorted
        estimate = None
        packets = self.container.demux(stream)
        while True:
            if time.monotonic() > deadline:
                raise SampleError("timeout", "decoding took longer than decode_timeout; the "
                                  "file may be damaged (raise it with --set decode_timeout=...)",
                                  stage="decode")
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as exc:  # a damaged container past this point
                errors.append(f"demux: {exc}")
                return
            skip = False
            if pending is not None and packet.pts is not None:
                when = float(packet.pts * stream.time_base)
                skip = _dispensable(when, known, pending())
                bisect.insort(known, when)
            if skip != skipping:
                context.skip_frame = "NONREF" if skip else "DEFAULT"
                skipping = skip
            try:
                decoded = packet.decode()
            except av.FFmpegError as exc:
                errors.append(f"decode: {exc}")
                continue
            for frame in decoded:
                if frame.pts is not None:
                    when = float(frame.pts * frame.time_base)
                elif estimate is not None:
                    when = estimate + 1.0 / self.info.fps
                else:
                    continue  # no timestamp and nothing to count from
                estimate = when
                yield when, frame

    def frames_at(self, times: Sequence[float], timeout: float) -> tuple[list[Frame], list[str]]:
        """The frames shown nearest to each of the sorted ``times`` (see :func:`nearest_choice`)
        and the decode errors met on the way (skipped packets)."""
        deadline = time.monotonic() + timeout
        errors: list[str] = []
        chosen: list[Any] = [None] * len(times)
        j, prev = 0, None  # next target; last decoded frame before it
        seek_to = None if times[0] - self.info.start <= SEEK_GAP_SECONDS else times[0]
        at_start = seek_to is None  # this pass began at the stream's first frame
        may_seek = True  # False once a seek proved unreliable: decode straight through
        while j < len(times):
            restart = None
            frames = self._frames(seek_to, deadline, errors, lambda: times[j:])
            for when, frame in frames:
                if prev is None and when > times[j] and not at_start:
                    restart = "start"  # the seek landed past the target: decode from the start
                    break
                while j < len(times) and when >= times[j]:
                    if prev is None or when - times[j] < times[j] - prev[0]:
                        chosen[j] = (when, frame)
                    else:
                        chosen[j] = prev
                    j += 1
                if j == len(times):
                    break
                prev = (when, frame)
                if may_seek and times[j] - when > SEEK_GAP_SECONDS:
                    restart = "seek"
                    break
            frames.close()
            if j == len(times):
                break
            if restart is None:  # the stream ended: the remaining times take its last frame
                if prev is None:
                    raise SampleError("decode_error", "no frame of the video stream could be "
                                      "decoded" + (f" ({errors[0]})" if errors else ""),
                                      stage="decode")
                chosen[j:] = [prev] * (len(times) - j)
                break
            if restart == "start":
                seek_to, at_start, may_seek, prev = self.info.start, True, False, None
            else:
                seek_to, at_start, prev = times[j], False, None
        out, converted = [], {}
        for when, frame in chosen:
            key = id(frame)
            if key not in converted:
                if frame.width * frame.height > self.max_pixels:  # a header that said less
                    raise SampleError("too_large", f"{frame.width}x{frame.height} frames exceed "
                                      f"max_pixels {self.max_pixels}; raise it with --set "
                                      "max_pixels=...", stage="decode")
                image = frame.to_image()
                if image.mode != "RGB":
                    image = image.convert("RGB")
                converted[key] = Frame(upright(image, getattr(frame, "rotation", 0)), when)
            out.append(converted[key])
        return out, errors


class FolderVideo:
    """A folder of images, one per frame in name order, at ``fps`` frames per second."""

    def __init__(self, path: str, max_pixels: int, max_seconds: float, fps: float) -> None:
        try:
            names = sorted(n for n in os.listdir(path)
                           if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("."))
        except OSError as exc:
            raise SampleError("unreadable", f"cannot list the frame folder: {exc.strerror}") from None
        if not names:
            raise SampleError("empty_file", f"the frame folder holds no images "
                              f"({', '.join(IMAGE_EXTENSIONS)})")
        self.paths = [os.path.join(path, n) for n in names]
        self.max_pixels = max_pixels
        duration = len(names) / fps
        if duration > max_seconds:
            raise SampleError("too_long", f"{len(names)} frames at {fps:g} fps = {duration:.1f} s "
                              f"exceeds max_seconds {max_seconds:g}")
        self.info = VideoInfo(len(names), duration, 0.0, fps, 0, 0)

    def close(self) -> None:
        pass

    def __enter__(self) -> "FolderVideo":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def frames_at(self, times: Sequence[float], timeout: float) -> tuple[list[Frame], list[str]]:
        deadline = time.monotonic() + timeout
        frame_times = np.arange(len(self.paths)) / self.info.fps
        loaded: dict[int, Frame] = {}
        out = []
        for index in nearest_choice(times, frame_times):
            if time.monotonic() > deadline:
                raise SampleError("timeout", "reading the frame folder took longer than "
                                  "decode_timeout", stage="decode")
            if index not in loaded:
                image, _ = open_image(self.paths[index], self.max_pixels)
                loaded[index] = Frame(image if image.mode == "RGB" else image.convert("RGB"),
                                      float(frame_times[index]))
            out.append(loaded[index])
        return out, []


def open_video(path: str, max_pixels: int, max_seconds: float, folder_fps: float):
    """A :class:`ContainerVideo`, or a :class:`FolderVideo` when ``path`` is a folder."""
    if os.path.isdir(path):
        return FolderVideo(path, max_pixels, max_seconds, folder_fps)
    return ContainerVideo(path, max_pixels, max_seconds)
