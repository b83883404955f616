"""Thoracic anatomy of the synthetic gated cardiac CT: parameters and coronary tree.

Everything is in the scan-local frame of :mod:`.grid` (mm; x patient left, y posterior,
z superior; in-plane origin at the FOV centre, z origin at the heart centre). The heart and its
coronary tree are described in a canonical frame (an average adult heart, long axis pointing
left, anterior and inferior) and placed in each scan by a random scale, rotation and shift.
Tissue values are non-contrast CT numbers measured on the COCA sample (see docs/synthetic.md);
the tissue map is painted by :mod:`.render`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

__all__ = [
    "HU",
    "SLICE_MM",
    "Anatomy",
    "Skeleton",
    "Vessel",
    "coronary_tree",
    "sample_anatomy",
    "sample_skeleton",
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
    "marrow": 230.0,  # mean of the textured marrow ~210 (render._spongy is skewed dark)
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
STERNUM_SEMI_MM = (15.0, 5.5)  # sternal body half-width and half-depth (mm, x body scale)

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

    @property
    def sternum_centre(self) -> tuple[float, float]:
        """In-plane (x, y) mm of the sternum's centre: mid rib zone at the anterior midline,
        pulled a fifth of the way towards the heart's x."""
        sh = self.shape
        dm = sh["fat"] + sh["muscle"] + 0.5 * sh["ribzone"]
        bc = sh["body_c"]
        return (bc[0] + 0.2 * (self.heart_centre[0] - bc[0]), bc[1] - (sh["body_ay"] - dm))


@dataclass(frozen=True)
class Skeleton:
    """Per-scan bone and cartilage findings (generator version 4), drawn apart from
    :class:`Anatomy` so that the anatomy of a scan does not move.

    Attributes:
        age: age-like draw in [0, 1]; calcification of cartilage and vessels grows with it.
        cartilage_mode: costal cartilage calcification: "none", "rim" (patchy, at the
            cartilage's surface) or "dense" (patchy through the whole cartilage).
        cartilage_extent: 0..1 share of the anterior cartilage that calcifies.
        cartilage_hu: peak CT number of the calcified cartilage (HU, 200-1,000).
        sternotomy: the sternum was split and wired (cardiac surgery): a midline gap.
        seed: seed of the bone and cartilage textures.
    """

    age: float
    cartilage_mode: str
    cartilage_extent: float
    cartilage_hu: float
    sternotomy: bool
    seed: int


def sample_skeleton(
    rng: np.random.Generator, cartilage: float = 0.7, sternotomy: bool = False
) -> Skeleton:
    """Draw the scan's age and its bone and cartilage findings.

    Costal cartilage calcifies in the oldest ``cartilage`` share of scans (age draw above
    ``1 - cartilage``); its extent and density grow with age beyond that onset, from small
    patches of ~200 HU to dense plates of up to 1,000 HU (before blur).

    Args:
        rng: the scan's generator of version-4 findings (never the anatomy's).
        cartilage: share of scans with calcified costal cartilage (0..1).
        sternotomy: whether the scan had a sternotomy (spread over a cohort by the caller).
    """
    age = float(rng.uniform())
    draw_mode, draw_extent, draw_hu = rng.uniform(size=3)
    seed = int(rng.integers(2**31))
    onset = 1.0 - float(cartilage)
    old = (age - onset) / max(1.0 - onset, 1e-9)
    if old <= 0:
        return Skeleton(age, "none", 0.0, 0.0, sternotomy, seed)
    extent = float(np.clip(old**0.8 * (0.4 + 0.6 * draw_extent), 0.05, 1.0))
    peak = float(np.clip(200.0 + 800.0 * old * (0.5 + 0.6 * draw_hu), 200.0, 1000.0))
    mode = "rim" if draw_mode < 0.6 else "dense"
    return Skeleton(age, mode, extent, peak, sternotomy, seed)


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation matrix from angles (radians) about x, then y, then z."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


def sample_anatomy(
    rng: np.random.Generator,
    fov_mm=(165.0, 230.0),
    n_slices=(40, 60),
    slice_mm: float = SLICE_MM,
) -> Anatomy:
    """Draw one patient's anatomy.

    The number of draws never depends on the grid size, so a scan keeps its anatomy at any
    ``--size``.

    Args:
        rng: the scan's generator.
        fov_mm: (low, high) field of view range (mm); COCA: 164-243 mm.
        n_slices: (low, high) inclusive slice count range; COCA: 46-57.
        slice_mm: slice spacing (mm): the slices are centred on the heart.
    """
    fov = float(rng.uniform(*fov_mm))
    nz = int(rng.integers(n_slices[0], n_slices[1] + 1))
    b = fov / 172.0 * float(rng.uniform(0.93, 1.07))
    s = b * float(rng.uniform(1.08, 1.25))
    centre = np.array([rng.normal(0.03, 0.03) * fov, rng.normal(-0.09, 0.025) * fov, 0.0])
    rot = _rotation(rng.normal(0, 0.08), rng.normal(0, 0.08), rng.normal(0, 0.14))
    # Put the heart centre about mid-volume with some craniocaudal shift.
    z0 = -(nz - 1) * slice_mm / 2 + float(rng.normal(2.0, 6.0))
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
