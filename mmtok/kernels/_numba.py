"""Numba CPU kernels for farthest point sampling and k-nearest-neighbour grouping.

Imported lazily by :mod:`mmtok.kernels.fps` and :mod:`mmtok.kernels.knn` (importing numba
costs a few hundred milliseconds; the first call of each kernel also JIT-compiles it, or
loads it from numba's on-disk cache: ``cache=True``).

Exactness: every squared distance is ``(dx*dx + dy*dy) + dz*dz`` in float32 with
``dx = p.x - c.x`` (and so on), rounded after every operation exactly as the numpy
references compute it. Numba does not contract ``a*b + c`` into an FMA without
``fastmath``, which stays off here, so the results are bit-identical to numpy's.

Memory: the kernels copy a cloud into structure-of-arrays float32 buffers (x, y, z) so
that the distance loops vectorise.
"""

from __future__ import annotations

import warnings

import numba as nb
import numpy as np

__all__ = [
    "fps_vanilla",
    "fps_grid",
    "fps_batch",
    "knn_brute",
    "knn_grid",
    "knn_batch",
    "run_parallel",
]

_OPTS = dict(nogil=True, cache=True, fastmath=False, boundscheck=False)

_F32 = np.float32
_INF = np.float32(np.inf)
_KNN_BLOCK = 32  # points per block of the k-NN candidate test


@nb.njit(**_OPTS)
def _columns(xyz, order):
    """Rows ``order`` of an (n, 3) array as three contiguous float32 columns (structure of
    arrays: the distance loops then read unit-stride memory)."""
    n = order.shape[0]
    x = np.empty(n, _F32)
    y = np.empty(n, _F32)
    z = np.empty(n, _F32)
    for i in range(n):
        p = order[i]
        x[i] = xyz[p, 0]
        y[i] = xyz[p, 1]
        z[i] = xyz[p, 2]
    return x, y, z


# --------------------------------------------------------------------------------------
# FPS: vanilla O(N*M) loop
# --------------------------------------------------------------------------------------


@nb.njit(**_OPTS)
def fps_vanilla(xyz, m, start, out):
    """Vanilla FPS of one (N, 3) float32 cloud into ``out[:m]`` (int64).

    min-distance array starts at +inf; each step updates it with the last pick and takes
    the first (lowest-index) maximum, like ``np.argmax``.
    """
    n = xyz.shape[0]
    if m <= 0:
        return
    x, y, z = _columns(xyz, np.arange(n))
    dist = np.full(n, _INF, _F32)
    # Distances are >= +0.0 (or +inf), and for such floats the int32 bit patterns order
    # the same way as the values: an integer max reduction vectorises without fast-math.
    bits = dist.view(np.int32)
    cur = start
    out[0] = cur
    for j in range(1, m):
        cx = x[cur]
        cy = y[cur]
        cz = z[cur]
        # 1) min-update (vectorises: no loop-carried dependency)
        for i in range(n):
            dx = x[i] - cx
            dy = y[i] - cy
            dz = z[i] - cz
            d = dx * dx + dy * dy + dz * dz
            dist[i] = d if d < dist[i] else dist[i]
        # 2) the maximum, then its first occurrence (lowest index)
        best = np.int32(-1)
        for i in range(n):
            v = bits[i]
            best = v if v > best else best
        i = 0
        while bits[i] != best:
            i += 1
        cur = i
        out[j] = cur


# --------------------------------------------------------------------------------------
# FPS: exact flat grid buckets
# --------------------------------------------------------------------------------------
#
# QuickFPS-style bucketing, exact. The points are counting-sorted (a stable sort, so every
# bucket keeps ascending original-index order) into the non-empty cells of a uniform grid
# over the cloud's bounding box (the cell size is refined until there are about ``target``
# non-empty cells). Each bucket keeps its tight bounding box, the max of its points'
# min-distances and the lowest original index reaching that max.
#
# After a new centre c is picked, a bucket is updated only if ``lb < max``, where ``lb``
# is the squared distance from c to the bucket's box, computed in float32 with the same
# operations in the same order as a point distance. IEEE rounding is monotone, so
# ``lb <= fl(d(p, c))`` for every point p of the box; when ``lb >= max`` every point has
# ``fl(d(p, c)) >= max >= dist[p]`` and none of them changes: the pruning is exact, not
# approximate. An updated bucket recomputes its (max, argmax) only when the point holding
# its max got closer (otherwise neither changes: distances only decrease, and that point
# was the lowest index at the max). The next pick is the argmax over buckets: the largest
# max, then the lowest original index -- exactly ``np.argmax`` (first occurrence) of the
# vanilla min-distance array.


