"""Thoracic anatomy of the synthetic gated cardiac CT: parameters, coronary tree, tissue map.

Everything is in the scan-local frame of :mod:`.grid` (mm; x patient left, y posterior,
z superior; in-plane origin at the FOV centre, z origin at the heart centre). The heart and its
coronary tree are described in a canonical frame (an average adult heart, long axis pointing
left, anterior and inferior) and placed in each scan by a random scale, rotation and shift.
Tissue values are non-contrast CT numbers measured on the COCA sample (see docs/synthetic.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.interpolate import CubicSpline

from cac_lightning.sources.synthetic.grid import Grid, ellipsoid_q, tube_distance

__all__ = [
    "HU",
    "SLICE_MM",
    "Anatomy",
    "Vessel",
    "coronary_tree",
    "render_anatomy",
    "sample_anatomy",
]

SLICE_MM = 3.0  # slice spacing and thickness of the COCA gated scans (mm)

# Non-contrast CT numbers (HU); lung, fat and soft tissue are the COCA medians (docs/synthetic.md).
HU = {
    "air": -1000.0,
    "lung": -820.0,
    "fat": -105.0,
    "muscle": 40.0,
    "myocardium": 44.0,
    "blood": 40.0,
    "liver": 55.0,
    "abdomen": 35.0,
    "vessel": 30.0,
    "csf": 15.0,
    "cancellous": 200.0,
    "cortical": 600.0,
    "marrow": 170.0,
    "cartilage": 105.0,
}

# Canonical heart (mm, heart centre at 0): long axis base->apex, semi-axes along (w, u, v).
_W0 = np.array([0.62, -0.62, -0.48]) / np.linalg.norm([0.62, -0.62, -0.48])
_U0 = np.array([0.0, -1.0, 0.0]) - np.dot([0.0, -1.0, 0.0], _W0) * _W0
_U0 /= np.linalg.norm(_U0)
_V0 = np.cross(_W0, _U0)
HEART_AXES = np.stack([_W0, _U0, _V0])
HEART_SEMI = np.array([70.0, 42.0, 62.0])
AORTIC_ROOT = np.array([-5.0, 2.0, 34.0])  # aortic valve centre
AORTA_DIR = np.array([-0.12, -0.10, 1.0]) / np.linalg.norm([-0.12, -0.10, 1.0])
PULMONARY_ROOT = np.array([16.0, -26.0, 36.0])
PULMONARY_DIR = np.array([0.25, 0.45, 1.0]) / np.linalg.norm([0.25, 0.45, 1.0])
SVC_ROOT = np.array([-34.0, 6.0, 36.0])
MITRAL_CENTRE = np.array([14.0, 18.0, 16.0])

# Coronary control points (canonical mm); from the given index on they are projected onto the
# heart surface (the ostia and LM stay at the aortic root).
_LM = [(7.0, 6.0, 36.0), (12.0, 4.0, 35.5), (17.0, 1.0, 35.0)]
_LAD = [
    (17.0, 1.0, 35.0),
    (23.0, -11.0, 32.0),
    (28.0, -24.0, 24.0),
    (33.0, -33.0, 10.0),
    (37.0, -36.0, -6.0),
    (39.0, -34.0, -20.0),
    (40.0, -28.0, -32.0),
]
_CX = [
    (17.0, 1.0, 35.0),
    (25.0, 9.0, 30.0),
    (33.0, 19.0, 22.0),
    (35.0, 30.0, 12.0),
    (28.0, 40.0, 3.0),
    (16.0, 45.0, -3.0),
]
_RCA = [
    (-13.0, -11.0, 32.0),
    (-21.0, -24.0, 28.0),
    (-36.0, -24.0, 16.0),
    (-45.0, -12.0, 0.0),
    (-45.0, 4.0, -16.0),
    (-35.0, 19.0, -28.0),
    (-18.0, 30.0, -34.0),
]
_TREE = {"LM": (_LM, 0), "LAD": (_LAD, 1), "CX": (_CX, 1), "RCA": (_RCA, 1)}
# Lumen radius (mm) at the start and end of each vessel.
_RADIUS = {"LM": (2.2, 2.0), "LAD": (1.9, 1.0), "CX": (1.8, 1.1), "RCA": (2.0, 1.2)}


@dataclass(frozen=True)
class Vessel:
    """A coronary centre-line sampled every ~0.5 mm.

    Attributes:
        name: "LM", "LAD", "CX" or "RCA".
        points: (K, 3) positions (x, y, z) mm in the scan-local frame.
        radius: (K,) lumen radius (mm).
        arclen: (K,) arc length from the ostium (mm).
    """

    name: str
    points: np.ndarray
    radius: np.ndarray
    arclen: np.ndarray

    @property
    def length(self) -> float:
        return float(self.arclen[-1])

    def at(self, s: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Position, unit tangent and radius at arc length ``s`` (mm)."""
        s = float(np.clip(s, 0.0, self.length))
        k = int(np.clip(np.searchsorted(self.arclen, s), 1, len(self.arclen) - 1))
        t = self.points[k] - self.points[k - 1]
        f = (s - self.arclen[k - 1]) / max(self.arclen[k] - self.arclen[k - 1], 1e-9)
        p = self.points[k - 1] + f * t
        r = self.radius[k - 1] + f * (self.radius[k] - self.radius[k - 1])
        return p, t / np.linalg.norm(t), float(r)


