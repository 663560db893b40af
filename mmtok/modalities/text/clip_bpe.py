"""CLIP's byte-level BPE, run in Rust by Hugging Face ``tokenizers``, with open_clip's text
cleaning kept in Python exactly.

open_clip's ``SimpleTokenizer`` (a copy of OpenAI's) cleans every string with ``ftfy.fix_text``,
``html.unescape`` twice, a whitespace collapse and Python's ``str.lower``, then splits it with
one case-insensitive regex and byte-level BPE-encodes each piece with ``</w>`` marking a
word's end. Only the split and the BPE go to Rust here: ``tokenizers``' own normalizers (NFC,
its lowercase) differ from that cleaning on real lines, so the cleaning stays Python's
(:func:`clean`), with fast paths for lines that ftfy and ``html.unescape`` provably leave alone
(:func:`ftfy_leaves_alone`).

The split runs in Rust (Oniguruma) but must split exactly as open_clip's ``regex``-module
pattern with ``re.IGNORECASE``. Oniguruma's ``(?i)`` is slow (it tripled the encode time) and
its Unicode tables are older than the ``regex`` module's (thousands of recent letters and
digits differ), so :func:`split_pattern` spells the pattern out with explicit code-point
classes taken from the installed ``regex`` module itself, case variants included: the same
pieces as open_clip's on every code point, at the speed of a case-sensitive pattern.

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
import sys
import unicodedata

from ...errors import UsageError

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
START = 49406  # <start_of_text>
END = 49407  # <end_of_text>
PAD = 0
CONTEXT_LENGTH = 77
# open_clip's split (compiled there with the regex module and re.IGNORECASE); its special
# tokens' alternatives come first
SPECIALS = ("<start_of_text>", "<end_of_text>")
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
OPEN_CLIP_PATTERN = ("|".join(SPECIALS + CONTRACTIONS)
                     + r"|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+")

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
        pre_tokenizers.Split(Regex(split_pattern()), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    # open_clip's regex matches the special tokens' text as whole tokens too
    tokenizer.add_special_tokens([AddedToken("<start_of_text>", normalized=False),
                                  AddedToken("<end_of_text>", normalized=False)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<start_of_text> $A <end_of_text>",
        special_tokens=[("<start_of_text>", START), ("<end_of_text>", END)])
    tokenizer.enable_truncation(max_length=context_length)
    return tokenizer


_SURROGATES = 0xD800, 0xE000


@functools.lru_cache(maxsize=1)
def _all_code_points() -> str:
    """Every code point but the surrogates, in order."""
    low, high = _SURROGATES
    return "".join(map(chr, range(low))) + "".join(map(chr, range(high, sys.maxunicode + 1)))


@functools.lru_cache(maxsize=None)
def _class_body(pattern: str) -> str:
    """The code points ``pattern`` (one character) matches with the ``regex`` module and
    ``IGNORECASE``, as an Oniguruma class body of ``\\x{a}-\\x{b}`` runs."""
    import regex

    low, high = _SURROGATES
    runs = []
    for match in regex.finditer(f"(?:{pattern})+", _all_code_points(), regex.IGNORECASE):
        a, b = match.start(), match.end() - 1  # index -> code point: skip the surrogates
        a, b = (a if a < low else a + high - low), (b if b < low else b + high - low)
        runs += [(a, low - 1), (high, b)] if a < low <= b else [(a, b)]
    return "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}"
                   for a, b in runs)


@functools.lru_cache(maxsize=1)
def split_pattern() -> str:
    """open_clip's split as a case-sensitive Oniguruma pattern with the same matches.

    Each class (letters ``\\p{L}``, digits ``\\p{N}``, the rest but whitespace) is the set of
    code points the installed ``regex`` module matches with ``IGNORECASE`` (so U+0345, which
    folds to a Greek letter, is in none, as there), and every character of the special tokens
    and contractions becomes the class of its case variants (``'s`` also matches ``'ſ``). The
    literal special tokens are added tokens, matched before the split as open_clip's BPE cache
    returns them whole; their other case variants are one piece here, as there.
    """
    import regex

    def literal(word: str) -> str:
        return "".join(f"[{_class_body(regex.escape(ch))}]" for ch in word)

    words = "|".join(literal(w) for w in SPECIALS + CONTRACTIONS)
    letters, digits = _class_body(r"\p{L}"), _class_body(r"\p{N}")
    others = _class_body(r"[^\s\p{L}\p{N}]")
    return f"{words}|[{letters}]+|[{digits}]|[{others}]+"


# The ftfy configuration ftfy_leaves_alone was written against (ftfy 6.x's fix_text defaults);
# any other makes every line take ftfy's own path.
_FTFY_DEFAULTS = {
    "unescape_html": "auto", "remove_terminal_escapes": True, "fix_encoding": True,
    "restore_byte_a0": True, "replace_lossy_sequences": True, "decode_inconsistent_utf8": True,
    "fix_c1_controls": True, "fix_latin_ligatures": True, "fix_character_width": True,
    "uncurl_quotes": True, "fix_line_breaks": True, "fix_surrogates": True,
    "remove_control_chars": True, "normalization": "NFC", "max_decode_length": 1_000_000,
    "explain": False}


@functools.lru_cache(maxsize=1)
def _ftfy_checks():
    """(regex of the characters one of ftfy's character fixers changes, ftfy's is_bad, its
    HTML entity regex), or None where ftfy's fix_text is not the one this was written for."""
    import ftfy
    from ftfy import chardata
    from ftfy.badness import is_bad

    if ftfy.TextFixerConfig(explain=False)._asdict() != _FTFY_DEFAULTS:
        return None
    touched = set(chardata.LIGATURES) | set(chardata.WIDTH_MAP) | set(chardata.CONTROL_CHARS)
    touched |= set(range(0x80, 0xA0))  # C1 controls (fix_c1_controls), NEXT LINE
    touched |= {0x02BC, *range(0x2018, 0x2020)}  # curly quotes (uncurl_quotes)
    touched |= {0x0D, 0x2028, 0x2029, 0x1B}  # fix_line_breaks; terminal escapes
    for regex_ in (chardata.C1_CONTROL_RE, chardata.SINGLE_QUOTE_RE, chardata.DOUBLE_QUOTE_RE):
        if any(regex_.search(chr(c)) and c not in touched for c in range(0x10000)):
            return None  # ftfy's fixers changed since
    body = "".join(re.escape(chr(c)) for c in sorted(touched))
    touched_re = re.compile(f"[{body}\ud800-\udfff]")  # + surrogates (fix_surrogates)
    return touched_re, is_bad, chardata.HTML_ENTITY_RE