@nb.njit(**_OPTS)
def _grid_buckets(xyz, target):
    """Counting-sorts the points into the non-empty cells of a uniform grid with about
    ``target`` non-empty cells. Returns (perm, bstart) with bucket b = perm[bstart[b]:
    bstart[b+1]], each bucket in ascending index order."""
    n = xyz.shape[0]
    lx = np.float64(xyz[0, 0])
    ly = np.float64(xyz[0, 1])
    lz = np.float64(xyz[0, 2])
    ux = lx
    uy = ly
    uz = lz
    for i in range(1, n):
        vx = np.float64(xyz[i, 0])
        vy = np.float64(xyz[i, 1])
        vz = np.float64(xyz[i, 2])
        lx = vx if vx < lx else lx
        ux = vx if vx > ux else ux
        ly = vy if vy < ly else ly
        uy = vy if vy > uy else uy
        lz = vz if vz < lz else lz
        uz = vz if vz > uz else uz
    ex = ux - lx
    ey = uy - ly
    ez = uz - lz
    emax = max(ex, max(ey, ez))
    cell = np.empty(n, np.int64)
    perm = np.empty(n, np.int64)
    if not (emax > 0.0) or target <= 1 or emax == np.inf:
        for i in range(n):
            perm[i] = i
        bstart = np.empty(2, np.int64)
        bstart[0] = 0
        bstart[1] = n
        return perm, bstart
    max_cells = 8 * n + 8
    # cell edge h: start coarse, refine until the grid has enough non-empty cells; the
    # last grid whose counts were computed is the one used (cell[] matches it)
    h = emax / max(1.0, target ** (1.0 / 3.0))
    counts = np.zeros(1, np.int64)
    ncell = 0
    for _ in range(40):
        nx = min(int(ex / h) + 1, max_cells)
        ny = min(int(ey / h) + 1, max_cells)
        nz = min(int(ez / h) + 1, max_cells)
        if nx * ny * nz > max_cells:
            if ncell > 0:
                break  # keep the previous (finest allowed) grid
            h *= 1.26
            continue
        ncell = nx * ny * nz
        inv = 1.0 / h
        counts = np.zeros(ncell + 1, np.int64)
        for i in range(n):
            ix = int((np.float64(xyz[i, 0]) - lx) * inv)
            iy = int((np.float64(xyz[i, 1]) - ly) * inv)
            iz = int((np.float64(xyz[i, 2]) - lz) * inv)
            ix = ix if ix < nx else nx - 1
            iy = iy if iy < ny else ny - 1
            iz = iz if iz < nz else nz - 1
            c = (ix * ny + iy) * nz + iz
            cell[i] = c
            counts[c + 1] += 1
        occupied = 0
        for c in range(1, ncell + 1):
            if counts[c] > 0:
                occupied += 1
        if occupied * 2 >= target:
            break
        h *= 0.7937  # 2 ** (-1/3): about twice as many cells
    if ncell == 0:  # no grid fitted (cannot happen for target <= n): one bucket
        for i in range(n):
            perm[i] = i
        bstart = np.empty(2, np.int64)
        bstart[0] = 0
        bstart[1] = n
        return perm, bstart
    # prefix sums -> stable scatter
    for c in range(ncell):
        counts[c + 1] += counts[c]
    nb_ = 0
    for c in range(ncell):
        if counts[c + 1] > counts[c]:
            nb_ += 1
    bstart = np.empty(nb_ + 1, np.int64)
    b = 0
    for c in range(ncell):
        if counts[c + 1] > counts[c]:
            bstart[b] = counts[c]
            b += 1
    bstart[nb_] = n
    pos = counts  # reuse as running write positions
    for i in range(n):
        c = cell[i]
        perm[pos[c]] = i
        pos[c] += 1
    return perm, bstart


