"""The ``text`` modality: subword ids of one text per sample.

Sources: ``.txt`` files (one sample each; class = first sub-folder, scikit-learn's
``load_files`` layout) and the rows of ``.csv``/``.tsv``/``.jsonl``/``.parquet`` files (the
``text_column``; ids ``FILE#ROW``). The default tokenizer is CLIP's byte-level BPE with
open_clip's cleaning and truncation (:mod:`.clip_bpe`, ids identical to
``open_clip.tokenize``); ``tokenizer=PATH/tokenizer.json`` loads any local Hugging Face
tokenizer with its own special tokens. Each shard's run of rows is encoded in one batched
Rust call.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...errors import SampleError, UsageError
from ...sources import part_numbers
from ...store.layout import ArraySpec
from .. import rowfiles
from ..base import PartsBatch, Tokenizer
from ..files import check_input_file
from . import clip_bpe

TEXT_EXTENSIONS = (".txt",)
EXTENSIONS = TEXT_EXTENSIONS + rowfiles.ROW_EXTENSIONS
CLIP = "clip"
# bytes per character at most (UTF-8): a file or row over 4 * max_chars bytes is refused
# before it is read
MAX_BYTES_PER_CHAR = 4


@dataclass(frozen=True)
class TextConfig:
    modality: str = "text"
    tokenizer: str = CLIP  # "clip" or PATH/tokenizer.json (a Hugging Face tokenizer file)
    tokenizer_sha256: str = ""  # of that file; recorded, and checked when reused
    context_length: int = clip_bpe.CONTEXT_LENGTH
    text_column: str = "text"  # the column holding the text in CSV/TSV/JSONL/Parquet rows
    encoding: str = "utf-8"
    max_chars: int = 1_000_000  # longer texts are too_large

    def __post_init__(self) -> None:
        problems = []
        if self.context_length < 3:
            problems.append(f"context_length must be at least 3, not {self.context_length}")
        if self.max_chars < 1:
            problems.append("max_chars must be at least 1")
        try:
            "".encode(self.encoding)
        except LookupError:
            problems.append(f"unknown encoding {self.encoding!r}")
        if not self.text_column:
            problems.append("text_column must name a column")
        if problems:
            raise UsageError("; ".join(problems))
        if self.tokenizer != CLIP:
            path = os.path.abspath(self.tokenizer)
            if not os.path.isfile(path):
                raise UsageError(f"tokenizer={self.tokenizer}: no such file; give 'clip' or "
                                 "a Hugging Face tokenizer.json")
            digest = _sha256(path)
            if self.tokenizer_sha256 and self.tokenizer_sha256 != digest:
                raise UsageError(f"tokenizer file {path} changed since the store was made "
                                 f"(sha256 {digest[:12]}, recorded {self.tokenizer_sha256[:12]});"
                                 " restore it, or tokenize anew without --config-from")
            object.__setattr__(self, "tokenizer", path)
            object.__setattr__(self, "tokenizer_sha256", digest)
        elif self.tokenizer_sha256:
            raise UsageError("tokenizer_sha256 applies to a tokenizer file, not to 'clip'")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def _encoder(tokenizer: str, context_length: int):
    """(tokenizers.Tokenizer, clean function or None, vocabulary size, pad id), built once per
    process. The tokenizer truncates but does not pad: :meth:`TextTokenizer.encode` pads in
    numpy (a padded Encoding's 77 ids as a Python list cost more than the BPE)."""
    if tokenizer == CLIP:
        return (clip_bpe.build_clip_tokenizer(context_length), clip_bpe.clean,
                clip_bpe.VOCAB_SIZE, clip_bpe.PAD)
    from tokenizers import Tokenizer as HFTokenizer

    try:
        hf = HFTokenizer.from_file(tokenizer)
    except Exception as exc:  # tokenizers raises a bare Exception for a bad file
        raise UsageError(f"tokenizer={tokenizer}: not a Hugging Face tokenizer file ({exc})") \
            from None
    padding = hf.padding or {}
    hf.enable_truncation(max_length=context_length)
    hf.no_padding()
    return hf, None, hf.get_vocab_size(with_added_tokens=True), int(padding.get("pad_id", 0))


class TextTokenizer(Tokenizer):
    extensions = EXTENSIONS
    list_parts_label_column = True

    def __init__(self, config: TextConfig) -> None:
        self.config = config

    def sample_arrays(self) -> dict[str, ArraySpec]:
        return {"tokens": ArraySpec((self.config.context_length,), "int32"),
                "length": ArraySpec((), "int32"),
                "truncated": ArraySpec((), "bool")}

    def static_arrays(self) -> dict[str, np.ndarray]:
        return {"vocab_size": np.array([self.vocab_size], np.int64)}

    @property
    def vocab_size(self) -> int:
        return _encoder(self.config.tokenizer, self.config.context_length)[2]

    def tally(self, arrays, valid):
        return {"truncated": int(np.count_nonzero(arrays["truncated"] & valid))}

    # --- listing ------------------------------------------------------------------------
    def list_parts(self, path: str, label_column: str | None = None):  # type: ignore[override]
        if not rowfiles.is_row_file(path):
            return None
        rowfiles.require_rows(path)
        rowfiles.require_column(path, self.config.text_column, "text",
                                "--set text_column=NAME")
        return rowfiles.list_row_parts(path, label_column)

    # --- tokenizing ---------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Token arrays for a batch of strings, in one Rust call."""
        hf, clean, _, pad = _encoder(self.config.tokenizer, self.config.context_length)
        texts = list(map(clean, texts)) if clean is not None else list(texts)
        encodings = hf.encode_batch_fast(texts) if hasattr(hf, "encode_batch_fast") \
            else hf.encode_batch(texts)
        ids = [e.ids for e in encodings]
        n = len(ids)
        length = np.fromiter(map(len, ids), np.int32, n)
        tokens = np.full((n, self.config.context_length), pad, np.int32)
        tokens[np.arange(self.config.context_length) < length[:, None]] = np.fromiter(
            itertools.chain.from_iterable(ids), np.int32, int(length.sum()))
        truncated = np.fromiter((len(e.overflowing) > 0 for e in encodings), bool, n)
        return {"tokens": tokens, "length": length, "truncated": truncated}

    def tokenize_parts(self, path, parts):
        if parts == [None] or not rowfiles.is_row_file(path):
            return self._whole_files(path, len(parts))
        rows = part_numbers(parts)
        texts: list[str | None] = [None] * len(rows)
        failed: dict[int, SampleError] = {}
        # one read per run of consecutive rows (a shard's rows of one file are one run)
        for first, last in _runs(rows):
            block = rowfiles.read_rows(
                path, first, last, [self.config.text_column],
                types={self.config.text_column: _binary()}, null_strings=False,
                max_row_bytes=MAX_BYTES_PER_CHAR * self.config.max_chars,
                encoding=self.config.encoding)
            where = {int(r) + first: i for i, r in enumerate(block.rows)}
            values = block.table.column(self.config.text_column).to_pylist()
            for slot, row in enumerate(rows.tolist()):
                if not first <= row < last:
                    continue
                if row - first in block.errors:
                    failed[slot] = block.errors[row - first]
                    continue
                raw = values[where[row]]
                try:
                    # rowfiles hands over UTF-8 (another encoding is converted as it reads)
                    texts[slot] = self._decode(b"" if raw is None else raw, f"row {row}",
                                               "utf-8")
                except SampleError as exc:
                    failed[slot] = exc
        good = [i for i in range(len(rows)) if i not in failed]
        encoded = self.encode([texts[i] for i in good]) if good else self.encode([])
        arrays = {}  # every part's row; a failed part's row stays zero (work_shard's too)
        for name, values in encoded.items():
            arrays[name] = np.zeros((len(rows), *values.shape[1:]), values.dtype)
            arrays[name][good] = values
        return PartsBatch(arrays, failed, len(rows))

    def _whole_files(self, path: str, count: int):
        try:
            text = self._read_text_file(path)
        except SampleError as exc:
            return [exc] * count
        encoded = self.encode([text])
        return [{name: values[0] for name, values in encoded.items()}] * count

    def _read_text_file(self, path: str) -> str:
        # a zero-byte file is empty_file, as in every modality (usually a failed write); an
        # empty text (a file of whitespace, an empty cell) is valid: start and end only
        size = check_input_file(path)
        limit = MAX_BYTES_PER_CHAR * self.config.max_chars
        if size > limit:
            raise SampleError("too_large", f"the file is {size} bytes, more than the limit "
                              f"({limit} = 4 x max_chars {self.config.max_chars}); raise "
                              "max_chars with --set max_chars=N")
        with open(path, "rb") as handle:
            return self._decode(handle.read(), "the file", self.config.encoding)

    def _decode(self, data: bytes | str, what: str, encoding: str) -> str:
        if isinstance(data, str):  # a Parquet string column: already text
            data = data.encode("utf-8", "surrogatepass")
        if b"\0" in data:
            raise SampleError("not_text", f"{what} holds NUL bytes: binary data, not text")
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise SampleError("encoding_error", f"{what} is not valid {self.config.encoding} "
                              f"(byte {exc.start}: {data[exc.start:exc.start + 4]!r}); pass "
                              "--set encoding=NAME (e.g. latin-1)") from None
        if len(text) > self.config.max_chars:
            raise SampleError("too_large", f"{what} has {len(text)} characters, more than "
                              f"max_chars {self.config.max_chars}")
        return text


def _binary():
    import pyarrow as pa

    return pa.binary()


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """(first, stop) of the runs of consecutive row numbers, in order."""
    if len(rows) == 0:
        return []
    cuts = np.flatnonzero(np.diff(rows) != 1) + 1
    return [(int(p[0]), int(p[-1]) + 1) for p in np.split(rows, cuts)]
