"""Connected components of the few calcium voxels of a scan, without a dense pass.

Calcium is a tiny fraction of a CT volume, so components are found on the sorted
flat indices of the foreground voxels: neighbours are looked up with
``np.searchsorted`` for a half-neighbourhood of offsets, and the resulting graph is
split by ``scipy.sparse.csgraph.connected_components``. Voxels of different vessels
are never connected. Cost is O(n log n) in the number n of calcium voxels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["INPLANE_8", "LESION_6", "Z_LINK", "components", "neighbour_pairs"]

Offset = tuple[int, int, int]

INPLANE_8: tuple[Offset, ...] = ((0, 0, 1), (0, 1, -1), (0, 1, 0), (0, 1, 1))
"""Half of the in-plane 8-neighbourhood (dz, dy, dx): 2D components per slice."""

LESION_6: tuple[Offset, ...] = ((0, 0, 1), (0, 1, 0), (1, 0, 0))
"""Half of the 6-neighbourhood: 3D lesions of Hong et al. 2022 (section 2.3)."""

Z_LINK: tuple[Offset, ...] = ((1, 0, 0),)
"""The voxel in the next slice: links 2D components into 3D lesions."""


def neighbour_pairs(
    flat: np.ndarray,
    group: np.ndarray,
    shape: tuple[int, int, int],
    offsets: tuple[Offset, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of foreground voxels that are neighbours and share a group.

    Args:
        flat: (n,) sorted, unique flat indices into a C-ordered array of ``shape``.
        group: (n,) group of each voxel (the vessel label); pairs never cross groups.
        shape: (z, y, x) of the volume.
        offsets: (dz, dy, dx) offsets, one of each +/- pair.

    Returns:
        ``(i, j)``: int64 (m,) positions into ``flat`` of each neighbouring pair.
    """
    nz, ny, nx = shape
    z, rem = np.divmod(flat, ny * nx)
    y, x = np.divmod(rem, nx)
    src, dst = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for dz, dy, dx in offsets:
        ok = np.ones(flat.shape, bool)
        for coord, d, size in ((z, dz, nz), (y, dy, ny), (x, dx, nx)):
            if d > 0:
                ok &= coord < size - d
            elif d < 0:
                ok &= coord >= -d
        i = np.flatnonzero(ok)
        target = flat[i] + (dz * ny + dy) * nx + dx
        j = np.searchsorted(flat, target)
        j_clip = np.minimum(j, len(flat) - 1)
        hit = (j < len(flat)) & (flat[j_clip] == target) & (group[j_clip] == group[i])
        src.append(i[hit])
        dst.append(j_clip[hit])
    return np.concatenate(src), np.concatenate(dst)


def components(n: int, i: np.ndarray, j: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of an undirected graph on ``n`` nodes.

    Args:
        n: number of nodes.
        i, j: (m,) edge end points.

    Returns:
        ``(count, label)``: label (n,) int64 in 0..count-1, numbered in order of each
        component's lowest node, so raster order when nodes are sorted voxels.
    """
    if n == 0:
        return 0, np.empty(0, np.int64)
    from scipy.sparse import coo_matrix  # imported here: keeps `import scoring` light
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    count, label = connected_components(graph, directed=False)
    _, first = np.unique(label, return_index=True)  # lowest node of each label
    rank = np.empty(count, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(count)
    return int(count), rank[label]