@dataclass(frozen=True)
class Anatomy:
    """Per-scan anatomical parameters (independent of the grid size).

    Attributes:
        fov_mm: in-plane field of view (mm).
        n_slices: number of 3 mm slices.
        z0_mm: local z of the first (most inferior) slice.
        body_scale: body size relative to an average adult.
        heart_scale: heart size relative to the canonical heart.
        heart_centre: (3,) heart centre (x, y, z=0) in mm.
        heart_rot: (3, 3) rotation applied to the canonical heart.
        values: tissue CT numbers (HU) for this scan.
        shape: body, chest wall, spine, aorta, diaphragm and rib parameters (mm).
        lung_seed: seed of the pulmonary vessel texture.
    """

    fov_mm: float
    n_slices: int
    z0_mm: float
    body_scale: float
    heart_scale: float
    heart_centre: np.ndarray
    heart_rot: np.ndarray
    values: dict
    shape: dict
    lung_seed: int

    def to_scan(self, p) -> np.ndarray:
        """Map canonical heart coordinates (..., 3) to the scan-local frame."""
        p = np.asarray(p, dtype=np.float64)
        return self.heart_centre + self.heart_scale * (p @ self.heart_rot.T)

    def dir_to_scan(self, d) -> np.ndarray:
        """Rotate a canonical direction into the scan-local frame."""
        return np.asarray(d, dtype=np.float64) @ self.heart_rot.T

    @property
    def heart_axes(self) -> np.ndarray:
        """(3, 3) heart principal directions (rows) in the scan frame."""
        return HEART_AXES @ self.heart_rot.T

    @property
    def heart_semi(self) -> np.ndarray:
        return HEART_SEMI * self.heart_scale


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation matrix from angles (radians) about x, then y, then z."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