@nb.njit(**_OPTS)
def _bucket_arrays(xyz, perm, bstart):
    """Points in bucket order as float32 x, y, z arrays, and each bucket's tight box."""
    n = xyz.shape[0]
    nbk = bstart.shape[0] - 1
    px, py, pz = _columns(xyz, perm)
    lox = np.empty(nbk, _F32)
    loy = np.empty(nbk, _F32)
    loz = np.empty(nbk, _F32)
    hix = np.empty(nbk, _F32)
    hiy = np.empty(nbk, _F32)
    hiz = np.empty(nbk, _F32)
    for b in range(nbk):
        s = bstart[b]
        e = bstart[b + 1]
        ax = px[s]
        bx = ax
        ay = py[s]
        by = ay
        az = pz[s]
        bz = az
        for i in range(s + 1, e):
            v = px[i]
            ax = v if v < ax else ax
            bx = v if v > bx else bx
            v = py[i]
            ay = v if v < ay else ay
            by = v if v > by else by
            v = pz[i]
            az = v if v < az else az
            bz = v if v > bz else bz
        lox[b] = ax
        hix[b] = bx
        loy[b] = ay
        hiy[b] = by
        loz[b] = az
        hiz[b] = bz
    return px, py, pz, lox, loy, loz, hix, hiy, hiz


@nb.njit(**_OPTS)
def _box_lower_bounds(cx, cy, cz, lox, loy, loz, hix, hiy, hiz, lb):
    """lb[b] = squared distance from (cx, cy, cz) to box b, rounded like a point distance
    (so lb[b] <= the float32 distance of every point in the box)."""
    zero = _F32(0.0)
    for b in range(lb.shape[0]):
        gx = lox[b] - cx
        t = cx - hix[b]
        gx = t if t > gx else gx
        gx = gx if gx > zero else zero
        gy = loy[b] - cy
        t = cy - hiy[b]
        gy = t if t > gy else gy
        gy = gy if gy > zero else zero
        gz = loz[b] - cz
        t = cz - hiz[b]
        gz = t if t > gz else gz
        gz = gz if gz > zero else zero
        lb[b] = gx * gx + gy * gy + gz * gz


@nb.njit(**_OPTS)
def fps_grid(xyz, m, start, out, target):
    """Exact FPS of one (N, 3) float32 cloud over flat grid buckets; same result as
    :func:`fps_vanilla`."""
    n = xyz.shape[0]
    if m <= 0:
        return
    perm, bstart = _grid_buckets(xyz, target)
    nbk = bstart.shape[0] - 1
    px, py, pz, lox, loy, loz, hix, hiy, hiz = _bucket_arrays(xyz, perm, bstart)
    bmax = np.full(nbk, _INF, _F32)
    bbits = bmax.view(np.int32)
    barg = np.empty(nbk, np.int64)  # lowest original index at the bucket max
    bpos = np.empty(nbk, np.int64)  # its position in bucket order
    for b in range(nbk):
        barg[b] = perm[bstart[b]]
        bpos[b] = bstart[b]
    dist = np.full(n, _INF, _F32)
    lb = np.empty(nbk, _F32)

    cur = start
    out[0] = cur
    for j in range(1, m):
        cx = xyz[cur, 0]
        cy = xyz[cur, 1]
        cz = xyz[cur, 2]
        # lower bound of the squared distance from c to every bucket box (vectorised)
        _box_lower_bounds(cx, cy, cz, lox, loy, loz, hix, hiy, hiz, lb)
        for b in range(nbk):
            if not (lb[b] < bmax[b]):
                continue
            s = bstart[b]
            e = bstart[b + 1]
            for i in range(s, e):
                dx = px[i] - cx
                dy = py[i] - cy
                dz = pz[i] - cz
                d = dx * dx + dy * dy + dz * dz
                dist[i] = d if d < dist[i] else dist[i]
            if dist[bpos[b]] < bmax[b]:  # the max point moved: recompute
                best = dist[s]
                besti = s
                for i in range(s + 1, e):
                    if dist[i] > best:
                        best = dist[i]
                        besti = i
                bmax[b] = best
                bpos[b] = besti
                barg[b] = perm[besti]
        # argmax over buckets: largest max, then lowest original index (maxima are
        # >= +0.0, so their int32 bit patterns compare like the values; vectorises)
        best = np.int32(-1)
        for b in range(nbk):
            v = bbits[b]
            best = v if v > best else best
        cur = n
        for b in range(nbk):
            a = barg[b]
            cur = a if (bbits[b] == best and a < cur) else cur
        out[j] = cur


@nb.njit(**_OPTS)
def _fps_one(xyz, m, start, out, method, target):
    if method == 0:
        fps_vanilla(xyz, m, start, out)
    else:
        fps_grid(xyz, m, start, out, target)


