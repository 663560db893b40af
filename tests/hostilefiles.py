"""Malformed, hostile and absurd input files for every modality, each with the outcome mmtok
must give it: ``None`` (tokenized) or the error kind it must be recorded with.

Every corpus has the same adversarial shapes: zero bytes, truncated, random bytes under a
valid extension, a header declaring far more data than the file holds (a decompression bomb),
NaN/inf values, odd channel counts, a non-UTF-8 name, a FIFO and a folder named like a file
(as root no file is unreadable by mode bits: a FIFO stands in for a file whose read never
ends, and a mode-000 file is added only when not running as root), a missing file, and a
symlink escaping the root.
"""

from __future__ import annotations

import io
import os
import struct
import wave
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
from imagefiles import jpeg_bytes, noise_image, png_bomb
from PIL import Image
from pointfiles import random_cloud, write_ply

Corpus = dict[str, str | None]  # file name -> expected error kind (None: tokenized)
NON_UTF8 = os.fsdecode(b"caf\xe9")  # a Latin-1 name: not valid UTF-8


def common_hazards(folder: Path, extension: str, outside: Path, good: Callable[[Path], None],
                   expect: Corpus) -> None:
    """The hazards that do not depend on the format."""
    (folder / f"empty{extension}").write_bytes(b"")
    expect[f"empty{extension}"] = "empty_file"
    (folder / f"noise{extension}").write_bytes(np.random.default_rng(1).bytes(4096))
    expect[f"noise{extension}"] = "decode_error"
    os.mkfifo(folder / f"fifo{extension}")
    expect[f"fifo{extension}"] = "unreadable"
    (folder / f"folder{extension}").mkdir()
    expect[f"folder{extension}"] = "unreadable"
    expect[f"missing{extension}"] = "not_found"
    os.symlink(folder / f"gone{extension}", folder / f"dangling{extension}")
    expect[f"dangling{extension}"] = "not_found"
    good(outside)
    os.symlink(outside, folder / f"escape{extension}")
    expect[f"escape{extension}"] = "symlink_escape"
    good(folder / f"{NON_UTF8}{extension}")
    expect[f"{NON_UTF8}{extension}"] = None
    if os.geteuid() != 0:
        good(folder / f"mode000{extension}")
        os.chmod(folder / f"mode000{extension}", 0)
        expect[f"mode000{extension}"] = "unreadable"


# --- images -------------------------------------------------------------------------------

def bmp_header_bomb(path: Path, side: int = 50_000) -> None:
    """A BMP header declaring side x side 24-bit pixels, and no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 24, 0, 0, 2835, 2835, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info)


def float_tiff(path: Path, value: float) -> None:
    pixels = np.full((20, 20), 0.5, np.float32)
    pixels[3, 4] = value
    Image.fromarray(pixels, "F").save(path)


def image_corpus(folder: Path, outside: Path) -> Corpus:
    folder.mkdir(parents=True)
    expect: Corpus = {}
    common_hazards(folder, ".png", outside, lambda p: noise_image(p, (20, 20)), expect)
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(png, "PNG")
    cases: dict[str, tuple[bytes | Callable[[Path], None], str | None]] = {
        "cut.png": (png.getvalue()[:60], "truncated"),
        "cut.jpg": (jpeg_bytes()[:300], "truncated"),
        "bomb.png": (png_bomb, "too_large"),
        "bomb.bmp": (bmp_header_bomb, "too_large"),
        "nan.tif": (lambda p: float_tiff(p, float("nan")), "nan_pixels"),
        "inf.tif": (lambda p: float_tiff(p, float("inf")), "nan_pixels"),
        "one_pixel.png": (lambda p: Image.new("L", (1, 1), 9).save(p), None),
        "sliver.png": (lambda p: Image.new("RGB", (4000, 1), (9, 9, 9)).save(p), None),
        "two_channel.png": (lambda p: Image.new("LA", (30, 30), (9, 99)).save(p), None),
        "four_channel.png": (lambda p: Image.new("RGBA", (30, 30), (1, 2, 3, 4)).save(p), None),
        "cmyk.jpg": (lambda p: Image.new("CMYK", (30, 30), (1, 2, 3, 4)).save(p), None),
        "text.gif": (b"GIF89a but then just text", "decode_error"),
    }
    write_cases(folder, cases, expect)
    return expect


def write_cases(folder: Path, cases: dict, expect: Corpus) -> None:
    for name, (content, kind) in cases.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            content(folder / name)
        expect[name] = kind


# --- point clouds ---------------------------------------------------------------------------

def npy_header_bomb(path: Path, rows: int = 2_000_000_000) -> None:
    """A .npy header declaring ``rows`` x 3 float32 points, followed by 12 bytes: a header