def sample_anatomy(rng: np.random.Generator, fov_mm=(165.0, 230.0), n_slices=(40, 60)) -> Anatomy:
    """Draw one patient's anatomy.

    The number of draws never depends on the grid size, so a scan keeps its anatomy at any
    ``--size``.

    Args:
        rng: the scan's generator.
        fov_mm: (low, high) field of view range (mm); COCA: 164-243 mm.
        n_slices: (low, high) inclusive slice count range; COCA: 46-57.
    """
    fov = float(rng.uniform(*fov_mm))
    nz = int(rng.integers(n_slices[0], n_slices[1] + 1))
    b = fov / 172.0 * float(rng.uniform(0.93, 1.07))
    s = b * float(rng.uniform(1.08, 1.25))
    centre = np.array([rng.normal(0.03, 0.03) * fov, rng.normal(-0.09, 0.025) * fov, 0.0])
    rot = _rotation(rng.normal(0, 0.08), rng.normal(0, 0.08), rng.normal(0, 0.14))
    # Put the heart centre about mid-volume with some craniocaudal shift.
    z0 = -(nz - 1) * SLICE_MM / 2 + float(rng.normal(2.0, 6.0))
    jitter = {k: float(rng.normal(0, 1)) for k in HU}
    values = {k: v + 4.0 * jitter[k] for k, v in HU.items()}
    values["lung"] = HU["lung"] + 25.0 * jitter["lung"]
    values["cortical"] = HU["cortical"] + 80.0 * jitter["cortical"]
    values["cancellous"] = HU["cancellous"] + 30.0 * jitter["cancellous"]
    values["marrow"] = HU["marrow"] + 20.0 * jitter["marrow"]
    shape = {
        "body_c": (b * rng.normal(-6, 4), b * rng.normal(38, 4)),
        "body_ax": b * rng.uniform(135, 150),
        "body_ay": b * rng.uniform(130, 142),
        "body_ay_post": b * rng.uniform(74, 82),
        "fat": rng.uniform(5, 18) * b,
        "muscle": rng.uniform(3, 7) * b,
        "ribzone": 11.0 * b,
        "spine_c": (b * rng.normal(-3, 3), b * rng.normal(58, 3)),
        "spine_r": (b * rng.uniform(17, 21), b * rng.uniform(14, 17)),
        "dao_c": (b * rng.normal(21, 3), b * rng.normal(44, 3)),
        "dao_r": b * rng.uniform(10.5, 13.5),
        "aao_r": b * rng.uniform(13, 17),
        "pt_r": b * rng.uniform(12, 15),
        "svc_r": b * rng.uniform(8, 10),
        "peri_fat": rng.uniform(4.0, 13.0),
        "dome_r": float(rng.normal(-18, 7)),
        "dome_l": float(rng.normal(-30, 7)),
        "rib_phase": rng.uniform(0, 26.0),
        "rib_period": rng.uniform(23, 28) * b,
        "rib_slope": rng.uniform(22, 32),
        "xiphoid_z": float(rng.normal(-25, 8)),
    }
    centre, s = _fit_heart(centre, s, rot, shape)
    return Anatomy(
        fov_mm=fov,
        n_slices=nz,
        z0_mm=z0,
        body_scale=b,
        heart_scale=s,
        heart_centre=centre,
        heart_rot=rot,
        values=values,
        shape=shape,
        lung_seed=int(rng.integers(2**31)),
    )


def _egg_q(xy: np.ndarray, c, ax: float, ay: float, ap: float) -> np.ndarray:
    """Normalised squared radius of points (N, 2) in an egg-shaped ellipse (see _ellipse2)."""
    dy = xy[:, 1] - c[1]
    return ((xy[:, 0] - c[0]) / ax) ** 2 + (dy / np.where(dy > 0, ap, ay)) ** 2


def _fit_heart(centre: np.ndarray, scale: float, rot: np.ndarray, sh: dict):
    """Move the heart back (and shrink it) until it clears the chest wall and the spine.

    The heart plus its coronary grooves keeps 3 mm from the pleural cavity wall (so the LAD
    never runs through a rib or the sternum) and 4 mm from the vertebra. The descending aorta is
    painted after the heart, so it may indent the heart's posterior (left atrial) wall.

    Returns:
        ``(centre, scale)``.
    """
    u = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    v = np.linspace(-0.95, 0.95, 13)
    uu, vv = np.meshgrid(u, v)
    sphere = np.stack([np.sqrt(1 - vv**2) * np.cos(uu), np.sqrt(1 - vv**2) * np.sin(uu), vv])
    unit = sphere.reshape(3, -1).T  # points on the unit sphere
    bc = sh["body_c"]
    d = sh["fat"] + sh["muscle"] + sh["ribzone"] + 3.0
    wall = (sh["body_ax"] - d, sh["body_ay"] - d, sh["body_ay_post"] - d)
    spine = (sh["spine_r"][0] + 4.0, sh["spine_r"][1] + 4.0)
    centre = centre.copy()
    y0 = centre[1]
    for _ in range(60):
        pts = centre + (unit * (HEART_SEMI * scale)) @ HEART_AXES @ rot.T
        xy = pts[:, :2]
        if np.any(_egg_q(xy, bc, *wall) > 1):
            if centre[1] - y0 < 20.0:
                centre[1] += 2.0
            else:  # too large for the chest whatever its position: shrink
                scale *= 0.97
            continue
        if np.any(_egg_q(xy, sh["spine_c"], *spine, spine[1]) < 1):
            scale *= 0.97
            centre[1] -= 1.0
            continue
        break
    return centre, scale


def _project_to_heart(p: np.ndarray, offset: float) -> np.ndarray:
    """Project canonical points radially (ellipsoid metric) onto the heart surface + offset."""
    q = (p @ HEART_AXES.T) / HEART_SEMI
    r = np.linalg.norm(q, axis=-1, keepdims=True)
    surf = p / r
    normal = (surf @ HEART_AXES.T) / HEART_SEMI**2 @ HEART_AXES
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    return surf + offset * normal


