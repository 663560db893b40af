"""CLIP's byte-level BPE, run in Rust by Hugging Face ``tokenizers``, with open_clip's text
cleaning kept in Python exactly.

open_clip's ``SimpleTokenizer`` (a copy of OpenAI's) cleans every string with ``ftfy.fix_text``,
``html.unescape`` twice, a whitespace collapse and Python's ``str.lower``, then splits it with
one regex and byte-level BPE-encodes each piece with ``</w>`` marking a word's end. Only the
split and the BPE go to Rust here: ``tokenizers``' own normalizers (NFC, its lowercase) differ
from that cleaning on real lines, so the cleaning stays Python's (:func:`clean`), with a fast
path for plain ASCII lines that ftfy and ``html.unescape`` provably leave alone.

The vocabulary and merges are open_clip's own file (``bpe_simple_vocab_16e6.txt.gz``, shipped
in the open_clip_torch wheel, MIT licence), located without importing open_clip (which
imports torch): tokenizing stays numpy-only and offline.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import os
import re

from ...errors import UsageError

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
START = 49406  # <start_of_text>
END = 49407  # <end_of_text>
PAD = 0
CONTEXT_LENGTH = 77
# open_clip's split, case-insensitive as there ('(?i)' in Oniguruma = re.IGNORECASE)
PATTERN = r"""(?i)'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""

# Lines ftfy and html.unescape leave unchanged: printable ASCII (plus tab, newline, return)
# with no '&' (an entity) — ftfy changes only non-ASCII text, control characters, terminal
# escapes and HTML entities, and the whitespace collapse handles tab/newline/return.
_NOT_PLAIN = re.compile(r"[^\t\n\r\x20-\x25\x27-\x7e]")


def vocabulary_path() -> str:
    """open_clip's bundled merges file, found without importing the package."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the CLIP tokenizer needs the open_clip_torch package, which ships "
                         "its vocabulary: pip install open_clip_torch (or pass --set "
                         "tokenizer=PATH/tokenizer.json)")
    path = os.path.join(list(spec.submodule_search_locations)[0], VOCAB_FILE)
    if not os.path.isfile(path):
        raise UsageError(f"open_clip_torch is installed but {VOCAB_FILE} is missing from "
                         f"{os.path.dirname(path)}; reinstall open_clip_torch")
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (as open_clip's)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


@functools.lru_cache(maxsize=1)
def clip_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) exactly as open_clip's SimpleTokenizer builds them."""
    with gzip.open(vocabulary_path()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges] + ["<start_of_text>", "<end_of_text>"]
    if len(vocab) != VOCAB_SIZE:
        raise UsageError(f"{vocabulary_path()} gives {len(vocab)} tokens, not CLIP's "
                         f"{VOCAB_SIZE}; reinstall open_clip_torch")
    return {token: i for i, token in enumerate(vocab)}, merges


def build_clip_tokenizer(context_length: int = CONTEXT_LENGTH):
    """A ``tokenizers.Tokenizer`` giving open_clip's ids for *cleaned* text: start token,
    BPE ids, end token, zeros; cut to ``context_length`` with the end token kept last
    (open_clip's truncation: the first ``context_length - 2`` BPE ids survive)."""
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers, processors

    vocab, merges = clip_vocabulary()
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, end_of_word_suffix="</w>",
                                     fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    # open_clip's regex matches the special tokens' text as whole tokens too
    tokenizer.add_special_tokens([AddedToken("<start_of_text>", normalized=False),
                                  AddedToken("<end_of_text>", normalized=False)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<start_of_text> $A <end_of_text>",
        special_tokens=[("<start_of_text>", START), ("<end_of_text>", END)])
    tokenizer.enable_truncation(max_length=context_length)
    tokenizer.enable_padding(length=context_length, pad_id=PAD, pad_token="!")
    return tokenizer


def clean(text: str) -> str:
    """open_clip's ``_clean_lower``: ftfy, HTML unescaped twice, whitespace collapsed,
    ``str.lower``. Plain ASCII lines skip ftfy and unescaping (they leave them unchanged)."""
    if _NOT_PLAIN.search(text) is None:
        return " ".join(text.split()).lower()
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip().lower()
