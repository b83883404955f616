"""The tissue map (HU) of one synthetic scan: body wall, lungs with vessels, mediastinum, heart
with pericardial fat and coronary grooves, great vessels, abdomen, vertebra, ribs and sternum.

Works in the scan-local frame of :mod:`.grid` from the parameters of :mod:`.anatomy`; the
textures (lung vessels, trabecular bone, heart lobes) have their own seeded generators derived
from ``Anatomy.lung_seed``, so they never shift the draws of the anatomy or the plaques.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from cac_lightning.sources.synthetic.anatomy import (
    AORTA_DIR,
    AORTIC_ROOT,
    PULMONARY_DIR,
    PULMONARY_ROOT,
    STERNUM_SEMI_MM,
    SVC_ROOT,
    Anatomy,
    Skeleton,
    Vessel,
)
from cac_lightning.sources.synthetic.grid import Grid, ellipsoid_q, tube_distance

__all__ = ["heart_box", "heart_with_fat", "interp_matrix", "render_anatomy"]


def _ellipse2(grid: Grid, c, ax: float, ay: float, ay_post: float | None = None) -> np.ndarray:
    """Normalised squared radius (n, n) of an axis-aligned ellipse.

    With ``ay_post`` the posterior half (y > centre) has its own semi-axis (an egg-shaped
    chest: flat back, round front).
    """
    x, y = grid.x, grid.y
    dy = y[:, None] - c[1]
    if ay_post is not None:
        ay = np.where(dy > 0, ay_post, ay)
    return ((x[None, :] - c[0]) / ax) ** 2 + (dy / ay) ** 2


def _cylinder(grid: Grid, start, direction, radius: float, length: float):
    """Mask (box-local) and box of a capped cylinder from ``start`` along ``direction``."""
    end = start + length * direction
    lo = np.minimum(start, end) - radius
    hi = np.maximum(start, end) + radius
    box = grid.box(lo, hi)
    if box is None:
        return None, None
    Z, Y, X = grid.coords(box)
    dx, dy, dz = X - start[0], Y - start[1], Z - start[2]
    t = dx * direction[0] + dy * direction[1] + dz * direction[2]
    d2 = dx * dx + dy * dy + dz * dz - t * t
    return (d2 <= radius**2) & (t >= 0) & (t <= length), box


def _paint(vol: np.ndarray, mask, box, value: float) -> None:
    if mask is None:
        return
    vol[box][mask] = value


def interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation weights between cell-centred grids of the same
    extent (also the heart locator's coarse-to-native map)."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = (pos - i0).astype(np.float32)
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), i0] += 1 - w
    m[np.arange(n_out), i1] += w
    return m


def _lung_texture(grid: Grid, seed: int) -> np.ndarray:
    """Smooth random field (nz, n, n) for pulmonary vessels; depends on the FOV, not on n.

    A coarse (2.6 mm in-plane, 4.5 mm in z) Gaussian field, interpolated linearly to the grid
    (separable matrices); thresholded, it gives vessel cross-sections of 2-6 mm.
    """
    rng = np.random.default_rng(seed)
    nc = max(int(grid.fov_mm / 2.6), 4)
    ncz = max(int(grid.nz * grid.slice_mm / 4.5), 2)
    coarse = rng.standard_normal((ncz, nc, nc)).astype(np.float32)
    mx = interp_matrix(grid.n, nc)
    field = np.matmul(np.matmul(mx, coarse), mx.T)  # (ncz, n, n)
    mz = interp_matrix(grid.nz, ncz)
    out = np.tensordot(mz, field, axes=(1, 0))
    # Linear interpolation lowers the variance between lattice points: about unit SD again.
    return out * np.float32(1.0 / 0.55)


def _heart_fields(grid: Grid, box, anat: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """Heart outline and pericardial fat on the heart ``box``.

    The ellipsoid's surface radius is modulated by a few smooth random lobes (+-7 %), so the
    outline is not a perfect ellipse; the epicardial/pericardial fat around it is thin laterally
    (where the heart meets the lung) and thick anteriorly and at the apex, in random lobes, up to
    ``shape["peri_fat"]`` mm, and is painted only where it does not hit the heart.

    Returns:
        ``(q, fat)``: the normalised squared radius of the outline (<= 1 inside the heart) and
        the boolean mask of heart plus its fat.
    """
    rng = np.random.default_rng(anat.lung_seed + 2)
    dirs = rng.normal(size=(6, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    freq = rng.uniform(1.5, 3.5, size=6)
    phase = rng.uniform(0, 2 * np.pi, size=6)
    amp = rng.uniform(0.5, 1.0, size=6) / 6.0
    hc, axes, semi = anat.heart_centre, anat.heart_axes, anat.heart_semi
    mean_semi = float(np.mean(semi))
    # The lobes vary slowly: evaluate them every `step` pixels (>= ~1.5 mm) and repeat.
    step = max(int(1.5 / grid.px), 1)
    Z, Y, X = grid.coords(box)
    Yc, Xc = Y[:, ::step], X[:, :, ::step]
    dx, dy, dz = Xc - np.float32(hc[0]), Yc - np.float32(hc[1]), Z - np.float32(hc[2])
    ts = [
        (dx * a[0] + dy * a[1] + dz * a[2]) / np.float32(sm)
        for a, sm in zip(axes, semi, strict=True)
    ]
    r = np.sqrt(ts[0] * ts[0] + ts[1] * ts[1] + ts[2] * ts[2]) + np.float32(1e-6)
    lobes = []
    for ks in (range(3), range(3, 6)):
        lobe = np.zeros_like(r)
        for k in ks:
            proj = (ts[0] * dirs[k, 0] + ts[1] * dirs[k, 1] + ts[2] * dirs[k, 2]) / r
            lobe += np.float32(amp[k]) * np.cos(np.float32(freq[k]) * proj + np.float32(phase[k]))
        lobes.append(lobe)
    radius = 1.0 + 0.14 * lobes[0]  # lobes are in about [-0.5, 0.5]
    ant = np.clip(-dy / (r * mean_semi), 0, 1) + 0.5 * np.clip(-dz / (r * mean_semi), 0, 1)
    thick = anat.shape["peri_fat"] * np.clip(0.15 + 0.9 * ant + 1.2 * lobes[1], 0.0, 1.6)
    limit = ((1.0 + thick / mean_semi) * radius) ** 2

    def full(a: np.ndarray) -> np.ndarray:
        shape = (Z.shape[0], Y.shape[1], X.shape[2])
        return np.repeat(np.repeat(a, step, 1), step, 2)[:, : shape[1], : shape[2]]

    q = ellipsoid_q(grid, box, hc, axes, semi)
    q_out = q / full(radius * radius)
    return q_out, q <= full(limit)


def heart_box(grid: Grid, anat: Anatomy) -> tuple[slice, slice, slice] | None:
    """Index box (z, y, x slices) in which the heart and its fat are painted (None: off-grid)."""
    hc = anat.heart_centre
    return grid.box(hc - 75 * anat.heart_scale, hc + 75 * anat.heart_scale)


def heart_with_fat(grid: Grid, anat: Anatomy) -> np.ndarray:
    """Exact heart plus pericardial fat mask (nz, n, n) bool, as :func:`render_anatomy` paints it.

    Read-only: draws nothing from the anatomy's generators that the render would not draw.
    """
    out = np.zeros(grid.shape, dtype=bool)
    box = heart_box(grid, anat)
    if box is not None:
        out[box] = _heart_fields(grid, box, anat)[1]
    return out


def _trabecular(grid: Grid, mask: np.ndarray, seed: int) -> np.ndarray:
    """Trabecular texture (HU, (nz, k)) for the ``mask`` pixels of cancellous bone.

    A ~0.8 mm-correlated Gaussian field on a fixed 0.4 mm lattice, skewed towards dark marrow
    spaces (SD ~60 HU), sampled at the pixels of ``mask``; independent of the matrix size.
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return np.zeros((grid.nz, 0), dtype=np.float32)
    lat = 0.4
    px0, py0 = grid.x[xs], grid.y[ys]
    ox, oy = float(px0.min()), float(py0.min())
    w = int((px0.max() - ox) / lat) + 2
    h = int((py0.max() - oy) / lat) + 2
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((grid.nz, h, w)).astype(np.float32)
    f = ndi.gaussian_filter(f, (0.4, 2.0, 2.0), mode="wrap")
    f /= max(float(f.std()), 1e-6)
    f = np.where(f < 0, 1.6 * f, 0.7 * f)
    ii = np.clip(np.rint((py0 - oy) / lat).astype(int), 0, h - 1)
    jj = np.clip(np.rint((px0 - ox) / lat).astype(int), 0, w - 1)
    return (55.0 * f[:, ii, jj]).astype(np.float32)