def coronary_tree(anat: Anatomy, step: float = 0.5) -> dict[str, Vessel]:
    """The four coronary centre-lines of one scan.

    LM leaves the left side of the aortic root and splits into LAD (anterior interventricular
    groove, to the apex) and CX (left atrioventricular groove); RCA leaves the right anterior
    side of the root and runs down the right atrioventricular groove to the crux.

    Args:
        anat: the scan's anatomy.
        step: sampling step along the centre-line (mm).
    """
    tree = {}
    for name, (ctrl, first_on_surface) in _TREE.items():
        pts = np.asarray(ctrl, dtype=np.float64)
        if name != "LM":
            pts[first_on_surface:] = _project_to_heart(pts[first_on_surface:], offset=1.0)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        t = np.concatenate([[0.0], np.cumsum(seg)])
        spline = CubicSpline(t, pts, bc_type="natural")
        dense = spline(np.linspace(0, t[-1], max(int(t[-1] / 0.1), 8)))
        dense = anat.to_scan(dense)
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
        s = np.arange(0.0, arc[-1], step)
        points = np.stack([np.interp(s, arc, dense[:, i]) for i in range(3)], axis=1)
        r0, r1 = _RADIUS[name]
        radius = (r0 + (r1 - r0) * s / arc[-1]) * np.sqrt(anat.heart_scale)
        tree[name] = Vessel(name, points, radius, s)
    return tree


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


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation weights between cell-centred grids."""
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
    mx = _interp_matrix(grid.n, nc)
    field = np.matmul(np.matmul(mx, coarse), mx.T)  # (ncz, n, n)
    mz = _interp_matrix(grid.nz, ncz)
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


def render_anatomy(anat: Anatomy, grid: Grid, tree: dict[str, Vessel]) -> np.ndarray:
    """Tissue CT numbers (HU) on the grid, before calcium, scanner blur and noise.

    Args:
        anat: the scan's anatomy.
        grid: the voxel grid.
        tree: coronary centre-lines from :func:`coronary_tree`.

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
    heart_box = grid.box(hc - 75 * anat.heart_scale, hc + 75 * anat.heart_scale)
    axes, semi = anat.heart_axes, anat.heart_semi
    if heart_box is not None:
        q_heart, peri = _heart_fields(grid, heart_box, anat)
        mediastinum[heart_box] |= peri
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
    if heart_box is not None:
        _paint(vol, q_heart <= 1, heart_box, v["myocardium"])
        # Chambers: centre offset (fraction of the semi-axes along w, u, v) and size.
        for off, scale in (
            ((0.15, 0.05, 0.12), (0.55, 0.5, 0.45)),  # LV
            ((0.05, -0.45, -0.1), (0.5, 0.35, 0.45)),  # RV
            ((-0.6, 0.35, 0.1), (0.35, 0.45, 0.5)),  # LA
            ((-0.45, -0.1, -0.55), (0.35, 0.4, 0.4)),  # RA
        ):
            c = hc + (np.asarray(off) * semi) @ axes
            qc = ellipsoid_q(grid, heart_box, c, axes, semi * np.asarray(scale))
            _paint(vol, qc <= 1, heart_box, v["blood"])
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
    anterior = np.broadcast_to((from_post > np.deg2rad(150))[None], qr.shape)
    near_spine = (from_post < np.deg2rad(12))[None]
    ribs = (qr <= 1) & ~near_spine
    val = np.where(qr > 0.45, v["cortical"] - 50.0, v["marrow"])
    val = np.where(anterior, v["cartilage"], val)
    zi = np.nonzero(ribs)
    vol[zi[0], yy[zi[1]], xx[zi[1]]] = val[zi]

    st_c = (bc[0] + 0.2 * (hc[0] - bc[0]), bc[1] - (ay - dm))
    qs = _ellipse2(grid, st_c, 15.0 * anat.body_scale, 5.5 * anat.body_scale)
    qsi = _ellipse2(grid, st_c, 15.0 * anat.body_scale - 1.6, 5.5 * anat.body_scale - 1.6)
    above = grid.z > sh["xiphoid_z"]
    if above.any():
        sl = vol[above]
        sl[:, qs <= 1] = v["cortical"] - 80.0
        sl[:, qsi <= 1] = v["marrow"]
        vol[above] = sl
    return vol