@nb.njit(parallel=True, nogil=True, cache=True, fastmath=False, boundscheck=False)
def fps_batch(xyz, lengths, m, start, out, methods, targets):
    """FPS of every cloud of a padded (B, N, 3) float32 batch into out (B, m), clouds in
    parallel (numba ``prange`` over B, one thread per cloud). Cloud b is
    ``xyz[b, :lengths[b]]`` (the padding rows are never read); per cloud, methods[b] 0 =
    vanilla, 1 = grid buckets (``targets[b]`` non-empty buckets)."""
    for b in nb.prange(xyz.shape[0]):
        _fps_one(xyz[b, : lengths[b]], m, start, out[b], methods[b], targets[b])


# --------------------------------------------------------------------------------------
# KNN: brute force with a sorted top-k kept by insertion
# --------------------------------------------------------------------------------------


@nb.njit(**_OPTS)
def _insert(topd, topi, k, di, i):
    """Inserts (di, i) into the sorted top-k, dropping the last; after any equal distance
    (i is larger than every index already there). Returns the new k-th distance."""
    t = k - 1
    while t > 0 and topd[t - 1] > di:
        topd[t] = topd[t - 1]
        topi[t] = topi[t - 1]
        t -= 1
    topd[t] = di
    topi[t] = i
    return topd[k - 1]