def _lattice_field(
    grid: Grid,
    ys: np.ndarray,
    xs: np.ndarray,
    lat: float,
    rng: np.random.Generator,
    zs: np.ndarray | None = None,
) -> np.ndarray:
    """Smooth random field, about unit SD, at the in-plane pixels ``(ys, xs)``.

    White noise on a fixed ``lat`` mm lattice covering those pixels (all slices), interpolated
    bilinearly in-plane: correlated over about ``lat`` mm whatever the matrix size, and cheap
    (no filtering; the lattice covers only the pixels' bounding box).

    Returns:
        (nz, k) values at every slice; with ``zs`` (k,) the values at the voxels
        ``(zs, ys, xs)`` only, (k,).
    """
    if ys.size == 0:
        return np.zeros((grid.nz, 0) if zs is None else 0, dtype=np.float32)
    py, px = grid.y[ys], grid.x[xs]
    oy, ox = float(py.min()), float(px.min())
    h = int((py.max() - oy) / lat) + 2
    w = int((px.max() - ox) / lat) + 2
    f = rng.standard_normal((grid.nz, h, w), dtype=np.float32)
    fy, fx = (py - oy) / lat, (px - ox) / lat
    i0, j0 = np.minimum(fy.astype(int), h - 2), np.minimum(fx.astype(int), w - 2)
    wy, wx = (fy - i0).astype(np.float32), (fx - j0).astype(np.float32)
    z = slice(None) if zs is None else zs
    out = (1 - wy) * ((1 - wx) * f[z, i0, j0] + wx * f[z, i0, j0 + 1]) + wy * (
        (1 - wx) * f[z, i0 + 1, j0] + wx * f[z, i0 + 1, j0 + 1]
    )
    # Bilinear weights lower the variance (to 4/9 on average): about unit SD again.
    return out * np.float32(1.5)


