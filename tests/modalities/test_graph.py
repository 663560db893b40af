"""The graph modality: Laplacian ids against numpy/networkx, every reader on files the
tests write with networkx and numpy, TUDataset folders, hostile inputs, the TokenGT
projector, and tokenize -> embed -> train-head --tune tokenizer end to end."""

from __future__ import annotations

import json
import time

import networkx as nx
import numpy as np
import pytest

import mmtok
from graphfiles import featured_graph, write_all, write_edge_lists, write_tudataset
from mmtok.errors import SampleError, UsageError
from mmtok.modalities import create_tokenizer
from mmtok.modalities.graph.laplacian import CLUSTER_TOL, canonical_basis, clusters, laplacian_ids
from mmtok.modalities.graph.readers import Graph

K = 16


def reference_laplacian(g: nx.Graph) -> np.ndarray:
    """``I - D^-1/2 A D^-1/2`` built with networkx (isolated nodes: L_ii = 1)."""
    a = nx.to_numpy_array(g, nodelist=sorted(g.nodes), weight=None)
    np.fill_diagonal(a, 0)
    d = a.sum(axis=1)
    s = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0)
    return np.eye(len(a)) - s[:, None] * a * s[None, :]


def edges_of(g: nx.Graph) -> tuple[int, np.ndarray, np.ndarray]:
    index = {n: i for i, n in enumerate(sorted(g.nodes))}
    e = np.array([(index[u], index[v]) for u, v in g.edges if u != v]).reshape(-1, 2)
    return len(index), np.minimum(e[:, 0], e[:, 1]), np.maximum(e[:, 0], e[:, 1])


GRAPHS = {
    "random": nx.gnm_random_graph(40, 90, seed=1),
    "path": nx.path_graph(9),
    "cycle": nx.cycle_graph(12),  # every non-zero eigenvalue twice
    "star": nx.star_graph(30),  # eigenvalue 1 thirty times: the 16th falls inside it
    "disconnected": nx.disjoint_union(nx.cycle_graph(5), nx.path_graph(7)),
    "tiny": nx.path_graph(3),  # fewer nodes than k
    "petersen": nx.petersen_graph(),
    "nx-laplacian": nx.barabasi_albert_graph(60, 2, seed=3),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_laplacian_ids_span_numpys_eigenspaces_per_cluster(name):
    g = GRAPHS[name]
    lap = reference_laplacian(g)
    if name == "nx-laplacian":  # no isolated nodes: networkx's own matrix is the same
        np.testing.assert_allclose(nx.normalized_laplacian_matrix(g, nodelist=sorted(g.nodes))
                                   .toarray(), lap, atol=1e-12)
    ref_values, ref_vectors = np.linalg.eigh(lap)
    values, vectors = laplacian_ids(*edges_of(g), K)
    m = min(len(lap), K)
    assert vectors.shape == (len(lap), m)
    np.testing.assert_allclose(values, ref_values[:m], atol=1e-9)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(m), atol=1e-9)
    for start, stop in clusters(ref_values):
        if start >= m:
            break
        ours = vectors[:, start:min(stop, m)]
        space = ref_vectors[:, start:stop]
        # every vector of ours lies in numpy's eigenspace of that eigenvalue
        np.testing.assert_allclose(space @ (space.T @ ours), ours, atol=1e-8)
        if stop <= m:  # a whole cluster: the same space
            np.testing.assert_allclose(ours @ ours.T, space @ space.T, atol=1e-8)
    # the sign rule: the largest |entry| of every vector (first such node) is positive
    size = np.abs(vectors)
    first = np.argmax(size >= size.max(axis=0) - 1e-9, axis=0)
    assert (vectors[first, np.arange(m)] > 0).all()


