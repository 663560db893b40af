#!/usr/bin/env python
"""Text tokenize throughput: mmtok's CLIP BPE against open_clip.tokenize and bare tokenizers.

On the same generated lines (default 20,000: captions, a tenth with HTML entities, a tenth
accented or non-Latin, emoji, some mojibake, long lines, empty lines), one run measures:

1. ``open_clip.tokenize(lines)``: open_clip's pure-Python tokenizer (ftfy, HTML unescape,
   whitespace collapse, lower-case, regex split, BPE), the reference for the ids;
2. bare Hugging Face ``tokenizers``: ``Tokenizer.encode_batch(lines)`` of the same CLIP
   vocabulary and merges with tokenizers' own normalizers (NFC, whitespace, lowercase), the
   split without ``(?i)`` and truncation to 77, no padding, ids left in Rust (the floor:
   what a user of ``tokenizers`` pays, with none of open_clip's cleaning);
3. mmtok: ``TextTokenizer.encode(lines)``, open_clip's cleaning (fast paths for lines it
   provably leaves alone) then one batched Rust call, returning the (N, 77) int32 ``tokens``,
   ``length`` and ``truncated`` arrays; goals >= 10x open_clip and >= 0.8x the floor;
4. informational: ``mmtok.tokenize`` of the lines as one CSV file (listing, reading, store
   writing included), workers=1.

mmtok's ids are checked equal to open_clip's on every line. Every repetition starts each
contestant cold (a fresh open_clip ``SimpleTokenizer``, fresh ``tokenizers`` objects: their
BPE word caches empty, built outside the timing), as a tokenize run meets a corpus once;
times are the median of ``--reps`` interleaved repetitions. tokenizers uses its thread pool
in 2 and 3 alike.

    .venv/bin/python benchmarks/bench_tokenize_text.py            # 20,000 lines
    .venv/bin/python benchmarks/bench_tokenize_text.py --quick    # 4,000 lines
    .venv/bin/python benchmarks/bench_tokenize_text.py --json     # also write results JSON
"""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import (
    cpu_snapshot,
    describe_machine,
    foreign_cpu,
    foreign_cpu_notes,
    machine_line,
    result_row,
    result_section,
    standard_args,
    verdict,
    write_result,
    write_results_json,
)

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results" / "tokenize_text.json"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "mmtok-bench-tokenize-text"
GOAL_OPEN_CLIP = 10.0
GOAL_FLOOR = 0.8

VOCABULARY = 30000  # distinct words drawn from, Zipf-distributed
ACCENTED = ("café", "naïve", "Straße", "façade", "Ærøskøbing", "São Paulo", "İstanbul",
            "Zürich", "crème brûlée", "Ελληνικά", "русский текст", "日本語の文章", "中文标题",
            "한국어 문장", "नमस्ते", "العربية")
EXTRAS = ("&amp;", "&quot;", "&#39;", "&lt;b&gt;", "&nbsp;", "Tom & Jerry", "“quoted”",
          "it’s", "ﬁne", "🙂", "👍🏽", "🐱🐶", "½", "©", "…")
MOJIBAKE = ("Ã©tÃ©", "â€œsmartâ€\x9d", "cafÃ©")


def english_words() -> list[str]:
    """CLIP's whole-word tokens made of ASCII letters, in merge order (roughly by frequency
    in CLIP's training text): a realistic vocabulary with a realistic frequency ranking."""
    from mmtok.modalities.text import clip_bpe

    vocab, _ = clip_bpe.clip_vocabulary()
    words = sorted((i, t[:-4]) for t, i in vocab.items()
                   if t.endswith("</w>") and t[:-4].isascii() and t[:-4].isalpha() and i > 512)
    return [w for _, w in words][:VOCABULARY]