def _spongy(field: np.ndarray) -> np.ndarray:
    """Marrow texture (HU) from a unit field: skewed to dark marrow spaces, SD ~55 HU."""
    return (55.0 * np.where(field < 0, 1.6 * field, 0.7 * field)).astype(np.float32)


def _cartilage(
    grid: Grid,
    zs: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    qr: np.ndarray,
    skel: Skeleton,
    base: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Costal cartilage CT numbers (k,) at the voxels ``(zs, ys, xs)``.

    Uncalcified cartilage is ``base`` (~105 HU, below the calcium threshold). Calcification is
    patchy: a smooth random field (~1.6 mm) above a threshold set so that about
    ``skel.cartilage_extent`` of the cartilage calcifies, rising to ``skel.cartilage_hu``;
    "rim" keeps it to the cartilage's surface (``qr``: normalised squared radius in the rib
    cross-section), "dense" lets it fill the core too. The field is drawn whatever the mode, so
    the draws that follow do not depend on it.
    """
    f = _lattice_field(grid, ys, xs, 1.6, rng, zs)
    if skel.cartilage_mode == "none" or skel.cartilage_extent <= 0:
        return np.full(qr.shape, base, dtype=np.float32)
    from scipy.special import ndtri

    t = float(ndtri(1.0 - min(skel.cartilage_extent, 0.999)))
    s = np.clip((f - np.float32(t)) / np.float32(0.5), 0.0, 1.0)
    if skel.cartilage_mode == "rim":
        s = s * np.clip((qr - np.float32(0.35)) / np.float32(0.3), 0.0, 1.0)
    return (base + (skel.cartilage_hu - base) * s).astype(np.float32)


def _sternum(
    vol: np.ndarray,
    grid: Grid,
    centre,
    anat: Anatomy,
    xiphoid_z: float,
    skel: Skeleton,
    rng: np.random.Generator,
) -> None:
    """Paint the sternum above the xiphoid level (in place).

    A flattened, rounded-rectangular cross-section (superellipse, exponent 2.6) whose width
    changes along z (wider manubrium at the top, waisted segments), a cortical shell of 1.2-2 mm
    around textured marrow, and after a sternotomy a soft-tissue gap of ~1.5 mm at the midline.
    """
    v = anat.values
    above = np.nonzero(grid.z > xiphoid_z)[0]  # a run of top slices (z ascends)
    if above.size == 0:
        return
    z0 = int(above[0])
    a0, b0 = (s * anat.body_scale for s in STERNUM_SEMI_MM)
    period, phase = rng.uniform(22.0, 32.0), rng.uniform(0.0, 2 * np.pi)
    manubrium_z = xiphoid_z + rng.uniform(70.0, 110.0)
    cortex = float(rng.uniform(1.2, 2.0))
    zs = grid.z[above]
    width = 1.0 + 0.1 * np.sin(2 * np.pi * zs / period + phase)
    width += 0.35 * np.clip((zs - manubrium_z) / 25.0, 0.0, 1.0)
    box = grid.box(
        np.array([centre[0] - 1.5 * a0, centre[1] - b0 - 2.0, 0.0]),
        np.array([centre[0] + 1.5 * a0, centre[1] + b0 + 2.0, 0.0]),
    )
    if box is None:
        return
    ys, xs = box[1], box[2]
    dx = grid.x[xs][None, None, :] - np.float32(centre[0])
    dy = grid.y[ys][None, :, None] - np.float32(centre[1])
    a = (a0 * width).astype(np.float32)[:, None, None]

    def q(da: float) -> np.ndarray:
        return np.abs(dx / (a - da)) ** 2.6 + np.abs(dy / np.float32(b0 - da)) ** 2.6

    outer, inner = q(0.0) <= 1, q(cortex) <= 1
    yy, xx = np.mgrid[ys, xs]
    tex = _spongy(_lattice_field(grid, yy.ravel(), xx.ravel(), 0.5, rng))
    marrow = (v["marrow"] + tex).reshape(grid.nz, *yy.shape)[z0:]
    sub = vol[z0:, ys, xs]
    sub = np.where(outer, np.float32(v["cortical"] + 50.0), sub)
    sub = np.where(inner, marrow, sub)
    if skel.sternotomy:
        sub = np.where(outer & (np.abs(dx) < 0.75), np.float32(v["muscle"]), sub)
    vol[z0:, ys, xs] = sub


def render_anatomy(
    anat: Anatomy, grid: Grid, tree: dict[str, Vessel], skeleton: Skeleton | None = None
) -> np.ndarray:
    """Tissue CT numbers (HU) on the grid, before calcium, scanner blur and noise.

    Args:
        anat: the scan's anatomy.
        grid: the voxel grid.
        tree: coronary centre-lines from :func:`coronary_tree`.
        skeleton: bone textures, cartilage calcification and sternotomy (None: no
            calcification, textures seeded from the anatomy).

    Returns:
        float32 array (nz, n, n) in HU.
    """
    v, sh = anat.values, anat.shape
    vol = np.full(grid.shape, v["air"], dtype=np.float32)
    Z = grid.z[:, None, None]

    # Body wall: skin/fat, muscle, rib zone, pleural cavity (elliptic cylinders).
    bc, ax, ay, ap = sh["body_c"], sh["body_ax"], sh["body_ay"], sh["body_ay_post"]
    body = _ellipse2(grid, bc, ax, ay, ap) <= 1
    d1, d2 = sh["fat"], sh["fat"] + sh["muscle"]
    d3 = d2 + sh["ribzone"]
    muscle = _ellipse2(grid, bc, ax - d1, ay - d1, ap - d1) <= 1
    ribring = _ellipse2(grid, bc, ax - d2, ay - d2, ap - d2) <= 1
    cavity = _ellipse2(grid, bc, ax - d3, ay - d3, ap - d3) <= 1
    vol[:, body] = v["fat"]
    vol[:, muscle] = v["muscle"]

    # Mediastinum: everything between the lungs (3D mask).
    hc = anat.heart_centre
    spc, spr = sh["spine_c"], sh["spine_r"]
    x, y = grid.x[None, :], grid.y[:, None]
    medial_x = 0.5 * (hc[0] + spc[0])
    half_width = (14.0 + 10.0 * np.clip((y - hc[1]) / 60.0, 0, 1)) * anat.body_scale
    band = np.abs(x - medial_x) < half_width
    mediastinum = np.broadcast_to(band, grid.shape).copy()
    h_box = heart_box(grid, anat)
    axes, semi = anat.heart_axes, anat.heart_semi
    if h_box is not None:
        q_heart, peri = _heart_fields(grid, h_box, anat)
        mediastinum[h_box] |= peri
    aao_start = anat.to_scan(AORTIC_ROOT)
    aao_dir = anat.dir_to_scan(AORTA_DIR)
    pt_start = anat.to_scan(PULMONARY_ROOT)
    pt_dir = anat.dir_to_scan(PULMONARY_DIR)
    svc_start = anat.to_scan(SVC_ROOT)
    top = float(grid.z[-1]) + 10.0
    vessels3d = [
        (aao_start, aao_dir, sh["aao_r"], top - aao_start[2]),
        (pt_start, pt_dir, sh["pt_r"], top - pt_start[2]),
        (svc_start, np.array([0.0, 0.0, 1.0]), sh["svc_r"], top - svc_start[2]),
    ]
    dao = np.array([sh["dao_c"][0], sh["dao_c"][1], float(grid.z[0]) - 10.0])
    dao_dir = np.array([0.0, 0.0, 1.0])
    dao_len = grid.nz * grid.slice_mm + 20.0
    for start, d, r, length in [*vessels3d, (dao, dao_dir, sh["dao_r"], dao_len)]:
        if length <= 0:
            continue
        m, box = _cylinder(grid, start, d, r + 4.0, length)
        if m is not None:
            mediastinum[box] |= m
    spine2 = _ellipse2(grid, spc, spr[0] + 10.0, spr[1] + 14.0) <= 1
    mediastinum[:, spine2] = True

    # Diaphragm domes: abdomen below them (liver on the right).
    rd = 110.0 * anat.body_scale
    dome_r = sh["dome_r"] - ((x + 45 * anat.body_scale) ** 2 + (y - 10) ** 2) / (2 * rd)
    dome_l = sh["dome_l"] - ((x - 50 * anat.body_scale) ** 2 + (y - 10) ** 2) / (2 * rd)
    below = Z < np.maximum(dome_r, dome_l)[None]

    inside = np.broadcast_to(cavity, grid.shape)
    lungs = inside & ~mediastinum & ~below
    tex = _lung_texture(grid, anat.lung_seed)
    # Vessels: larger and denser towards the hila (threshold falls near the mediastinum);
    # parenchyma denser posteriorly (dependent lung).
    hilum = np.exp(-np.abs(x - medial_x) / (45.0 * anat.body_scale))
    thr = (2.1 - 0.8 * hilum).astype(np.float32)
    dep = (70.0 * np.clip((y - bc[1] + 20.0) / (ap + 20.0), 0.0, 1.0) ** 2).astype(np.float32)
    zl, yl, xl = np.nonzero(lungs)  # only lung voxels: a third of the volume or less
    tl = tex[zl, yl, xl]
    paren = np.float32(v["lung"]) + dep[yl, 0] + 12.0 * tl
    frac = np.clip((tl - thr[0, xl]) / np.float32(0.35), 0.0, 1.0)
    vol[inside] = v["fat"]
    vol[zl, yl, xl] = paren + (np.float32(v["vessel"]) - paren) * frac
    abdomen = inside & below
    liver_side = np.broadcast_to((x < medial_x + 15.0)[None], grid.shape)
    vol[abdomen & liver_side] = v["liver"]
    vol[abdomen & ~liver_side] = v["abdomen"]

    # Great vessels (non-contrast blood); the descending aorta comes after the heart.
    for start, d, r, length in vessels3d:
        if length > 0:
            m, box = _cylinder(grid, start, d, r, length)
            _paint(vol, m, box, v["blood"])

    # Heart: myocardium, blood-filled chambers, fat grooves and coronary vessels.
    if h_box is not None:
        _paint(vol, q_heart <= 1, h_box, v["myocardium"])
        # Chambers: centre offset (fraction of the semi-axes along w, u, v) and size.
        for off, scale in (
            ((0.15, 0.05, 0.12), (0.55, 0.5, 0.45)),  # LV
            ((0.05, -0.45, -0.1), (0.5, 0.35, 0.45)),  # RV
            ((-0.6, 0.35, 0.1), (0.35, 0.45, 0.5)),  # LA
            ((-0.45, -0.1, -0.55), (0.35, 0.4, 0.4)),  # RA
        ):
            c = hc + (np.asarray(off) * semi) @ axes
            c_semi = semi * np.asarray(scale)
            c_box = grid.box(c - c_semi.max(), c + c_semi.max())  # the chamber's own box
            if c_box is not None:
                qc = ellipsoid_q(grid, c_box, c, axes, c_semi)
                _paint(vol, qc <= 1, c_box, v["blood"])
        for start, d, r, length in vessels3d[:1]:
            m, box = _cylinder(grid, start - 8.0 * d, d, r, length + 8.0)
            _paint(vol, m, box, v["blood"])
    for r, value in ((sh["dao_r"] + 1.5, v["fat"]), (sh["dao_r"], v["blood"])):
        m, box = _cylinder(grid, dao, dao_dir, r, dao_len)
        _paint(vol, m, box, value)
    g_rng = np.random.default_rng(anat.lung_seed + 3)
    g_r = float(g_rng.uniform(4.0, 6.5))  # fat groove radius (mm)
    cleft = float(g_rng.uniform(3.0, 7.0)) * anat.heart_scale  # depth of the groove fat (mm)
    for ves in tree.values():
        if ves.name != "LM":  # fat cleft from the groove towards the heart centre (AV, IV grooves)
            inward = hc - ves.points
            inward /= np.linalg.norm(inward, axis=1, keepdims=True)
            r_c = 0.55 * g_r * anat.heart_scale
            d_c, box_c = tube_distance(grid, ves.points[::2] + cleft * inward[::2], reach=r_c)
            if d_c.size:
                sub = vol[box_c]
                sub[(d_c <= r_c) & (sub > v["fat"])] = v["fat"]
        dist, box = tube_distance(grid, ves.points, reach=(g_r + 1.5) * anat.heart_scale)
        if dist.size:
            groove = dist <= g_r * anat.heart_scale
            sub = vol[box]
            sub[groove & (sub > v["fat"])] = v["fat"]
            sub[dist <= float(ves.radius.mean())] = v["vessel"]

    # Bone: vertebra, ribs (helical bands in the rib zone), sternum; costal cartilage.
    qv = _ellipse2(grid, spc, spr[0], spr[1])
    canal_c = (spc[0], spc[1] + spr[1] + 9.0 * anat.body_scale)
    qc = _ellipse2(grid, canal_c, 8.0 * anat.body_scale, 8.0 * anat.body_scale)
    qa = _ellipse2(grid, canal_c, 14.0 * anat.body_scale, 13.0 * anat.body_scale)
    vol[:, qa <= 1] = v["cortical"] - 150.0
    vol[:, qc <= 1] = v["csf"]
    vol[:, qv <= 1] = v["cortical"]
    inner = _ellipse2(grid, spc, spr[0] - 2.0, spr[1] - 2.0) <= 1
    vol[:, inner] = v["cancellous"] + _trabecular(grid, inner, anat.lung_seed + 1)

    skel = skeleton or Skeleton(0.0, "none", 0.0, 0.0, False, anat.lung_seed + 4)
    zone = ribring & ~cavity
    yy, xx = np.nonzero(zone)
    phi = np.arctan2(grid.y[yy] - bc[1], grid.x[xx] - bc[0])  # 0 = patient left, pi/2 = posterior
    from_post = np.abs(np.angle(np.exp(1j * (phi - np.pi / 2))))
    dm = d2 + 0.5 * sh["ribzone"]
    rr = np.sqrt(_ellipse2(grid, bc, ax - dm, ay - dm, ap - dm)[yy, xx])
    radial = (rr - 1.0) * np.where(grid.y[yy] > bc[1], ap - dm, 0.5 * (ax + ay) - dm)
    half_h = 4.5 * anat.body_scale
    w = np.mod(
        Z.reshape(-1, 1) - sh["rib_slope"] * from_post[None] - sh["rib_phase"], sh["rib_period"]
    )
    qr = (radial[None] / 3.5) ** 2 + ((w - half_h) / half_h) ** 2
    near_spine = (from_post < np.deg2rad(12))[None]
    zr, kr = np.nonzero((qr <= 1) & ~near_spine)  # rib voxels: slice, zone pixel
    qv = qr[zr, kr]
    ant = from_post[kr] > np.deg2rad(150)  # the anterior arc is costal cartilage
    t_rng = np.random.default_rng(skel.seed)
    yb, xb, zb = yy[kr[~ant]], xx[kr[~ant]], zr[~ant]
    bone = _spongy(_lattice_field(grid, yb, xb, 0.6, t_rng, zb)) + np.float32(v["marrow"])
    bone = np.where(qv[~ant] > 0.45, np.float32(v["cortical"]), bone)
    ya, xa, za = yy[kr[ant]], xx[kr[ant]], zr[ant]
    vol[zb, yb, xb] = bone
    vol[za, ya, xa] = _cartilage(grid, za, ya, xa, qv[ant], skel, v["cartilage"], t_rng)

    _sternum(vol, grid, anat.sternum_centre, anat, sh["xiphoid_z"], skel, t_rng)
    return vol