@pytest.mark.parametrize("name", ["cycle", "star", "disconnected", "petersen"])
def test_the_basis_does_not_depend_on_the_solvers_rotation_of_an_eigenspace(name):
    lap = reference_laplacian(GRAPHS[name])
    values, vectors = np.linalg.eigh(lap)
    rng = np.random.default_rng(0)
    rotated = vectors.copy()
    for start, stop in clusters(values):  # any orthonormal basis of each eigenspace
        q, _ = np.linalg.qr(rng.normal(size=(stop - start, stop - start)))
        rotated[:, start:stop] = vectors[:, start:stop] @ q * rng.choice([-1, 1], stop - start)
    np.testing.assert_allclose(canonical_basis(values, rotated),
                               canonical_basis(values, vectors), atol=1e-8)


def test_sparse_eigsh_path_matches_the_dense_path_on_a_large_graph():
    g = nx.connected_watts_strogatz_graph(300, 6, 0.3, seed=2)
    n, a, b = edges_of(g)
    dense_values, dense = laplacian_ids(n, a, b, K, dense_max=1000)
    sparse_values, sparse = laplacian_ids(n, a, b, K, dense_max=100)
    np.testing.assert_allclose(sparse_values, dense_values, atol=1e-7)
    assert np.all(np.diff(dense_values) > CLUSTER_TOL)  # simple eigenvalues: unique vectors
    np.testing.assert_allclose(sparse, dense, atol=1e-6)


# --------------------------------------------------------------------------------------
# readers: the same graph in every format gives the same tokens
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    return write_all(featured_graph(), tmp_path_factory.mktemp("formats"))


def test_every_reader_gives_the_same_tokens(formats):
    tok = create_tokenizer("graph", attr_dim=2, node_types=3, edge_types=2)
    reference = tok.tokenize_file(str(formats["json-links"]))
    g = featured_graph()
    assert reference["num_nodes"] == 8 and reference["num_edges"] == 2 * g.number_of_edges()
    for name in ("graphml", "gml", "json-edges"):
        result = tok.tokenize_file(str(formats[name]))
        for array in reference:
            assert np.array_equal(result[array], reference[array]), (name, array)
    # NPZ holds either integer types or float attributes per node/edge
    for name, same, other in (("npz-types", "token_label", "tokens"),
                              ("npz-attrs", "tokens", "token_label")):
        result = tok.tokenize_file(str(formats[name]))
        assert np.array_equal(result[same], reference[same]), name
        assert not np.array_equal(result[other], reference[other])
        assert np.array_equal(result["tokens"][..., :2 * K], reference["tokens"][..., :2 * K])


def test_tokens_hold_nodes_then_edges_in_the_documented_order(formats):
    tok = create_tokenizer("graph", attr_dim=2, node_types=3, edge_types=2)
    r = tok.tokenize_file(str(formats["json-links"]))
    g = featured_graph()
    nodes = sorted(g.nodes)  # integer ids sort numerically: 3 4 7 10 12 25 99 1000
    index = {n: i for i, n in enumerate(nodes)}
    lap = reference_laplacian(g)
    values, vectors = laplacian_ids(*edges_of(g), K)
    tokens = r["tokens"]
    np.testing.assert_allclose(tokens[:8, :8], vectors.astype(np.float32))
    np.testing.assert_allclose(tokens[:8, K:K + 8], vectors.astype(np.float32))
    np.testing.assert_allclose(tokens[:8, 2 * K:], [g.nodes[n]["x"] for n in nodes])
    assert r["token_label"][:8].tolist() == [g.nodes[n]["type"] + 1 for n in nodes]
    assert not tokens[8:128].any() and not r["token_label"][8:128].any()
    pairs = sorted((min(index[u], index[v]), max(index[u], index[v])) for u, v in g.edges)
    expected = [p for a, b in pairs for p in ((a, b), (b, a))]
    got = [(int(np.argmax(np.all(tokens[:8, :K] == t[:K], axis=1))),
            int(np.argmax(np.all(tokens[:8, :K] == t[K:2 * K], axis=1))))
           for t in tokens[128:128 + len(expected)]]
    assert got == expected
    assert not tokens[128 + len(expected):].any()
    np.testing.assert_allclose(r["eigvals"][:8], np.linalg.eigvalsh(lap), atol=1e-6)
    assert (r["eigvals"][8:] == 0).all()