def ftfy_leaves_alone(text: str) -> bool:
    """True only where ``ftfy.fix_text(text) == text`` for certain, by ftfy's own logic:
    fix_text fixes each line (segment) by HTML unescaping (only entities its regex matches),
    re-decoding mojibake (only where the segment is not ASCII and ``ftfy.badness.is_bad``),
    character fixers (ligatures, widths, curly quotes, line breaks, C1 and other control
    characters, terminal escapes, surrogates: none of their characters present) and NFC
    (already normal), repeated until nothing changes."""
    checks = _ftfy_checks()
    if checks is None:
        return False
    touched_re, is_bad, entity_re = checks
    if touched_re.search(text) is not None or not unicodedata.is_normalized("NFC", text):
        return False
    if "&" in text and entity_re.search(text) is not None:
        return False
    if text.isascii():
        return True
    pos, limit = 0, _FTFY_DEFAULTS["max_decode_length"]
    while pos < len(text):  # ftfy's segments: lines, at most max_decode_length long
        stop = min(text.find("\n", pos) + 1 or len(text), pos + limit)
        segment = text[pos:stop]
        if not segment.isascii() and is_bad(segment):
            return False
        pos = stop
    return True


def clean(text: str) -> str:
    """open_clip's ``_clean_lower``: ftfy, HTML unescaped twice, whitespace collapsed,
    ``str.lower``. Lines that ftfy and ``html.unescape`` provably leave unchanged (plain
    ASCII without '&'; else :func:`ftfy_leaves_alone` and no entity ``html.unescape`` decodes)
    skip both; the result is the same string as :func:`clean_like_open_clip`'s."""
    if _NOT_PLAIN.search(text) is None or (
            ftfy_leaves_alone(text) and ("&" not in text or html.unescape(text) == text)):
        return " ".join(text.split()).lower()
    return clean_like_open_clip(text)


def clean_like_open_clip(text: str) -> str:
    """open_clip's ``_clean_lower`` itself (``whitespace_clean(basic_clean(text)).lower()``)."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip().lower()
