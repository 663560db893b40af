"""Laplacian node identifiers (TokenGT): the first k eigenvectors of the symmetric
normalised Laplacian ``L = I - D^-1/2 A D^-1/2`` of a graph, in a deterministic basis.

``A`` is the graph's undirected, unweighted adjacency without self loops (duplicates
collapsed); an isolated node has ``D = 0`` and ``L_ii = 1`` (``D^-1/2`` is taken as 0
there, as the formula with TokenGT's clipped degree gives).

Basis rule (documented in docs/modalities/graph.md): eigenvalues ascend; eigenvalues closer
than ``CLUSTER_TOL`` form one cluster (one eigenspace). Within a cluster the basis is built
greedily from the space itself, never from the solver's arbitrary rotation of it: the next
vector is the projection of the unit vector ``e_i`` onto what remains of the space, with
``i`` the node whose projection is longest (ties within ``TIE_TOL``: the lowest index),
normalised; then it is removed from the space. So every vector's largest entry in
magnitude (first such node) is positive: for a simple eigenvalue this is the sign rule
"largest |entry| positive, ties to the lowest node index". Eigenvectors beyond the graph's
node count are zero columns; the eigenvalues are returned alongside.

Solvers: dense LAPACK ``evr`` for the wanted eigenpairs only (``scipy.linalg.eigh`` with
``subset_by_index``) up to ``dense_max`` nodes, ARPACK (``scipy.sparse.linalg.eigsh`` on
``2I - L`` with a fixed start vector) above. When the cluster at the k-th eigenvalue goes on
beyond it, the dense path computes the whole spectrum so that the cluster's basis is the
rule's; the sparse path cannot (documented).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
import scipy.sparse
import scipy.sparse.linalg

CLUSTER_TOL = 1e-6
TIE_TOL = 1e-9


def normalized_laplacian(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense ``I - D^-1/2 A D^-1/2`` (float64) of the undirected edges ``a[i] - b[i]``
    (no self loops, no duplicates)."""
    degree = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    scale = np.zeros(n)
    np.divide(1.0, np.sqrt(degree), out=scale, where=degree > 0)
    weight = -scale[a] * scale[b]
    lap = np.zeros((n, n))
    lap[a, b] = weight
    lap[b, a] = weight
    lap.flat[:: n + 1] = 1.0
    return lap


def sparse_laplacian(n: int, a: np.ndarray, b: np.ndarray) -> scipy.sparse.csr_array:
    rows = np.concatenate([a, b])
    cols = np.concatenate([b, a])
    adj = scipy.sparse.csr_array((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    degree = np.asarray(adj.sum(axis=1)).ravel()
    scale = np.zeros(n)
    np.divide(1.0, np.sqrt(degree), out=scale, where=degree > 0)
    d = scipy.sparse.diags_array(scale)
    return (scipy.sparse.eye_array(n) - d @ adj @ d).tocsr()


def laplacian_ids(n: int, a: np.ndarray, b: np.ndarray, k: int,
                  dense_max: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(values (m,), vectors (n, m))`` with ``m = min(n, k)``: the ``m`` smallest
    eigenpairs of the normalised Laplacian in the documented basis."""
    if n == 0:
        return np.zeros(0), np.zeros((0, 0))
    m = min(n, k)
    if n <= dense_max:
        lap = normalized_laplacian(n, a, b)
        want = min(n, m + 1)  # one more: does the last cluster go on beyond the k-th?
        values, vectors = _dense_eigs(lap, want)
        if want > m and values[m] - values[m - 1] < CLUSTER_TOL:
            values, vectors = np.linalg.eigh(lap)  # the whole cluster, for its basis
    else:
        values, vectors = _sparse_eigs(n, a, b, min(n - 1, m + 1))
    vectors = canonical_basis(values, vectors)
    return values[:m], vectors[:, :m]


def _dense_eigs(lap: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` smallest eigenpairs by LAPACK ``dsyevr`` (what ``scipy.linalg.eigh(...,
    driver="evr", subset_by_index=...)`` calls, without its per-call checks)."""
    values, vectors, _, _, info = scipy.linalg.lapack.dsyevr(
        lap, compute_v=1, range="I", il=1, iu=count, overwrite_a=0)
    if info != 0:  # LAPACK failed to converge (never seen): the whole spectrum instead
        values, vectors = np.linalg.eigh(lap)
    return values[:count], vectors[:, :count]


def _sparse_eigs(n: int, a: np.ndarray, b: np.ndarray, count: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    lap = sparse_laplacian(n, a, b)
    shifted = 2.0 * scipy.sparse.eye_array(n) - lap  # largest of 2I - L = smallest of L
    v0 = np.random.default_rng(0).standard_normal(n)
    vals, vecs = scipy.sparse.linalg.eigsh(shifted, k=count, which="LA", v0=v0, tol=1e-10,
                                           maxiter=max(1000, 20 * n))
    order = np.argsort(2.0 - vals, kind="stable")
    return (2.0 - vals)[order], vecs[:, order]


def clusters(values: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of runs of ascending eigenvalues closer than CLUSTER_TOL."""
    bounds = [0, *(np.flatnonzero(np.diff(values) >= CLUSTER_TOL) + 1), len(values)]
    return list(zip(bounds[:-1], bounds[1:]))


def canonical_basis(values: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``vectors`` (orthonormal columns, ascending ``values``) rewritten in the module's
    basis rule; a new array."""
    out = np.array(vectors, dtype=np.float64, copy=True)
    spans = clusters(values)
    single = np.array([s for s, e in spans if e - s == 1], dtype=np.int64)
    if len(single):  # simple eigenvalues, all at once: the sign rule
        block = out[:, single]
        size = np.abs(block)
        first = np.argmax(size >= size.max(axis=0) - TIE_TOL, axis=0)
        signs = np.sign(block[first, np.arange(len(single))])
        signs[signs == 0] = 1.0
        out[:, single] = block * signs
    for start, stop in spans:
        if stop - start > 1:
            out[:, start:stop] = _greedy_basis(out[:, start:stop])
    return out


def _greedy_basis(space: np.ndarray) -> np.ndarray:
    rest = space.copy()
    basis = np.empty_like(space)
    for j in range(space.shape[1]):
        norms = np.einsum("ij,ij->i", rest, rest)
        i = int(np.argmax(norms >= norms.max() - TIE_TOL))
        u = rest @ rest[i]
        u /= np.linalg.norm(u)
        basis[:, j] = u
        rest -= np.outer(u, u @ rest)
    return basis