@nb.njit(**_OPTS)
def knn_brute(xyz, centres, k, out_idx, out_nb):
    """k nearest points of an (N, 3) cloud for each of the (G, 3) centres.

    Distances ascending, ties by lowest index (= a stable argsort of the distances): the
    points are scanned in index order and a point enters the sorted top-k only if it is
    strictly closer than the current k-th, and is inserted after any equal distance.
    Writes ``out_idx`` (G, k) int64 and ``out_nb`` (G, k, 3) = points[idx] - centre.
    """
    n = xyz.shape[0]
    g_count = centres.shape[0]
    x, y, z = _columns(xyz, np.arange(n))
    d = np.empty(n, _F32)
    topd = np.empty(k, _F32)
    topi = np.empty(k, np.int64)
    for g in range(g_count):
        cx = centres[g, 0]
        cy = centres[g, 1]
        cz = centres[g, 2]
        for i in range(n):
            dx = x[i] - cx
            dy = y[i] - cy
            dz = z[i] - cz
            d[i] = dx * dx + dy * dy + dz * dz
        # the first k points, insertion-sorted (stable: strict comparison)
        for i in range(k):
            di = d[i]
            t = i
            while t > 0 and topd[t - 1] > di:
                topd[t] = topd[t - 1]
                topi[t] = topi[t - 1]
                t -= 1
            topd[t] = di
            topi[t] = i
        worst = topd[k - 1]
        i = k
        # head: scalar up to a multiple of the block size
        head = min(n, ((k + _KNN_BLOCK - 1) // _KNN_BLOCK) * _KNN_BLOCK)
        while i < head:
            di = d[i]
            if di < worst:
                worst = _insert(topd, topi, k, di, i)
            i += 1
        # full blocks: a cheap branch-free count of candidates first (most blocks have none)
        while i + _KNN_BLOCK <= n:
            hits = np.int32(0)
            for t in range(_KNN_BLOCK):
                hits += np.int32(1) if d[i + t] < worst else np.int32(0)
            if hits > 0:
                for t in range(_KNN_BLOCK):
                    di = d[i + t]
                    if di < worst:
                        worst = _insert(topd, topi, k, di, i + t)
            i += _KNN_BLOCK
        while i < n:
            di = d[i]
            if di < worst:
                worst = _insert(topd, topi, k, di, i)
            i += 1
        for t in range(k):
            p = topi[t]
            out_idx[g, t] = p
            out_nb[g, t, 0] = x[p] - cx
            out_nb[g, t, 1] = y[p] - cy
            out_nb[g, t, 2] = z[p] - cz


# --------------------------------------------------------------------------------------
# KNN: exact grid-bucket search
# --------------------------------------------------------------------------------------
#
# The cloud is bucketed as for FPS (stable counting sort into non-empty grid cells, tight
# boxes). For each centre: lower bounds ``lb`` to every box (rounded like point distances,
# so ``lb <= d`` for every point of the box); phase 1 scans the bucket with the smallest
# ``lb`` and its neighbours in storage order until at least k points are in the top-k
# list; phase 2 scans every other bucket with ``lb <= worst`` (the current k-th distance).
# A pruned bucket has ``lb > worst``: none of its points can enter, not even on a tie
# (a tie with a lower index would win, hence ``>`` and not ``>=``). The top-k list is
# ordered by (distance, index), so the result equals the stable sort of all distances.


@nb.njit(**_OPTS)
def _insert_lex(topd, topi, k, di, i):
    """Inserts (di, i) into the top-k sorted by (distance, index), dropping the last."""
    t = k - 1
    while t > 0 and (topd[t - 1] > di or (topd[t - 1] == di and topi[t - 1] > i)):
        topd[t] = topd[t - 1]
        topi[t] = topi[t - 1]
        t -= 1
    topd[t] = di
    topi[t] = i


@nb.njit(**_OPTS)
def _scan_bucket(px, py, pz, perm, s, e, cx, cy, cz, topd, topi, k):
    for i in range(s, e):
        dx = px[i] - cx
        dy = py[i] - cy
        dz = pz[i] - cz
        d = dx * dx + dy * dy + dz * dz
        w = topd[k - 1]
        if d < w or (d == w and perm[i] < topi[k - 1]):
            _insert_lex(topd, topi, k, d, perm[i])


@nb.njit(**_OPTS)
def knn_grid(xyz, centres, k, out_idx, out_nb, target):
    """Same result as :func:`knn_brute`, searching grid buckets with exact pruning."""
    n = xyz.shape[0]
    perm, bstart = _grid_buckets(xyz, target)
    nbk = bstart.shape[0] - 1
    px, py, pz, lox, loy, loz, hix, hiy, hiz = _bucket_arrays(xyz, perm, bstart)
    lb = np.empty(nbk, _F32)
    topd = np.empty(k, _F32)
    topi = np.empty(k, np.int64)
    for g in range(centres.shape[0]):
        cx = centres[g, 0]
        cy = centres[g, 1]
        cz = centres[g, 2]
        _box_lower_bounds(cx, cy, cz, lox, loy, loz, hix, hiy, hiz, lb)
        for t in range(k):
            topd[t] = _INF
            topi[t] = n  # sentinel: above every index
        # phase 1: the closest box, then its storage-order neighbours, until >= k points
        b0 = 0
        best = lb[0]
        for b in range(1, nbk):
            if lb[b] < best:
                best = lb[b]
                b0 = b
        blo = b0
        bhi = b0
        _scan_bucket(px, py, pz, perm, bstart[b0], bstart[b0 + 1], cx, cy, cz, topd, topi, k)
        count = bstart[b0 + 1] - bstart[b0]
        while count < k:
            if bhi + 1 < nbk:
                bhi += 1
                _scan_bucket(px, py, pz, perm, bstart[bhi], bstart[bhi + 1], cx, cy, cz, topd, topi, k)
                count += bstart[bhi + 1] - bstart[bhi]
            if count < k and blo > 0:
                blo -= 1
                _scan_bucket(px, py, pz, perm, bstart[blo], bstart[blo + 1], cx, cy, cz, topd, topi, k)
                count += bstart[blo + 1] - bstart[blo]
        # phase 2: every other box that can hold a point at <= the k-th distance
        for b in range(nbk):
            if (b >= blo and b <= bhi) or lb[b] > topd[k - 1]:
                continue
            _scan_bucket(px, py, pz, perm, bstart[b], bstart[b + 1], cx, cy, cz, topd, topi, k)
        for t in range(k):
            p = topi[t]
            out_idx[g, t] = p
            out_nb[g, t, 0] = xyz[p, 0] - cx
            out_nb[g, t, 1] = xyz[p, 1] - cy
            out_nb[g, t, 2] = xyz[p, 2] - cz


@nb.njit(**_OPTS)
def _knn_one(xyz, centres, k, out_idx, out_nb, method, target):
    if method == 0:
        knn_brute(xyz, centres, k, out_idx, out_nb)
    else:
        knn_grid(xyz, centres, k, out_idx, out_nb, target)


@nb.njit(parallel=True, nogil=True, cache=True, fastmath=False, boundscheck=False)
def knn_batch(xyz, lengths, centres, k, out_idx, out_nb, method, targets):
    """k-NN of every cloud of a padded batch, clouds in parallel (numba ``prange`` over
    B). Cloud b is ``xyz[b, :lengths[b]]`` (the padding rows are never read). method 0 =
    brute force, 1 = grid buckets (``targets[b]`` non-empty buckets for cloud b)."""
    for b in nb.prange(xyz.shape[0]):
        _knn_one(xyz[b, : lengths[b]], centres[b], k, out_idx[b], out_nb[b], method, targets[b])


def run_parallel(kernel, *args):
    """Calls a ``parallel=True`` kernel, silencing numba's one-off warning that the
    installed TBB is too old (numba then uses its OpenMP or workqueue layer)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TBB.*", category=nb.NumbaWarning)
        return kernel(*args)
