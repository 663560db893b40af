"""tabular: the schema fitted on train, reused unchanged on test; sklearn's quantile transform."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

import mmtok
from mmtok.modalities.tabular.schema import quantile_normal, quantiles
from mmtok.modalities.tabular.tokenizer import DroppedColumnWarning


def write_table(path, n, seed, cities=("paris", "rome", "oslo")):
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 10, n)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "age", "income", "city", "member", "label"])
        for i in range(n):
            cell = "NA" if i % 17 == 0 else "oops" if i % 29 == 0 else f"{income[i]:.4f}"
            writer.writerow([i, int(rng.integers(18, 60)), cell, cities[i % len(cities)],
                             ("True", "False")[i % 2], "hi" if income[i] > 50 else "lo"])


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("tab")
    write_table(root / "train.csv", 400, 0)
    write_table(root / "test.csv", 100, 1, cities=("paris", "lima"))
    write_table(root / "test2.csv", 150, 2, cities=("tokyo",))
    with pytest.warns(DroppedColumnWarning, match="^tabular: id: ") as caught:
        mmtok.tokenize(str(root / "train.csv"), root / "train.zarr", "tabular",
                       stats_from_data=True, progress=False)
    assert len(caught) == 1  # one dropped column, one warning
    for name in ("test", "test2"):
        with warnings.catch_warnings():  # a reused schema is not fitted again: no warning
            warnings.simplefilter("error", DroppedColumnWarning)
            mmtok.tokenize(str(root / f"{name}.csv"), root / f"{name}.zarr",
                           config_from=root / "train.zarr", progress=False)
    return root


def attrs(store):
    return zarr.open_group(store, mode="r").attrs["mmtok"]


def test_the_schema_is_fitted_on_train_and_reused_unchanged(stores):
    train, test, test2 = (attrs(stores / f"{n}.zarr") for n in ("train", "test", "test2"))
    config = train["config"]
    assert config["columns"] == ["age", "income", "city", "member"]
    assert config["kinds"] == ["categorical", "numeric", "categorical", "boolean"]
    assert any(note.startswith("id:") for note in config["dropped"])
    # another test file gives the same config: it never depends on test data
    assert test["config"] == config == test2["config"]
    assert test["config_hash"] == train["config_hash"] == test2["config_hash"]
    # the quantiles are the train file's
    values = []
    with open(stores / "train.csv") as handle:
        for row in csv.DictReader(handle):
            try:
                values.append(float(row["income"]))
            except ValueError:
                pass
    assert config["numeric_params"][0] == list(quantiles(np.array(values), 1000))
    assert train["class_names"] == ["hi", "lo"]


def test_unseen_categories_map_to_unknown_and_missing_cells_are_flagged(stores):
    group = zarr.open_group(stores / "test.zarr", mode="r")
    vocab = attrs(stores / "train.zarr")["config"]["vocabularies"][1]
    city = group["categorical"][:, 1]
    assert vocab == ["oslo", "paris", "rome"]
    assert set(city[0::2]) == {1} and set(city[1::2]) == {len(vocab)}  # lima: unknown
    missing = group["missing"][:]
    assert missing[0, 1] and missing[29, 1] and not missing[1, 1]  # NA and "oops"
    assert group["numeric"][0, 0] == 0.0
    assert group["valid"][:].all()


def test_the_summary_and_info_count_missing_and_unparsable_cells_per_column(stores, cli):
    # test.csv: rows 0, 17, ... are NA and rows 29, 58, 87 "oops" in income (row 0 is NA):
    # all flagged missing and counted, the "oops" ones also as unparsable; rows stay valid
    summary = mmtok.tokenize(str(stores / "test.csv"), stores / "again.zarr",
                             config_from=stores / "train.zarr", progress=False)
    expected = len({i for i in range(100) if i % 17 == 0 or i % 29 == 0})
    oops = len([i for i in range(100) if i % 29 == 0 and i % 17])  # 29, 58, 87
    assert summary.counts == {"missing income": expected, "unparsable income": oops}
    assert summary.num_invalid == 0 and f"unparsable income {oops}" in summary.line()
    result = cli("info", stores / "again.zarr")
    assert result.exit_code == 0
    assert f"counts     missing income {expected}, unparsable income {oops}" in result.stdout
    # bad_cells=error: those rows are errors instead, and no longer counted
    config = {k: v for k, v in attrs(stores / "train.zarr")["config"].items()
              if k != "modality"}
    strict = mmtok.tokenize(str(stores / "test.csv"), stores / "strict.zarr", "tabular",
                            **{**config, "bad_cells": "error"}, progress=False)
    assert strict.errors_by_kind == {"bad_cell": oops} and "unparsable income" not in strict.counts


def test_quantile_transform_equals_sklearns():
    sklearn = pytest.importorskip("sklearn.preprocessing")
    rng = np.random.default_rng(0)
    train = np.concatenate([rng.lognormal(size=3000), [5.0] * 50])
    test = np.concatenate([rng.lognormal(size=500), [-1.0, 1e6, 5.0]])
    reference = sklearn.QuantileTransformer(n_quantiles=200, output_distribution="normal",
                                            subsample=None).fit(train[:, None])
    ours = quantile_normal(test, np.array(quantiles(train, 200)))
    np.testing.assert_allclose(ours, reference.transform(test[:, None])[:, 0], atol=1e-9)


def test_overrides_parquet_and_the_label_column(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3, 1] * 20, "b": [0.5, 1.5, 2.5, 3.5] * 20,
                             "y": ["u", "v"] * 40}), path, row_group_size=16)
    store = tmp_path / "t.zarr"
    mmtok.tokenize(str(path), store, "tabular", stats_from_data=True, label_column="y",
                   numeric=("a",), numeric_transform="standard", progress=False)
    a = attrs(store)
    assert a["config"]["columns"] == ["a", "b"] and a["config"]["kinds"] == ["numeric"] * 2
    assert a["class_names"] == ["u", "v"]
    group = zarr.open_group(store, mode="r")
    b = np.array([0.5, 1.5, 2.5, 3.5] * 20)
    np.testing.assert_allclose(group["numeric"][:, 1], (b - b.mean()) / b.std(), rtol=1e-5)


def test_without_a_schema_tokenizing_is_refused_before_a_store_exists(tmp_path, cli):
    write_table(tmp_path / "t.csv", 10, 0)
    result = cli("tokenize", tmp_path / "t.csv", "-o", tmp_path / "t.zarr", "-m", "tabular")
    assert result.exit_code == 2 and "--stats-from-data" in result.stderr
    assert not (tmp_path / "t.zarr").exists()
    (tmp_path / "dup.csv").write_text("a,a\n1,2\n")
    result = cli("tokenize", tmp_path / "dup.csv", "-o", tmp_path / "d.zarr", "-m", "tabular",
                 "--stats-from-data")
    assert result.exit_code == 2 and "duplicate column names" in result.stderr


def test_numeric_columns_read_as_floats_are_the_numbers_of_their_text(tmp_path):
    """``try_types`` (float64 for numeric columns) gives the values ``as_float`` makes of
    the strings, and falls back to the strings where a cell is not a number, so the fit and
    the transform see the same cells either way (stores stay byte-identical)."""
    from mmtok.modalities import rowfiles
    from mmtok.modalities.tabular.schema import as_float

    cells = ["1.5", " 2.5 ", "", "NA", "nan", "inf", "-0", "1e400", '"3.25"', "+4", ".5", "\t6"]
    clean = tmp_path / "clean.csv"
    clean.write_text("x,c\n" + "".join(f"{v},k{i}\n" for i, v in enumerate(cells)))
    dirty = tmp_path / "dirty.csv"
    dirty.write_text("x,c\n" + "".join(f"{v},k{i}\n" for i, v in enumerate(cells + [" NA"])))
    for path, typed in ((clean, True), (dirty, False)):
        n = rowfiles.row_index(str(path)).num_rows
        plain = rowfiles.read_rows(str(path), 0, n, ["x", "c"]).table
        tried = rowfiles.read_rows(str(path), 0, n, ["x", "c"],
                                   try_types={"x": pa.float64()}).table
        assert pa.types.is_floating(tried.column("x").type) == typed
        assert tried.column("c").equals(plain.column("c"))
        (ours, bad), (theirs, theirs_bad) = as_float(tried.column("x")), as_float(plain.column("x"))
        assert np.array_equal(ours, theirs, equal_nan=True) and np.array_equal(bad, theirs_bad)
        assert np.signbit(ours[6]) and bad.sum() == (0 if typed else 1)


def test_text_columns_skip_the_whole_column_cast():
    """A column whose first cells are not numbers goes to the per-distinct-cell parse
    without a failing cast of the whole column; the result is the same."""
    from mmtok.modalities.tabular.schema import as_float

    text = pa.array(["red"] * 100 + ["1.5", None, "2"] * 10)
    values, bad = as_float(text)
    assert bad[:100].all() and np.isnan(values[:100]).all()
    assert values[100:103].tolist()[::2] == [1.5, 2.0] and not bad[100:].any()
    late = pa.array(["1"] * 100 + ["x"])  # the probe passes, the whole cast fails
    values, bad = as_float(late)
    assert values[:100].tolist() == [1.0] * 100 and bad.tolist() == [False] * 100 + [True]