def make_lines(count: int, seed: int = 0) -> list[str]:
    """Caption-like lines of Zipf-distributed words (about one in eight joined to the next,
    as a rarer compound), with a fixed mixture of HTML, non-ASCII, long and empty ones."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array(english_words())
    weights = 1.0 / (np.arange(len(vocabulary)) + 10.0)
    weights /= weights.sum()
    lines = []
    for i in range(count):
        drawn = vocabulary[rng.choice(len(vocabulary), size=int(rng.integers(4, 18)),
                                      p=weights)].tolist()
        words = []
        for w in drawn:
            if words and rng.random() < 0.125:
                words[-1] += w
            else:
                words.append(w)
        kind = i % 20
        if kind in (1, 2):
            words.insert(int(rng.integers(len(words))), str(rng.choice(EXTRAS[:7])))
        elif kind in (3, 4):
            words.insert(int(rng.integers(len(words))), str(rng.choice(ACCENTED)))
        elif kind == 5:
            words.insert(int(rng.integers(len(words))), str(rng.choice(EXTRAS[7:])))
        elif kind == 6 and i % 40 == 6:
            words.insert(int(rng.integers(len(words))), str(rng.choice(MOJIBAKE)))
        elif kind == 7:
            words = words * 8  # longer than the context: truncated
        elif kind == 8 and i % 100 == 8:
            words = []
        line = " ".join(words)
        lines.append(line[:1].upper() + line[1:] + ("." if words else ""))
    return lines


def bare_tokenizer():
    """The floor: CLIP's vocabulary in ``tokenizers`` with its own normalizers."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    from mmtok.modalities.text import clip_bpe

    vocab, merges = clip_bpe.clip_vocabulary()
    hf = Tokenizer(models.BPE(vocab=vocab, merges=merges, end_of_word_suffix="</w>"))
    hf.normalizer = normalizers.Sequence([normalizers.NFC(),
                                          normalizers.Replace(Regex(r"\s+"), " "),
                                          normalizers.Strip(), normalizers.Lowercase()])
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"),
                             behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    hf.post_processor = processors.TemplateProcessing(
        single="<start_of_text> $A <end_of_text>",
        special_tokens=[("<start_of_text>", clip_bpe.START), ("<end_of_text>", clip_bpe.END)])
    hf.enable_truncation(max_length=clip_bpe.CONTEXT_LENGTH)
    return hf


