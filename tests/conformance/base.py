"""The conformance suite every modality passes (in the spirit of zarr-python's StoreTests).

A modality's conformance tests are one subclass, named ``Test<Something>`` so that pytest
collects it, that supplies:

- ``modality``: the registered name;
- ``options`` (default: the registry's ``tiny_options``): tiny tokenizer options (config
  fields, as ``mmtok.tokenize(**options)`` and
  ``--set KEY=VALUE`` take them), so that every run is fast;
- ``write_sample(folder, stem, label, index)``: write one valid sample file and return its
  path. ``label`` is 0 or 1 and must change the content enough for a head to tell the two
  classes apart (the tuning test trains on them); ``index`` varies the sample and can pick
  among the modality's formats;
- ``malformed_inputs()``: ``{sample id: Malformed(write, kind, hazard)}`` (the id is the
  file name, ``NAME#ROW`` for a container's row) with at least one
  input per hazard in ``REQUIRED_HAZARDS`` (``nonfinite`` only when ``holds_floats``); the
  base adds a zero-byte file and a file of random bytes under ``extension``;
- ``extension`` (those two files'), ``noise_kind`` (the kind random bytes get);
- ``sample_ids(name)``, for formats holding several samples per file (ids ``FILE#ROW``);
- ``encoder``, ``encoder_options``: the cheapest encoder the modality's projector accepts;
- ``tunable``: whether ``train-head --tune tokenizer`` trains the projector (False: the test
  asserts the refusal instead);
- ``padding_variants``: option overrides that change only how much padding a sample gets
  (variable-length modalities); the same data tokenized with each must give equal features.

Only the public API is used (``mmtok.tokenize``/``embed``/``open_store``, the CLI), so the
suite does not depend on where a modality's code lives.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, ClassVar, NamedTuple

import numpy as np
import pytest
import zarr
from killing import (
    assert_ids_complete,
    assert_same_store,
    committed,
    file_bytes,
    mmtok_command,
    wait_for_lock,
)

import mmtok
from pyrun import subprocess_env

from .bounded import PEAK_RSS_LIMIT, outcomes, run_bounded

TINY_ENCODER = "metatransformer:depth=1,width=32,heads=2"
TINY_VIT = "vit_tiny_patch16_224"  # with encoder_options {"img_size": 32, "depth": 1}
REQUIRED_HAZARDS = ("empty", "noise", "truncated", "nonfinite", "absurd_size")
MALFORMED_TIME_LIMIT = 120  # seconds for a handful of files: anything near it is a hang
POLL_SECONDS = 0.001


class Malformed(NamedTuple):
    write: Callable[[Path], None]  # writes the file at the path it is given
    kind: str | None  # the error kind it must be recorded with (None: it must tokenize)
    hazard: str  # one of REQUIRED_HAZARDS (or anything else, for extra cases)


def tiny_cli_options(modality: str) -> list[str]:
    """The registry's tiny options for ``modality`` as ``--set`` arguments."""
    from mmtok.modalities import get_modality

    return cli_options(dict(get_modality(modality).tiny_options))


def cli_options(options: dict[str, Any]) -> list[str]:
    """``{"size": 32, "mean": (0.5, 0.5)}`` -> ``["--set", "size=32", "--set", "mean=0.5,0.5"]``."""
    args = []
    for key, value in options.items():
        text = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
        args += ["--set", f"{key}={text}"]
    return args


def store_files(store: Path) -> dict[str, bytes]:
    """Every file of a store, byte for byte, without the writer's lock."""
    return {name: data for name, data in file_bytes(store).items() if not name.endswith(".lock")}


def valid_features(store: Path) -> tuple[np.ndarray, np.ndarray]:
    group = zarr.open_group(store, mode="r")
    return group["features"][:], group["valid"][:]