that lies about its data (numpy would allocate 24 GB before noticing)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f4", "fortran_order": False, "shape": (rows, 3)})
    path.write_bytes(buffer.getvalue() + b"\0" * 12)


def npz_zip_bomb(path: Path, rows: int = 40_000_000) -> None:
    """An .npz whose one member inflates to ``rows`` x 3 float32 zeros (480 MB from ~0.5 MB)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f4", "fortran_order": False, "shape": (rows, 3)})
    block = b"\0" * (1 << 24)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("points.npy", "w", force_zip64=True) as member:
            member.write(buffer.getvalue())
            left = rows * 12
            while left:
                member.write(block[:min(left, len(block))])
                left -= min(left, len(block))


def ply_header_bomb(path: Path, binary: bool) -> None:
    fmt = "binary_little_endian" if binary else "ascii"
    path.write_bytes(f"ply\nformat {fmt} 1.0\nelement vertex 400000000\nproperty float x\n"
                     "property float y\nproperty float z\nend_header\n".encode()
                     + (b"\0" * 36 if binary else b"0 0 0\n1 1 1\n"))


def pcd_header_bomb(path: Path) -> None:
    path.write_bytes(b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
                     b"WIDTH 400000000\nHEIGHT 1\nPOINTS 400000000\nDATA binary\n" + b"\0" * 36)


def stl_header_bomb(path: Path) -> None:
    path.write_bytes(b"\0" * 80 + struct.pack("<I", 200_000_000) + b"\0" * 100)


def write_pcd(path: Path, xyz: np.ndarray) -> None:
    path.write_bytes(f"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
                     f"WIDTH {len(xyz)}\nHEIGHT 1\nPOINTS {len(xyz)}\nDATA binary\n".encode()
                     + xyz.astype("<f4").tobytes())


def hdf5_bomb(path: Path) -> None:
    """ModelNet layout whose rows declare 100 M points each; nothing is stored (fill value)."""
    import h5py

    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", shape=(1, 100_000_000, 3), dtype="f4",
                              chunks=(1, 1 << 20, 3), compression="gzip")
        handle["label"] = np.zeros((1, 1), np.uint8)


def cut(make: Callable[[Path], None], keep: float) -> Callable[[Path], None]:
    """``make`` the file, then keep the first ``keep`` fraction of its bytes."""
    def write(path: Path) -> None:
        make(path)
        data = path.read_bytes()
        path.write_bytes(data[:int(len(data) * keep)])
    return write


def npy(values: np.ndarray) -> Callable[[Path], None]:
    return lambda p: np.save(p, values)


def points_corpus(folder: Path, outside: Path) -> Corpus:
    folder.mkdir(parents=True)
    expect: Corpus = {}
    cloud = random_cloud(200)
    common_hazards(folder, ".npy", outside, lambda p: np.save(p, cloud), expect)
    nan_cloud, inf_cloud = cloud.copy(), cloud.copy()
    nan_cloud[5, 1], inf_cloud[7, 2] = np.nan, np.inf
    ply = lambda p: write_ply(p, cloud, ascii=False)  # noqa: E731
    cases = {
        "noise.ply": (np.random.default_rng(2).bytes(3000), "decode_error"),
        "noise.pcd": (np.random.default_rng(3).bytes(3000), "decode_error"),
        "noise.off": (np.random.default_rng(4).bytes(3000), "decode_error"),
        "noise.xyz": (np.random.default_rng(5).bytes(3000), "decode_error"),
        # Open3D gives an empty mesh for what it cannot parse, not an error
        "noise.obj": (np.random.default_rng(11).bytes(3000), "empty_cloud"),
        "cut.pcd": (cut(lambda p: write_pcd(p, cloud), 0.5), "truncated"),
        "noise.h5": (np.random.default_rng(6).bytes(3000), "decode_error"),
        # STL has no magic number: random bytes read as a header declaring millions of
        # triangles that the file does not hold
        "noise.stl": (np.random.default_rng(7).bytes(3000), "truncated"),
        "cut.ply": (cut(ply, 0.5), "truncated"),
        "cut.npy": (cut(npy(cloud), 0.5), "truncated"),
        "cut.off": (b"OFF\n8 12 0\n0 0 0\n1 1 1\n", "truncated"),
        "nan.xyz": ("\n".join(" ".join(map(str, row)) for row in nan_cloud).encode(),
                    "nan_points"),
        "inf.npy": (npy(inf_cloud), "nan_points"),
        "two_columns.npy": (npy(cloud[:, :2]), "bad_shape"),
        "flat.npy": (npy(cloud.ravel()), "bad_shape"),
        "cube.npy": (npy(cloud.reshape(20, 10, 3)), "bad_shape"),
        "complex.npy": (npy(cloud.astype(np.complex64)), "bad_shape"),
        "strings.npy": (npy(np.array([["a", "b", "c"]] * 200)), "bad_shape"),
        "one_point.npy": (npy(cloud[:1]), "degenerate_cloud"),
        "huge_coordinates.npy": (npy(cloud * np.float32(1e37)), None),
        "nine_columns.npy": (npy(np.hstack([cloud, cloud, np.abs(cloud)])), None),
        "header_bomb.npy": (npy_header_bomb, "truncated"),
        "bomb.npz": (npz_zip_bomb, "too_large"),
        "cut.npz": (cut(lambda p: np.savez_compressed(p, points=cloud), 0.6), "decode_error"),
        "header_bomb_binary.ply": (lambda p: ply_header_bomb(p, True), "truncated"),
        "header_bomb_ascii.ply": (lambda p: ply_header_bomb(p, False), "truncated"),
        "header_bomb.pcd": (pcd_header_bomb, "truncated"),
        "header_bomb.stl": (stl_header_bomb, "truncated"),
        "bomb.h5": (hdf5_bomb, "too_large"),
    }
    write_cases(folder, cases, expect)
    expect["bomb.h5#0"] = expect.pop("bomb.h5")  # a container: one sample per row
    return expect


# --- audio ----------------------------------------------------------------------------------

def wav_bytes(samples: np.ndarray, rate: int = 16000, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def tone(seconds: float = 0.2, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)


def float_wav(value: float) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import soundfile

        samples = tone().astype(np.float32) / 32768
        samples[100] = value
        soundfile.write(path, samples, 16000, subtype="FLOAT")
    return write


def wav_with_rate(rate: int) -> bytes:
    header = bytearray(wav_bytes(tone(0.01)))
    header[24:28] = struct.pack("<I", rate)  # the format chunk's sample rate
    header[28:32] = struct.pack("<I", rate * 2)
    return bytes(header)


def wav_length_bomb() -> bytes:
    """A data chunk declaring 4 GB of samples, followed by 0.01 s of them."""
    data = bytearray(wav_bytes(tone(0.01)))
    data[40:44] = struct.pack("<I", 0xFFFFFFF0)
    return bytes(data)


def audio_corpus(folder: Path, outside: Path) -> Corpus:
    import soundfile

    folder.mkdir(parents=True)
    expect: Corpus = {}
    common_hazards(folder, ".wav", outside, lambda p: p.write_bytes(wav_bytes(tone())), expect)
    flac = io.BytesIO()
    soundfile.write(flac, tone(1.0), 16000, format="FLAC")
    cases = {
        "noise.mp3": (np.random.default_rng(8).bytes(4096), "decode_error"),
        "noise.ogg": (np.random.default_rng(9).bytes(4096), "decode_error"),
        "noise.flac": (np.random.default_rng(10).bytes(4096), "decode_error"),
        "header_cut.flac": (flac.getvalue()[:200], "decode_error"),
        # FLAC cut mid-frame: libsndfile loses sync and reports an error (a cut WAV is a
        # shorter valid clip, as tests/modalities/test_audio.py checks)
        "cut.flac": (flac.getvalue()[:len(flac.getvalue()) // 2], "decode_error"),
        "cut.wav": (wav_bytes(tone())[:2000], None),
        "header_only.wav": (wav_bytes(tone()[:0]), "empty_audio"),
        "nan.wav": (float_wav(float("nan")), "nan_audio"),
        "inf.wav": (float_wav(float("inf")), "nan_audio"),
        "one_sample.wav": (wav_bytes(tone()[:1]), None),
        "many_channels.wav": (wav_bytes(np.tile(tone(), 64), channels=64), None),
        "rate_1hz.wav": (wav_with_rate(1), None),
        # 160 samples at 2 GHz are 80 ns of sound: not one sample at 16 kHz
        "rate_absurd.wav": (wav_with_rate(2_000_000_000), "empty_audio"),
        "length_bomb.wav": (wav_length_bomb(), None),
    }
    write_cases(folder, cases, expect)
    return expect


CORPORA: dict[str, Callable[[Path, Path], Corpus]] = {
    "image": image_corpus, "points": points_corpus, "audio": audio_corpus,
}