def write_csv(lines: list[str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        writer.writerows([line] for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(__doc__, quick="4000 lines, 3 repetitions", reps=(5, 3),
                           reps_help="repetitions", workdir=DEFAULT_WORKDIR,
                           json_help=f"also write {RESULTS_JSON}")
    parser.add_sized("--lines", 20_000, 4_000, "lines")
    args = parser.parse_args(argv)
    count, reps = args.lines, args.reps

    import open_clip
    import tokenizers

    from open_clip.tokenizer import SimpleTokenizer

    import mmtok
    from mmtok.modalities import create_tokenizer
    from mmtok.modalities.text import tokenizer as text_tokenizer

    def fresh_mmtok():
        """mmtok's text tokenizer with a new tokenizers object (an empty BPE cache)."""
        text_tokenizer._encoder.cache_clear()
        tok = create_tokenizer("text")
        tok.encode(["warm"])  # builds the Rust tokenizer (the split classes are cached)
        return tok

    machine = describe_machine({"numpy": np.__version__, "tokenizers": tokenizers.__version__,
                                "open_clip": open_clip.__version__})
    lines = make_lines(count)
    ours = create_tokenizer("text")
    bare = bare_tokenizer()
    t0 = time.perf_counter()
    ours.encode(lines[:8])  # builds the tokenizer: vocabulary, split classes
    build_seconds = time.perf_counter() - t0
    bare.encode_batch(lines[:8])
    open_clip.tokenize(lines[:8])

    reference = open_clip.tokenize(lines).numpy()
    encoded = ours.encode(lines)
    same = int((encoded["tokens"] == reference).all(axis=1).sum())
    csv_path = args.workdir / f"lines-{count}.csv"
    write_csv(lines, csv_path)
    store = args.workdir / "lines.zarr"

    def run_store():
        shutil.rmtree(store, ignore_errors=True)
        summary = mmtok.tokenize(str(csv_path), store, "text", workers=1, progress=False)
        assert summary.num_valid == count, summary.line()

    print(f"{machine_line(machine)}")
    print(f"{count} lines ({sum(map(len, lines)) / count:.0f} characters on average, "
          f"{int(encoded['truncated'].sum())} truncated), median of {reps} repetitions; "
          f"mmtok's tokenizer built in {build_seconds:.2f} s (not timed below)")
    print(f"ids equal to open_clip.tokenize: {same} / {count} lines\n")
    start = cpu_snapshot()
    # contestant: a function returning (a fresh tokenizer, untimed; a timed call of it)
    fresh = {"open_clip.tokenize": lambda: (SimpleTokenizer(), lambda tok: tok(lines)),
             "bare tokenizers encode_batch": lambda: (bare_tokenizer(),
                                                      lambda tok: tok.encode_batch(lines)),
             "mmtok encode": lambda: (fresh_mmtok(), lambda tok: tok.encode(lines)),
             "mmtok tokenize (CSV -> store)": lambda: (fresh_mmtok(), lambda tok: run_store())}
    samples: dict[str, list[float]] = {k: [] for k in fresh}
    for _ in range(reps):
        for name, make in fresh.items():
            tok, call = make()
            t0 = time.perf_counter()
            call(tok)
            samples[name].append(time.perf_counter() - t0)
    times = {k: float(np.median(v)) for k, v in samples.items()}
    foreign, share = foreign_cpu(start)
    shutil.rmtree(store, ignore_errors=True)

    ours_t = times["mmtok encode"]
    vs_clip = times["open_clip.tokenize"] / ours_t
    vs_floor = times["bare tokenizers encode_batch"] / ours_t
    print("| contestant | s | lines/s | mmtok encode speed-up |")
    print("|---|---:|---:|---:|")
    for name, t in times.items():
        print(f"| {name} | {t:.3f} | {count / t:,.0f} | {t / ours_t:.2f}x |")
    print()
    print(f"- ids identical to open_clip.tokenize on all {count} lines: {verdict(same == count)}")
    print(f"- mmtok vs open_clip.tokenize: {vs_clip:.1f}x (goal >= {GOAL_OPEN_CLIP:g}x): "
          f"{verdict(vs_clip >= GOAL_OPEN_CLIP)}")
    print(f"- mmtok vs bare tokenizers: {vs_floor:.2f}x (goal >= {GOAL_FLOOR}x): "
          f"{verdict(vs_floor >= GOAL_FLOOR)}")
    notes = foreign_cpu_notes(foreign, share)
    for note in notes:
        print(f"- {note}")

    rows = [
        result_row("mmtok ids equal to open_clip.tokenize", same, "lines", peer="lines",
                   peer_value=count, ratio=round(same / count, 4), ratio_of="share of lines",
                   goal="all lines", passed=same == count),
        result_row("mmtok encode", round(count / ours_t), "lines/s", peer="open_clip.tokenize",
                   peer_value=round(count / times["open_clip.tokenize"]),
                   ratio=round(vs_clip, 2), ratio_of="mmtok speed / peer speed",
                   goal=f">= {GOAL_OPEN_CLIP:g}x", passed=vs_clip >= GOAL_OPEN_CLIP),
        result_row("mmtok encode", round(count / ours_t), "lines/s",
                   peer="bare tokenizers encode_batch (floor)",
                   peer_value=round(count / times["bare tokenizers encode_batch"]),
                   ratio=round(vs_floor, 3), ratio_of="mmtok speed / floor speed",
                   goal=f">= {GOAL_FLOOR}x floor", passed=vs_floor >= GOAL_FLOOR),
        result_row("mmtok tokenize, one CSV -> store, workers=1",
                   round(count / times["mmtok tokenize (CSV -> store)"]), "lines/s",
                   peer="open_clip.tokenize", peer_value=round(count / times["open_clip.tokenize"]),
                   ratio=round(times["open_clip.tokenize"] / times["mmtok tokenize (CSV -> store)"], 2),
                   ratio_of="mmtok speed / peer speed"),
    ]
    if args.json:
        write_results_json(RESULTS_JSON, {"machine": machine, "lines": count, "reps": reps,
                                          "same_ids": same, "seconds": times,
                                          "ratio_open_clip": vs_clip, "ratio_floor": vs_floor},
                           announce=False)
    write_result(args.result, "tokenize_text", "Text tokenize throughput against open_clip and "
                 "bare tokenizers", [result_section(f"{count} lines, median of {reps}", rows,
                                                    notes=notes)],
                 quick=args.quick, params={"lines": count, "reps": reps}, machine=machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
