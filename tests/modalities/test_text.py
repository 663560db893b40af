"""text: CLIP ids identical to open_clip's, tokenizer.json files, row sources, errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import zarr

import mmtok
from mmtok.errors import UsageError
from mmtok.modalities import create_tokenizer
from mmtok.modalities.rowfiles import row_index

CORPUS = [
    "A photo of a cat.", "", "   ", "\n\n", "Hello,   World!!  ", "it's 'S DON'T we'll",
    "HTML &amp;amp; entities &lt;b&gt; &#39;quoted&#39; &nbsp;x", "Ünïcödé ſtraße İstanbul ΣΑΣ",
    "emoji 👍🏽👨‍👩‍👧 🐱🐱 ok", "日本語のテキストです", "mojibake Ã©tÃ© â€œquoteâ€\x9d",
    "tab\tnew\nline\r\nreturn", "ctrl\x07bell\x1b[31mred\x1b[0m", "a\x0bb\x0cc\x1cd",
    "numbers 12345 3.14 ½ ²", "<start_of_text> literal <end_of_text>",
    " ".join(f"word{i}" for i in range(300)), "x" * 5000, "K Kelvin ﬁ ligature ＡＢＣ",
]


def _random_lines(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = list("abcdefghij KLMNOP,.!?'&;#0123456789\t") + ["é", "ß", "ſ", "🙂", "中", "&amp;"]
    return ["".join(rng.choice(alphabet, size=int(rng.integers(0, 80)))) for _ in range(n)]


def test_clip_ids_equal_open_clip_tokenize():
    open_clip = pytest.importorskip("open_clip")
    texts = CORPUS + _random_lines(400)
    ours = create_tokenizer("text").encode(texts)
    reference = open_clip.tokenize(texts).numpy()
    np.testing.assert_array_equal(ours["tokens"], reference)
    assert ours["tokens"].shape == (len(texts), 77)
    # open_clip's truncation keeps the end token in the last slot
    long = texts.index("x" * 5000)
    assert ours["truncated"][long] and ours["tokens"][long, -1] == 49407
    assert ours["length"][1] == 2  # an empty text: start and end only
    assert not ours["truncated"][0]


def test_the_clip_vocabulary_is_clips():
    tokenizer = create_tokenizer("text")
    assert tokenizer.vocab_size == 49408
    ids = tokenizer.encode(["a"])["tokens"][0]
    assert ids[0] == 49406 and ids[2] == 49407 and ids[3:].max() == 0


def test_a_tokenizer_json_loads_and_matches_its_own_encode(tmp_path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    hf = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    hf.normalizer = normalizers.BertNormalizer(lowercase=True)
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.train_from_iterator(_random_lines(300) + CORPUS, trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    hf.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    texts = ["hello world", "a much longer sentence " * 10, ""]
    ours = create_tokenizer("text", tokenizer=str(path), context_length=12).encode(texts)
    for row, text in zip(ours["tokens"], texts):
        expected = hf.encode(text).ids
        expected = expected[:11] + [3] if len(expected) > 12 else expected
        assert row[:len(expected)].tolist() == expected
        assert not row[len(expected):].any()
    assert ours["truncated"].tolist() == [False, True, False]
    config = create_tokenizer("text", tokenizer=str(path)).config
    assert len(config.tokenizer_sha256) == 64
    path.write_text(path.read_text().replace("[UNK]", "[UNKNOWN]"))
    with pytest.raises(UsageError, match="changed since"):
        create_tokenizer("text", tokenizer=str(path), tokenizer_sha256=config.tokenizer_sha256)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    with open(root / "a.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "topic"])
        writer.writerows([["first, with a comma", "b"], ["multi\nline \"quoted\"", "a"],
                          ["", "b"]])
    (root / "b.csv").write_text("text,topic\nok,a\nragged,a,extra\n\nlast,b\n")
    (root / "c.jsonl").write_text(json.dumps({"text": "json row", "topic": "c"}) + "\n"
                                  + "{not json\n" + json.dumps({"text": "x", "topic": "a"}) + "\n")
    (root / "bad.csv").write_bytes(b"text,topic\ncaf\xe9,a\nfine,b\n")
    return root


def test_rows_of_several_files_are_samples_with_label_column_classes(tables, tmp_path):
    files = [tables / n for n in ("a.csv", "b.csv", "c.jsonl", "bad.csv")]
    assert row_index(str(tables / "a.csv")).num_rows == 3  # the quoted newline is one row
    assert row_index(str(tables / "b.csv")).num_rows == 3  # the blank line is not a row
    summary = mmtok.tokenize([str(f) for f in files], tmp_path / "t.zarr", "text",
                             label_column="topic", progress=False)
    group = zarr.open_group(tmp_path / "t.zarr", mode="r")
    ids = group["id"][:].tolist()
    assert ids == ["a.csv#0", "a.csv#1", "a.csv#2", "b.csv#0", "b.csv#1", "b.csv#2",
                   "c.jsonl#0", "c.jsonl#1", "c.jsonl#2", "bad.csv#0", "bad.csv#1"]
    assert group.attrs["mmtok"]["class_names"] == ["a", "b", "c"]
    assert group["label"][:3].tolist() == [1, 0, 1]
    errors = {e["id"]: e for e in summary.errors}
    assert errors["b.csv#1"]["kind"] == "bad_row" and "line 3" in errors["b.csv#1"]["message"]
    assert errors["c.jsonl#1"]["kind"] == "bad_row" and "line 2" in errors["c.jsonl#1"]["message"]
    assert errors["bad.csv#0"]["kind"] == "encoding_error"
    assert set(errors) == {"b.csv#1", "c.jsonl#1", "bad.csv#0"}
    one = create_tokenizer("text")
    expected = one.encode(["multi\nline \"quoted\""])["tokens"][0]
    np.testing.assert_array_equal(group["tokens"][1], expected)
    assert group["length"][2] == 2  # an empty cell is a valid empty text
    latin = mmtok.tokenize(str(tables / "bad.csv"), tmp_path / "l.zarr", "text",
                           encoding="latin-1", progress=False)
    assert latin.num_invalid == 0


def test_usage_errors_name_the_columns_that_exist(tables, tmp_path, cli):
    result = cli("tokenize", tables / "a.csv", "-o", tmp_path / "x.zarr", "-m", "text",
                 "--set", "text_column=body")
    assert result.exit_code == 2 and "text, topic" in result.stderr
    result = cli("tokenize", tables / "a.csv", "-o", tmp_path / "y.zarr", "-m", "text",
                 "--label-column", "class")
    assert result.exit_code == 2 and "no label column 'class'" in result.stderr
    (tmp_path / "header.csv").write_text("text,label\n")
    result = cli("tokenize", tmp_path / "header.csv", "-o", tmp_path / "z.zarr", "-m", "text")
    assert result.exit_code == 2 and "no data rows" in result.stderr
    assert not (tmp_path / "x.zarr").exists() and not (tmp_path / "z.zarr").exists()