def kill_near_commits(commands: list[list[str]], store: Path, rng: np.random.Generator,
                      kills: int) -> list[int]:
    """Run the ``commands`` in turn, SIGKILLing each run once it has committed ``0`` or ``1``
    (drawn) more shards, plus up to 5 ms; returns the committed shards after each kill.
    Stops early when a run finishes first. (A kill after a random delay, as
    tests/killing.py's ``kill_repeatedly`` does, mostly lands in start-up when a run is as
    small as these.)"""
    progress: list[int] = []
    for kill in range(kills):
        command = commands[kill % len(commands)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        if not wait_for_lock(process, store):
            break  # nothing left to do
        target = (progress[-1] if progress else 0) + int(rng.integers(0, 2))
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline and (
                not (store / "commits").is_dir() or committed(store) < target):
            time.sleep(POLL_SECONDS)
        time.sleep(rng.uniform(0, 0.005))
        if process.poll() is not None:
            assert process.returncode == 0, f"{command} failed before its kill"
            break
        process.kill()
        process.wait()
        progress.append(committed(store) if (store / "commits").is_dir() else 0)
    return progress


class TokenizerConformance:
    modality: ClassVar[str]
    options: ClassVar[dict[str, Any]]  # default: the registry's tiny_options for the modality
    extension: ClassVar[str]
    noise_kind: ClassVar[str] = "decode_error"
    holds_floats: ClassVar[bool] = True
    encoder: ClassVar[str] = TINY_ENCODER
    encoder_options: ClassVar[dict[str, Any] | None] = None
    tunable: ClassVar[bool] = True
    padding_variants: ClassVar[tuple[dict[str, Any], ...]] = ()
    per_class: ClassVar[int] = 4
    shard_size: ClassVar[int] = 2
    slow_kills: ClassVar[int] = 12
    tune_epochs: ClassVar[int] = 4

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "modality" in cls.__dict__ and "options" not in cls.__dict__:
            from mmtok.modalities import get_modality

            cls.options = dict(get_modality(cls.modality).tiny_options)

    # --- hooks --------------------------------------------------------------------------

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        raise NotImplementedError

    def malformed_inputs(self) -> dict[str, Malformed]:
        raise NotImplementedError

    def sample_ids(self, name: str) -> list[str]:
        """The ids of the samples in the file ``name`` (relative to the source root);
        containers of several samples override this."""
        return [name]

    # --- shared data and stores (once per class) ------------------------------------------

    # Class-scoped fixtures are classmethods (pytest deprecates instance-method ones); they
    # call the hooks on an instance of their own.

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls, tmp_path_factory) -> tuple[Path, list[str]]:
        """A labelled folder tree (classes ``a``, ``b``) of valid samples plus one file of
        random bytes (an error record every store must reproduce); returns (root, ids)."""
        self = cls()
        root = tmp_path_factory.mktemp(f"{self.modality}-data") / "data"
        for label, name in enumerate(("a", "b")):
            (root / name).mkdir(parents=True)
            for i in range(self.per_class):
                self.write_sample(root / name, f"{i:02d}", label, label * self.per_class + i)
        broken = root / "b" / f"zz_broken{self.extension}"
        broken.write_bytes(np.random.default_rng(0).bytes(2048))
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        return root, [i for name in files for i in self.sample_ids(name)]

    def tokenize(self, source: Path, output: Path, **extra: Any):
        return mmtok.tokenize(source, output, self.modality, shard_size=self.shard_size,
                              progress=False, **{**self.options, **extra})

    @pytest.fixture(scope="class")
    @classmethod
    def reference(cls, data, tmp_path_factory) -> Path:
        self = cls()
        root, ids = data
        store = tmp_path_factory.mktemp(f"{self.modality}-ref") / "tokens.zarr"
        summary = self.tokenize(root, store)
        assert summary.status == "complete"
        assert (summary.num_samples, summary.num_invalid) == (len(ids), 1), summary
        return store

    def embed(self, tokens: Path, output: Path, **kwargs: Any):
        return mmtok.embed(tokens, output, self.encoder, encoder_options=self.encoder_options,
                           pool_how="cls+mean+max", progress=False, **kwargs)

    @pytest.fixture(scope="class")
    @classmethod
    def features(cls, reference, tmp_path_factory) -> Path:
        self = cls()
        store = tmp_path_factory.mktemp(f"{self.modality}-feat") / "features.zarr"
        assert self.embed(reference, store, batch_size=3).status == "complete"
        return store

    def command(self, source: Path, output: Path, shard_size: int | None = None) -> list[str]:
        return mmtok_command("tokenize", source, "-o", output, "-m", self.modality,
                             "--shard-size", shard_size or self.shard_size, "--no-progress",
                             *cli_options(self.options))

    # --- determinism ----------------------------------------------------------------------

    def test_the_same_input_twice_gives_byte_identical_stores(self, data, reference, tmp_path):
        self.tokenize(data[0], tmp_path / "again.zarr")
        assert_same_store(tmp_path / "again.zarr", reference)
        assert store_files(tmp_path / "again.zarr") == store_files(reference)

    def test_one_and_two_workers_give_byte_identical_stores(self, data, reference, tmp_path):
        self.tokenize(data[0], tmp_path / "two.zarr", workers=2)
        assert_same_store(tmp_path / "two.zarr", reference)
        assert store_files(tmp_path / "two.zarr") == store_files(reference)

    def test_the_batched_device_path_gives_byte_identical_stores(self, data, reference,
                                                                 tmp_path):
        """``--device cuda``: a tokenizer with a batched path computes a shard's decoded
        samples a batch at a time through the Triton kernels; the store must be the CPU
        path's, byte for byte, bad samples included. Without a GPU the kernels run in
        Triton's interpreter (what ``--device cuda`` does under TRITON_INTERPRET=1)."""
        from mmtok.modalities import get_modality

        if not get_modality(self.modality).tokenizer.has_batched_path():
            pytest.skip(f"{self.modality} has no batched device path")
        store = tmp_path / "device.zarr"
        process = subprocess.run([*self.command(data[0], store), "--device", "cuda"],
                                 env=subprocess_env(TRITON_INTERPRET="1"),
                                 capture_output=True, text=True, timeout=300)
        assert process.returncode == 0, process.stderr[-4000:]
        assert_same_store(store, reference)
        assert store_files(store) == store_files(reference)

    # --- SIGKILL and resume ---------------------------------------------------------------

    def test_a_run_sigkilled_part_way_resumes_to_the_uninterrupted_store(self, data, reference,
                                                                         tmp_path):
        """One kill, as soon as the first shard is committed (so the kill lands part-way,
        not before the store exists or after it is done), then a rerun. A run that ends
        before the poll sees its commit (a busy machine) is tried again on a new store."""
        root, ids = data
        shards = zarr.open_group(reference, mode="r").attrs["mmtok"]["num_shards"]
        for attempt in range(3):
            store = tmp_path / f"killed{attempt}.zarr"
            process = subprocess.Popen(self.command(root, store), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
            assert wait_for_lock(process, store), process.communicate()[1].decode()[-2000:]
            deadline = time.monotonic() + 120
            while process.poll() is None and time.monotonic() < deadline and (
                    not (store / "commits").is_dir() or committed(store) < 1):
                time.sleep(POLL_SECONDS)
            if process.poll() is None:
                break
            assert process.returncode == 0, process.communicate()[1].decode()[-2000:]
        else:
            raise AssertionError("three runs ended before their kill: give them more shards")
        process.kill()
        process.wait()
        assert 1 <= committed(store) < shards, "the kill must land part-way"
        # the rerun resumes in this process: the same store, a cheaper start than a child's
        assert self.tokenize(root, store).status == "complete"
        assert_same_store(store, reference)
        assert_ids_complete(store, ids)

    @pytest.mark.slow
    def test_repeated_sigkills_resume_to_the_uninterrupted_store(self, data, tmp_path):
        """``slow_kills`` SIGKILLs of runs with one and two workers in turn, one sample per
        shard: each lands a seeded random moment after the run commits none or one more
        shard, so kills fall in store creation, in shards and in commits, and the store
        still grows."""
        root, ids = data
        reference, store = tmp_path / "ref.zarr", tmp_path / "killed.zarr"
        made = subprocess.run(self.command(root, reference, 1), capture_output=True, text=True,
                              timeout=300)
        assert made.returncode == 0, made.stderr[-4000:]
        one, two = self.command(root, store, 1), [*self.command(root, store, 1), "-j", "2"]
        progress = kill_near_commits([one, two], store,
                                     np.random.default_rng(len(self.modality)), self.slow_kills)
        assert len(progress) >= self.slow_kills // 2, progress
        assert any(0 < p < len(ids) for p in progress), f"no kill landed part-way: {progress}"
        finish = subprocess.run(self.command(root, store, 1), capture_output=True, text=True,
                                timeout=300)
        assert finish.returncode == 0, finish.stderr[-4000:]
        assert_same_store(store, reference)
        assert_ids_complete(store, ids)

    # --- malformed inputs -----------------------------------------------------------------

    def all_malformed(self) -> dict[str, Malformed]:
        noise = np.random.default_rng(1).bytes(4096)
        cases = {
            f"empty{self.extension}": Malformed(lambda p: p.write_bytes(b""), "empty_file",
                                                "empty"),
            f"noise{self.extension}": Malformed(lambda p: p.write_bytes(noise), self.noise_kind,
                                                "noise"),
        }
        return {**cases, **self.malformed_inputs()}

    def test_malformed_inputs_cover_every_hazard(self):
        required = {h for h in REQUIRED_HAZARDS if self.holds_floats or h != "nonfinite"}
        supplied = {case.hazard for case in self.all_malformed().values()}
        assert required <= supplied, f"{self.modality}: no malformed input for " \
                                     f"{sorted(required - supplied)}"

    def test_malformed_inputs_are_recorded_with_their_kind_in_bounded_memory(self, tmp_path):
        """A child tokenizes the malformed files among valid ones under an address-space
        and a time limit; each gets its kind, the valid ones tokenize, memory stays low."""
        folder = tmp_path / "data"
        folder.mkdir()
        expected: dict[str, str | None] = {}
        for i in range(2):
            path = self.write_sample(folder, f"good{i}", i, i)
            expected.update(dict.fromkeys(self.sample_ids(path.name)))
        for sample_id, case in self.all_malformed().items():
            case.write(folder / sample_id.partition("#")[0])
            expected[sample_id] = case.kind
        store = tmp_path / "t.zarr"
        stdout, peak = run_bounded(sys.executable, [
            "tokenize", str(folder), "-o", str(store), "-m", self.modality, "--labels", "none",
            "--json", "--no-progress", "--shard-size", "4", *cli_options(self.options)],
            tmp_path / "out", MALFORMED_TIME_LIMIT)
        summary = json.loads(stdout)
        assert summary["status"] == "complete" and summary["num_samples"] == len(expected)
        got = outcomes(store)
        wrong = {i: (got.get(i, "missing"), kind) for i, kind in expected.items()
                 if got.get(i, "missing") != kind}
        assert not wrong and len(got) == len(expected), f"(got, expected) kinds: {wrong}"
        assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak >> 20} MB"

    # --- embed ----------------------------------------------------------------------------

    def test_features_are_finite_and_do_not_depend_on_the_batch(self, reference, features,
                                                                tmp_path):
        """Valid rows are finite and not all equal; invalid rows are zero; a batch of one
        gives the features a batch of three gave (samples never interact)."""
        values, valid = valid_features(features)
        assert valid.sum() == len(valid) - 1
        assert np.isfinite(values).all() and not values[~valid].any()
        assert np.ptp(values[valid], axis=0).max() > 0, "every sample has the same feature"
        assert self.embed(reference, tmp_path / "one.zarr", batch_size=1).status == "complete"
        single, _ = valid_features(tmp_path / "one.zarr")
        np.testing.assert_allclose(single, values, rtol=1e-4, atol=1e-5)

    def test_embedding_twice_gives_byte_identical_feature_stores(self, reference, features,
                                                                  tmp_path):
        assert self.embed(reference, tmp_path / "again.zarr", batch_size=3).status == "complete"
        assert store_files(tmp_path / "again.zarr") == store_files(features)

    def test_padding_never_changes_a_pooled_feature(self, data, reference, features, tmp_path):
        if not self.padding_variants:
            pytest.skip(f"{self.modality} tokens have a fixed length: no padding")
        expected, valid = valid_features(features)
        shapes = {zarr.open_array(reference / "tokens", mode="r").shape}
        for i, variant in enumerate(self.padding_variants):
            tokens, feats = tmp_path / f"t{i}.zarr", tmp_path / f"f{i}.zarr"
            self.tokenize(data[0], tokens, **variant)
            shapes.add(zarr.open_array(tokens / "tokens", mode="r").shape)
            assert self.embed(tokens, feats, batch_size=3).status == "complete"
            got, got_valid = valid_features(feats)
            np.testing.assert_array_equal(got_valid, valid)
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5,
                                       err_msg=f"padding {variant} changed a feature")
        assert len(shapes) == len(self.padding_variants) + 1, \
            "each padding variant must change the token shape"

    # --- tokenizer tuning -----------------------------------------------------------------

    def test_tune_tokenizer_lowers_the_loss_and_leaves_the_encoder_bit_identical(
            self, reference, tmp_path, cli, monkeypatch):
        args = ["train-head", reference, "-o", tmp_path / "tuned", "--tune", "tokenizer",
                "--encoder", self.encoder, "--epochs", str(self.tune_epochs), "--batch-size",
                "4", "--lr", "3e-3", "--val-split", "0.25", "--json", "--no-progress"]
        for key, value in (self.encoder_options or {}).items():
            args += ["--encoder-option", f"{key}={value}"]
        if not self.tunable:
            result = cli(*args)
            assert result.exit_code == 2 and "patch embedding" in result.stderr, result.output
            assert not (tmp_path / "tuned").exists()
            return
        import torch

        from mmtok.embedding import encoders

        seen = {}
        load_encoder = encoders.load_encoder

        def spying_load(*a, **k):  # keeps a copy of the weights the run starts from
            encoder = load_encoder(*a, **k)
            seen["encoder"] = encoder
            seen["before"] = {n: t.clone() for n, t in encoder.module.state_dict().items()}
            return encoder

        monkeypatch.setattr(encoders, "load_encoder", spying_load)
        result = cli(*args)
        assert result.exit_code == 0, result.output
        run = json.loads(result.stdout)
        losses = [epoch["train_loss"] for epoch in run["extra"]["history"]]
        assert len(losses) == self.tune_epochs
        assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
        assert run["extra"]["encoder_unchanged"] is True
        after = seen["encoder"].module.state_dict()
        assert after.keys() == seen["before"].keys()
        for name, tensor in seen["before"].items():
            assert torch.equal(after[name], tensor), f"encoder weight {name} changed"
        assert (tmp_path / "tuned" / "projector.safetensors").is_file()

    # --- readers --------------------------------------------------------------------------

    def test_stores_open_with_plain_zarr_without_warnings(self, reference, features):
        for store in (reference, features):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                group = zarr.open_group(store, mode="r")
                names = sorted(group.array_keys())
                arrays = {name: group[name][...] for name in names}
            assert not caught, [str(w.message) for w in caught]
            n = group.attrs["mmtok"]["num_samples"]
            assert {"label", "valid", "id"} <= set(names)
            assert all(len(arrays[name]) == n for name in ("label", "valid", "id"))

    def test_stores_open_as_torch_datasets(self, data, reference, features):
        from torch.utils.data import DataLoader, Dataset

        ids = data[1]
        for store in (reference, features):
            dataset = mmtok.open_store(store)
            assert isinstance(dataset, Dataset) and len(dataset) == len(ids)
            assert [dataset[i]["id"] for i in range(len(dataset))] == ids
            batches = list(DataLoader(dataset, batch_size=4))
            assert sum(len(batch["id"]) for batch in batches) == len(ids)
            assert int(sum(batch["valid"].sum() for batch in batches)) == len(ids) - 1
            labels = [int(x) for batch in batches for x in batch["label"]]
            assert labels == [0 if i.startswith("a/") else 1 for i in ids]
