"""The image-family reader and tokenizer on real files of every claimed format."""

import numpy as np
import pytest
from imagefiles import BLUE, RED, gray16, jpeg_bytes, png_bomb, solid, write_format_zoo

from mmtok.errors import SampleError, UsageError
from mmtok.kernels.patchify import patchify_reference
from mmtok.modalities import create_tokenizer, make_config, modality_names


def patch_colours(tokens: np.ndarray, channels: int, patch: int) -> np.ndarray:
    """(L, channels): the mean value of each channel in each patch."""
    return tokens.reshape(len(tokens), channels, patch * patch).mean(axis=2)


def test_every_format_decodes_with_the_right_colour(tmp_path):
    expect = write_format_zoo(tmp_path)
    tokenizer = create_tokenizer("image", size=32, patch=16)
    for name, expected in expect.items():
        out = tokenizer.tokenize_file(str(tmp_path / name))
        assert out["tokens"].shape == (4, 3 * 16 * 16), name
        assert out["tokens"].dtype == np.uint8
        if expected["colour"] is not None:
            colours = patch_colours(out["tokens"], 3, 16)
            np.testing.assert_allclose(colours, np.tile(expected["colour"], (4, 1)), atol=6,
                                       err_msg=name)


def test_exif_orientation_is_applied(tmp_path):
    write_format_zoo(tmp_path)
    tokenizer = create_tokenizer("image", size=32, patch=16, resize="plain")
    out = tokenizer.tokenize_file(str(tmp_path / "exif_rot.jpg"))
    # stored 64 wide x 32 high; orientation 6 turns it to 32 wide x 64 high, red on top
    assert tuple(out["orig_size"]) == (64, 32)
    colours = patch_colours(out["tokens"], 3, 16)
    np.testing.assert_allclose(colours[:2], [RED, RED], atol=12)
    np.testing.assert_allclose(colours[2:], [BLUE, BLUE], atol=12)


def test_tokens_are_channel_row_column_patches_of_the_resized_image(tmp_path):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    from PIL import Image

    Image.fromarray(pixels).save(tmp_path / "x.png")
    # 64 -> 64 with a plain resize is the identity, so tokens must equal the reference patchify
    out = create_tokenizer("image", size=64, patch=16, resize="plain").tokenize_file(
        str(tmp_path / "x.png"))
    reference = patchify_reference(pixels[None].transpose(0, 3, 1, 2), 16)[0]
    np.testing.assert_array_equal(out["tokens"], reference)


def test_shorter_side_resize_is_a_centre_crop(tmp_path):
    from PIL import Image

    # 96 wide x 32 high: left third red, middle blue, right third red; centre crop = blue
    array = np.zeros((32, 96, 3), np.uint8)
    array[:, :32] = RED
    array[:, 32:64] = BLUE
    array[:, 64:] = RED
    Image.fromarray(array).save(tmp_path / "wide.png")
    out = create_tokenizer("image", size=32, patch=16, interpolation="nearest").tokenize_file(
        str(tmp_path / "wide.png"))
    np.testing.assert_array_equal(patch_colours(out["tokens"], 3, 16), np.tile(BLUE, (4, 1)))


@pytest.mark.parametrize("modality,dtype,value", [
    ("xray", np.uint16, 257 * 100), ("depth", np.uint16, 257 * 100), ("infrared", np.uint8, 100),
    ("image", np.uint8, 100),
])
def test_presets_keep_their_bit_depth_and_channels(tmp_path, modality, dtype, value):
    gray16(257 * 100).save(tmp_path / "g.png")
    tokenizer = create_tokenizer(modality, size=32, patch=16)
    out = tokenizer.tokenize_file(str(tmp_path / "g.png"))
    channels = make_config(modality).channels
    assert out["tokens"].dtype == dtype
    assert out["tokens"].shape == (4, channels * 256)
    assert np.all(out["tokens"] == value)


def test_eight_bit_sources_scale_up_for_sixteen_bit_presets(tmp_path):
    solid("L", (40, 40), 200).save(tmp_path / "g8.png")
    out = create_tokenizer("xray", size=32, patch=16).tokenize_file(str(tmp_path / "g8.png"))
    assert np.all(out["tokens"] == 200 * 257)


def test_presets_are_registered_with_recorded_statistics():
    assert {"image", "xray", "infrared", "depth"} <= set(modality_names())
    assert make_config("depth").interpolation == "nearest"
    assert len(make_config("image").mean) == 3 and len(make_config("xray").mean) == 1


@pytest.mark.parametrize("writer,kinds", [
    (lambda p: p.write_bytes(b""), {"empty_file"}),
    (lambda p: p.write_bytes(b"this is text, not an image"), {"decode_error"}),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)), {"decode_error"}),
    (lambda p: p.write_bytes(jpeg_bytes()[:300]), {"truncated"}),
    (lambda p: png_bomb(p), {"too_large"}),
])
def test_bad_files_raise_sample_errors_with_a_kind(tmp_path, writer, kinds):
    path = tmp_path / "bad.png"
    writer(path)
    with pytest.raises(SampleError) as info:
        create_tokenizer("image").tokenize_file(str(path))
    assert info.value.kind in kinds


def test_missing_file_and_folder_named_like_an_image(tmp_path):
    (tmp_path / "dir.png").mkdir()
    tokenizer = create_tokenizer("image")
    with pytest.raises(SampleError) as missing:
        tokenizer.tokenize_file(str(tmp_path / "nope.png"))
    with pytest.raises(SampleError) as folder:
        tokenizer.tokenize_file(str(tmp_path / "dir.png"))
    assert (missing.value.kind, folder.value.kind) == ("not_found", "unreadable")


def test_pixel_limit_is_configurable(tmp_path):
    solid("RGB", (200, 200), RED).save(tmp_path / "big.png")
    with pytest.raises(SampleError, match="max_pixels 10000"):
        create_tokenizer("image", max_pixels=10_000).tokenize_file(str(tmp_path / "big.png"))


def test_bad_configs_are_refused_with_a_reason():
    with pytest.raises(UsageError, match="multiple of patch"):
        make_config("image", size=100, patch=16)
    with pytest.raises(UsageError, match="no option"):
        make_config("image", colour="red")
    with pytest.raises(UsageError, match="unknown modality"):
        make_config("smell")


def test_jpeg_draft_decodes_big_photos_close_to_a_full_decode(tmp_path):
    from PIL import Image

    y, x = np.mgrid[0:1200, 0:1600]
    smooth = np.stack([x % 256, y % 256, (x + y) // 12 % 256], axis=-1).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "big.jpg", quality=95)
    full = create_tokenizer("image").tokenize_file(str(tmp_path / "big.jpg"))
    drafted = create_tokenizer("image", jpeg_draft=True).tokenize_file(str(tmp_path / "big.jpg"))
    assert tuple(drafted["orig_size"]) == tuple(full["orig_size"]) == (1200, 1600)
    difference = np.abs(full["tokens"].astype(int) - drafted["tokens"].astype(int))
    assert 0 < difference.mean() < 4  # different pixels, same picture