def test_edge_lists_with_weights_csv_headers_comments_and_npz_agree(tmp_path):
    g = nx.gnm_random_graph(15, 30, seed=4)
    for u, v in g.edges:
        g.edges[u, v]["weight"] = 0.5 + u * 0.1
    files = write_edge_lists(g, tmp_path)
    tok = create_tokenizer("graph", attr_dim=1)
    reference = tok.tokenize_file(str(files["npz"]))
    assert reference["tokens"][128:, 2 * K].any()  # the weights are the edge attribute
    for name, path in files.items():
        result = tok.tokenize_file(str(path))
        for array in reference:
            assert np.array_equal(result[array], reference[array]), (name, array)


def test_string_and_non_contiguous_ids_duplicates_directions_and_self_loops(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("b a\na b\nc b\nb c\nc c\nz\n")  # z: a declared isolated node
    both = create_tokenizer("graph").tokenize_file(str(path))
    assert (both["num_nodes"], both["num_edges"]) == (4, 4)  # a-b, b-c twice; loop dropped
    once = create_tokenizer("graph", edges="undirected").tokenize_file(str(path))
    assert once["num_edges"] == 2
    loops = create_tokenizer("graph", edges="undirected", self_loops="keep").tokenize_file(
        str(path))
    assert loops["num_edges"] == 3
    # the loop never enters the Laplacian: the node ids are the same
    assert np.array_equal(loops["tokens"][:4], once["tokens"][:4])
    np.testing.assert_array_equal(loops["tokens"][128 + 2, :K], loops["tokens"][128 + 2, K:2 * K])
    # the path a-b-c has eigenvalues 0, 1, 2; the isolated node z has L_zz = 1
    np.testing.assert_allclose(once["eigvals"][:4], [0, 1, 1, 2], atol=1e-6)


def tokenize_error(tok, path) -> SampleError:
    with pytest.raises(SampleError) as info:
        tok.tokenize_file(str(path))
    return info.value


def test_bad_graphs_are_sample_errors_of_the_right_kind(tmp_path):
    tok = create_tokenizer("graph", attr_dim=2, max_nodes=20)
    cases = {
        "empty.json": (json.dumps({"nodes": [], "links": []}), "empty_graph"),
        "undeclared.json": (json.dumps({"nodes": [{"id": 0}], "links": [
            {"source": 0, "target": 5}]}), "bad_graph"),
        "nan.json": (json.dumps({"nodes": [{"id": 0, "x": [1.0, float("nan")]},
                                           {"id": 1, "x": [1.0, 2.0]}],
                                 "links": [{"source": 0, "target": 1}]}), "nan_attribute"),
        "wide.json": (json.dumps({"nodes": [{"id": 0, "x": [1, 2, 3]}], "links": []}),
                      "bad_feature"),
        "big.txt": ("".join(f"{i} {i + 1}\n" for i in range(30)), "too_large"),
        "garbage.graphml": ("<graphml><graph><node id='a'", "decode_error"),
        "undeclared.graphml": ("<graphml><graph><node id='a'/><edge source='a' target='q'/>"
                               "</graph></graphml>", "bad_graph"),
        "words.txt": ("a b c d\n", "decode_error"),
        "notjson.json": ("[1, 2]", "decode_error"),
    }
    for name, (text, kind) in cases.items():
        (tmp_path / name).write_text(text)
        assert tokenize_error(tok, tmp_path / name).kind == kind, name
    np.savez(tmp_path / "range.npz", edge_index=np.array([[0, 1], [1, 7]]), x=np.ones((3, 2)))
    assert tokenize_error(tok, tmp_path / "range.npz").kind == "bad_graph"
    np.savez(tmp_path / "noindex.npz", x=np.ones((3, 2)))
    assert tokenize_error(tok, tmp_path / "noindex.npz").kind == "decode_error"
    (tmp_path / "empty.txt").write_bytes(b"")
    assert tokenize_error(tok, tmp_path / "empty.txt").kind == "empty_file"


def test_a_million_edge_graph_is_refused_quickly(tmp_path):
    lines = np.arange(1_000_000)
    text = "\n".join(f"{i} {i + 1}" for i in lines[:200_000]) + "\n"
    path = tmp_path / "huge.edgelist"
    path.write_text(text * 5)  # a million edge lines, ~14 MB
    np.savez(tmp_path / "huge.npz", edge_index=np.zeros((2, 1_000_000), np.int32))
    tok = create_tokenizer("graph")
    for name in ("huge.edgelist", "huge.npz"):
        started = time.perf_counter()
        error = tokenize_error(tok, tmp_path / name)
        assert error.kind == "too_large" and time.perf_counter() - started < 1.0, name
    small = create_tokenizer("graph", max_file_mb=1)
    assert tokenize_error(small, path).kind == "too_large"
    assert "max_file_mb" in tokenize_error(small, path).message


def test_bad_options_are_usage_errors():
    for options in ({"edges": "sideways"}, {"self_loops": "maybe"}, {"lap_k": 0},
                    {"max_file_mb": -1}, {"node_types": -2}):
        with pytest.raises(UsageError):
            create_tokenizer("graph", **options)


# --------------------------------------------------------------------------------------
# TUDataset
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tu(tmp_path_factory):
    graphs = [nx.cycle_graph(5), nx.path_graph(4), nx.star_graph(5), nx.complete_graph(4)]
    for j, g in enumerate(graphs):
        for n in g.nodes:
            g.nodes[n]["type"] = (n + j) % 3
        for i, (u, v) in enumerate(g.edges):
            g.edges[u, v]["attr"] = [float(i)]
    folder = tmp_path_factory.mktemp("tu") / "TOY"
    return write_tudataset(folder, "TOY", graphs, [1, -1, 1, -1]), graphs


def test_a_tudataset_folder_is_one_sample_per_graph_with_its_labels(tu, tmp_path):
    a_file, graphs = tu
    summary = mmtok.tokenize(a_file.parent, tmp_path / "t.zarr", "graph", progress=False,
                             stats_from_data=True, shard_size=2)
    assert summary.num_samples == 4 and summary.num_valid == 4  # README and side files skipped
    store = mmtok.open_store(tmp_path / "t.zarr")
    assert store.attrs["class_names"] == ["-1", "1"]
    assert list(store.group["label"][:]) == [1, 0, 1, 0]
    assert list(store.group["id"][:]) == [f"TOY_A.txt#g={i}" for i in range(1, 5)]
    config = store.attrs["config"]
    assert (config["node_types"], config["edge_types"], config["attr_dim"]) == (3, 0, 1)
    tok = create_tokenizer("graph", **{k: v for k, v in config.items() if k != "modality"})
    for i, g in enumerate(graphs):
        alone = tok.tokenize_graph(Graph(g.number_of_nodes(), np.array(g.edges),
                                         np.array([g.nodes[n]["type"] for n in sorted(g)]),
                                         None, None,
                                         np.array([g.edges[e]["attr"] for e in g.edges])))
        assert np.array_equal(store.group["tokens"][i], alone["tokens"]), i
    # one file, read one once per run of parts: tokenize_parts equals tokenize_file
    parts = [f"g={i}" for i in (1, 2, 3, 4)]
    together = tok.tokenize_parts(str(a_file), parts)
    for part, result in zip(parts, together):
        single = tok.tokenize_file(str(a_file), part)
        assert all(np.array_equal(single[k], result[k]) for k in single)


def test_a_tudataset_run_reads_each_file_once(tu, monkeypatch):
    from mmtok.modalities.graph import tudataset

    a_file, _ = tu
    opened = []
    real = tudataset._numbers
    monkeypatch.setattr(tudataset, "_numbers", lambda p, *a, **k: opened.append(p) or real(p, *a, **k))
    create_tokenizer("graph").tokenize_parts(str(a_file), ["g=1", "g=2", "g=3", "g=4"])
    assert len(opened) == len(set(opened)) == 4  # A, indicator, node labels, edge attrs


# --------------------------------------------------------------------------------------
# projector
# --------------------------------------------------------------------------------------


def projector_batch(tok, paths):
    import torch

    rows = [tok.tokenize_file(str(p)) for p in paths]
    return {k: torch.from_numpy(np.stack([r[k] for r in rows])) for k in rows[0]}


def test_the_projector_is_batch_first_masks_padding_and_keeps_loaded_weights(formats, tmp_path):
    import torch
    from safetensors.torch import save_file

    from mmtok.embedding.encoders import load_encoder
    from mmtok.embedding.projectors import build_projector, run_encoder

    tok = create_tokenizer("graph", attr_dim=2, node_types=3, edge_types=2, max_nodes=12,
                           max_edges=40)
    config = {k: v for k, v in tok.config.__dict__.items()}
    encoder = load_encoder("metatransformer:depth=1,width=32,heads=4", seed=0)
    projector, _ = build_projector("graph", config, encoder, seed=1)
    batch = projector_batch(tok, [formats["json-links"], formats["graphml"], formats["gml"]])
    batch["num_edges"][1] = 6  # graph 1 keeps fewer edges: a different sample
    with torch.no_grad():
        projected = projector(batch)
        assert projected.x.shape == (3, 1 + 52, 32)  # batch-first: (B, 1 + L, D)
        assert projected.mask.sum(dim=1).tolist() == [22, 14, 22]
        out = run_encoder(encoder, projected)[:, 0]
        # garbage in padding slots changes nothing
        noisy = {k: v.clone() for k, v in batch.items()}
        noisy["tokens"][:, 8:12] = 7.0
        noisy["tokens"][:, 12 + 14:] = -3.0
        assert torch.allclose(run_encoder(encoder, projector(noisy))[:, 0], out, atol=1e-5)
        # a batch reordered gives the same rows reordered (no time-major mix-up)
        flipped = {k: v.flip(0) for k, v in batch.items()}
        assert torch.allclose(run_encoder(encoder, projector(flipped))[:, 0], out.flip(0),
                              atol=1e-5)
    weights = tmp_path / "p.safetensors"
    trained = {k: v + 0.5 for k, v in projector.state_dict().items()}
    save_file(trained, str(weights))
    loaded, record = build_projector("graph", config, encoder, seed=99, weights=weights)
    for key, value in loaded.state_dict().items():  # not re-initialised after loading
        assert torch.equal(value, trained[key]), key
    assert record["source"] == "file:p.safetensors"
    loaded.train()
    torch.manual_seed(0)
    first = loaded(batch).x
    assert not torch.allclose(first, loaded(batch).x)  # sign flips while training only
    loaded.eval()
    assert torch.equal(loaded(batch).x, loaded(batch).x)


# --------------------------------------------------------------------------------------
# end to end: tokenize -> embed -> train-head --tune tokenizer beats chance
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tune_tokenizer_learns_the_demo_shapes(tmp_path, cli):
    from mmtok.modalities.graph.demo import make_demo_graph

    make_demo_graph(tmp_path / "train", per_class=10)
    make_demo_graph(tmp_path / "test", per_class=6, seed=1)
    options = dict(max_nodes=24, max_edges=64, lap_k=8)
    mmtok.tokenize(tmp_path / "train", tmp_path / "tr.zarr", "graph", progress=False, **options)
    mmtok.tokenize(tmp_path / "test", tmp_path / "te.zarr", progress=False,
                   config_from=tmp_path / "tr.zarr")
    encoder = "metatransformer:depth=1,width=32,heads=4"
    result = cli("train-head", tmp_path / "tr.zarr", "-o", tmp_path / "tuned", "--tune",
                 "tokenizer", "--encoder", encoder, "--epochs", "30", "--batch-size", "10",
                 "--lr", "1e-2", "--test", tmp_path / "te.zarr", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    metrics = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    assert metrics["test"]["top1"] > 0.6, (metrics["test"], run["extra"]["history"][-1])
