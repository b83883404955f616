"""Calcified coronary plaques and the high-density structures that are not coronary calcium.

Every dense object is a chain of Gaussian "beads" (centre, covariance, amplitude), rendered
through the scanner point-spread function by :func:`~.grid.add_gaussian`, so partial-volume
blur (in-plane and across the 3 mm slices) is exact. Sizes and densities are calibrated so that
the per-slice lesion areas and peak HU match the expert ROIs of the COCA sample
(docs/synthetic.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cac_lightning.scoring.config import DEFAULT_THRESHOLD_HU
from cac_lightning.sources.synthetic.anatomy import (
    AORTA_DIR,
    AORTIC_ROOT,
    MITRAL_CENTRE,
    STERNUM_SEMI_MM,
    Anatomy,
    Skeleton,
    Vessel,
)

__all__ = [
    "VESSEL_WEIGHTS",
    "Beads",
    "sample_findings",
    "sample_negatives",
    "sample_plaques",
]

# Least rendered peak (HU above tissue) of the first plaque of a positive scan (which must score:
# tissue ~35 HU + 250 stays >= 130 HU over >= 1 mm^2 despite the noise); any other plaque's
# least peak is the 120 kVp Agatston threshold, DEFAULT_THRESHOLD_HU (scoring.config).
FIRST_PEAK_HU = 250.0
# Share of lesions per vessel. Hong et al. 2022, Table 5 (training set lesions): LM 6 %, LAD 39 %,
# CX 21 %, RCA 35 %; LM is raised to 10 % so a small cohort still holds LM lesions.
VESSEL_WEIGHTS = {"LM": 0.1, "LAD": 0.4, "CX": 0.2, "RCA": 0.3}


@dataclass(frozen=True)
class Beads:
    """One dense object as Gaussian beads.

    Attributes:
        kind: "plaque", "aortic_wall", "aortic_valve", "mitral_annulus", "stent" (version 1
            on), "osteophyte", "sternotomy_wire" or "surgical_clip" (version 4).
        vessel: coronary name for plaques and stents, else "".
        centres: (K, 3) bead centres (x, y, z) mm.
        covs: (K, 3, 3) bead covariances (mm^2).
        amps: (K,) unblurred peak densities (HU above the tissue).
        min_peak: the rendered object is scaled up to reach at least this (HU above tissue;
            a plaque's floor includes the tissue under it, see ``phantom._render_plaques``).
    """

    kind: str
    vessel: str
    centres: np.ndarray
    covs: np.ndarray
    amps: np.ndarray
    min_peak: float = 0.0


def _perp_basis(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to the unit vector ``t`` and to each other."""
    a = np.array([1.0, 0.0, 0.0]) if abs(t[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(t, a)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(t, e1)


def _tube_cov(t: np.ndarray, sigma_along: float, sigma_across: float) -> np.ndarray:
    tt = np.outer(t, t)
    return sigma_along**2 * tt + sigma_across**2 * (np.eye(3) - tt)


def _chain(
    vessel: Vessel,
    s0: float,
    length: float,
    sigma_across: float,
    amplitude: float,
    offset: float,
    angle: float,
    rng: np.random.Generator,
    step: float = 0.6,
    texture: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beads along a vessel from arc length ``s0`` over ``length`` mm (a plaque or a strut).

    With ``texture`` the chain is irregular (:func:`_irregular`); its draws come from that
    generator only, so ``rng`` makes the same draws either way.
    """
    m = max(int(round(length / step)), 1)
    if m == 1:
        ss = np.array([s0 + length / 2])
        sig_t = max(length / 2.5, sigma_across)
        per = np.array([amplitude])
    else:
        ss = s0 + (np.arange(m) + 0.5) * length / m
        sig_t = length / m
        # Line density of overlapping beads reaches ``amplitude`` in the middle.
        base = amplitude * (length / m) / (np.sqrt(2 * np.pi) * sig_t)
        bell = 0.55 + 0.45 * np.sin(np.pi * (np.arange(m) + 0.5) / m)
        per = base * bell * rng.uniform(0.8, 1.2, size=m)
    offsets, angles = np.full(m, offset), np.full(m, angle)
    squash, tilt = 1.0, 0.0
    if texture is not None:
        offsets, angles, squash, tilt, shape = _irregular(m, offset, angle, length, texture)
        per = per * shape
    centres, covs = [], []
    for s, off, ang in zip(ss, offsets, angles, strict=True):
        p, t, r = vessel.at(s)
        e1, e2 = _perp_basis(t)
        centres.append(p + off * r * (np.cos(ang) * e1 + np.sin(ang) * e2))
        cov = _tube_cov(t, sig_t, sigma_across)
        if squash != 1.0:  # flattened cross-section (area kept), rotated by `tilt`
            a = np.cos(tilt) * e1 + np.sin(tilt) * e2
            b = np.cross(t, a)
            cov = sig_t**2 * np.outer(t, t) + sigma_across**2 * (
                squash**2 * np.outer(a, a) + np.outer(b, b) / squash**2
            )
        covs.append(cov)
    return np.asarray(centres), np.asarray(covs), np.asarray(per, dtype=np.float64)


def _irregular(m: int, offset: float, angle: float, length: float, rng: np.random.Generator):
    """Irregular plaque geometry for a chain of ``m`` beads.

    Real calcifications are not smooth tubes: their position in the wall wanders (random walk
    of the angle, jittered offset), their cross-section is flattened (an ellipse in the wall),
    and a third are spotty (nodules along the vessel).

    Returns:
        ``(offsets (m,), angles (m,), squash, tilt, amplitude factors (m,))``.
    """
    angles = angle + np.cumsum(rng.normal(0.0, 0.25, size=m))
    offsets = np.clip(offset * np.exp(rng.normal(0.0, 0.2, size=m)), 0.0, 0.9)
    squash = float(np.exp(rng.uniform(-0.5, 0.5)))
    tilt = float(rng.uniform(0.0, np.pi))
    shape = np.ones(m)
    cycles, phase, spotty = rng.uniform(0.15, 0.35), rng.uniform(0, 2 * np.pi), rng.uniform()
    if spotty < 0.35 and m > 2:
        pos = (np.arange(m) + 0.5) * length / m
        shape = np.clip(1.0 + 0.7 * np.sin(2 * np.pi * cycles * pos + phase), 0.15, None)
    return offsets, angles, squash, tilt, shape


def _place(frac: float, length: float, total: float, avoid: tuple[float, float] | None) -> float:
    """Start (arc mm) of a plaque at ``frac`` of the free length, skipping ``avoid`` +- 4 mm."""
    if avoid is None:
        return frac * (total - length)
    lo, hi = max(avoid[0] - 4.0 - length, 0.0), min(avoid[1] + 4.0, total - length)
    before, after = lo, max(total - length - hi, 0.0)
    u = frac * (before + after)
    return u if u < before else hi + (u - before)


def _free_vessel(
    name: str, length: float, tree: dict[str, Vessel], avoid: dict[str, tuple[float, float]]
) -> str:
    """``name`` when a plaque fits beside its stent, else the next vessel without one."""
    lo, hi = avoid[name]
    room = max(lo - 4.0, 0.0) + max(tree[name].length - hi - 4.0, 0.0)
    if room >= length + 1.0:
        return name
    return next(v for v in ("LAD", "RCA", "CX", "LM") if v not in avoid)


def sample_plaques(
    rng: np.random.Generator,
    tree: dict[str, Vessel],
    burden: float,
    avoid: dict[str, tuple[float, float]] | None = None,
    texture: np.random.Generator | None = None,
) -> list[Beads]:
    """Draw the calcified plaques of one calcium-positive scan.

    Args:
        rng: the scan's generator.
        tree: coronary centre-lines.
        burden: 0..1 disease burden; more, longer and denser plaques as it grows.
        avoid: per vessel an arc-length interval (mm) kept free (a stented segment).
        texture: generator of the plaques' irregular shapes (None: smooth bead chains).

    Returns:
        One :class:`Beads` per plaque (at least one).
    """
    avoid = avoid or {}
    n = 1 + int(rng.poisson(1.5 + 40.0 * burden**3))
    names = list(VESSEL_WEIGHTS)
    weights = np.array([VESSEL_WEIGHTS[k] for k in names])
    out = []
    for i in range(n):
        name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        length = float(np.clip(rng.lognormal(np.log(1.8 + 4.5 * burden**2), 0.55), 1.2, 22.0))
        # Proximal segments calcify more often.
        frac = float(rng.beta(1.3, 2.4))
        sigma = float(rng.uniform(0.3, 0.6) + 0.5 * burden**2 * rng.uniform())
        amp = float(rng.lognormal(np.log(200.0 + 520.0 * burden**2), 0.5))
        offset = float(rng.uniform(0.1, 0.6))
        angle = float(rng.uniform(0, 2 * np.pi))
        floor = DEFAULT_THRESHOLD_HU
        if i == 0:  # the first plaque always scores (>= 1 mm^2 at >= 130 HU)
            length, sigma, floor = max(length, 2.5), max(sigma, 0.5), FIRST_PEAK_HU
        if name in avoid:
            name = _free_vessel(name, length, tree, avoid)
        ves = tree[name]
        length = min(length, 0.8 * ves.length)
        s0 = _place(frac, length, ves.length, avoid.get(name))
        c, cov, a = _chain(ves, s0, length, sigma, amp, offset, angle, rng, texture=texture)
        out.append(Beads("plaque", name, c, cov, a, min_peak=floor))
    return out


def _ring_beads(
    centre: np.ndarray,
    normal: np.ndarray,
    radius: float,
    a0: float,
    a1: float,
    sigma: float,
    amplitude: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beads on the arc a0..a1 (radians) of a circle (annulus calcification)."""
    e1, e2 = _perp_basis(normal / np.linalg.norm(normal))
    m = max(int(abs(a1 - a0) * radius / 0.8), 1)
    ang = np.linspace(a0, a1, m)
    pts = centre + radius * (np.cos(ang)[:, None] * e1 + np.sin(ang)[:, None] * e2)
    tang = -np.sin(ang)[:, None] * e1 + np.cos(ang)[:, None] * e2
    covs = np.stack([_tube_cov(t, 0.8, sigma) for t in tang])
    amps = amplitude * 0.8 / (np.sqrt(2 * np.pi) * 0.8) * rng.uniform(0.6, 1.3, size=m)
    return pts, covs, amps


def _aortic_wall(rng: np.random.Generator, anat: Anatomy, top_z: float, low_z: float) -> Beads:
    """One calcification of the aortic wall: ascending aorta (between the root and the top
    slice) or descending aorta (between ``low_z`` and the top), an arc of 1.5-6 mm."""
    sh = anat.shape
    if rng.uniform() < 0.5:
        root = anat.to_scan(AORTIC_ROOT)
        up = anat.dir_to_scan(AORTA_DIR)
        h = float(rng.uniform(6.0, max(top_z - root[2], 8.0)))
        axis_pt, r, d = root + h * up, sh["aao_r"], up
    else:
        z = float(rng.uniform(low_z, top_z))
        dao = np.array([sh["dao_c"][0], sh["dao_c"][1], 0.0])
        axis_pt, r, d = dao + np.array([0.0, 0.0, z]), sh["dao_r"], np.array([0, 0, 1.0])
    e1, e2 = _perp_basis(d)
    ang = float(rng.uniform(0, 2 * np.pi))
    radial = np.cos(ang) * e1 + np.sin(ang) * e2
    c = axis_pt + (r - 0.6) * radial
    tangent = np.cross(d, radial)
    span = float(rng.uniform(1.5, 6.0))
    cov = _tube_cov(tangent, span, float(rng.uniform(0.4, 0.8)))
    amp = float(rng.lognormal(np.log(900.0), 0.5))
    return Beads("aortic_wall", "", c[None], cov[None], np.array([amp]))


def sample_negatives(
    rng: np.random.Generator,
    anat: Anatomy,
    tree: dict[str, Vessel],
    top_z: float,
    aortic: float,
    valve: float,
    stent: bool,
) -> tuple[list[Beads], dict[str, tuple[float, float]]]:
    """Draw the dense non-coronary structures of one scan (never labelled).

    Aortic wall calcification (ascending and descending aorta), aortic valve and mitral annulus
    calcification, and a metal coronary stent.

    Args:
        rng: the scan's generator.
        anat: the scan's anatomy.
        tree: coronary centre-lines.
        top_z: local z (mm) of the top slice.
        aortic / valve: probabilities of each finding in this scan.
        stent: whether the scan has a stent (spread evenly over a cohort by the caller,
            :func:`~.phantom.is_stent_scan`).

    Returns:
        ``(objects, stented)``: the beads, and the stented arc interval per vessel.
    """
    out: list[Beads] = []
    stented: dict[str, tuple[float, float]] = {}
    sh = anat.shape
    # The third draw decided the stent before stents were spread evenly; still drawn, so every
    # other draw of a scan stays what it was.
    draw_aortic, draw_valve, _ = rng.uniform(size=3)
    if draw_aortic < aortic:
        for _ in range(int(rng.integers(1, 6))):
            out.append(_aortic_wall(rng, anat, top_z, -60.0))
    if draw_valve < valve:
        if rng.uniform() < 0.6:
            root = anat.to_scan(AORTIC_ROOT)
            normal = anat.dir_to_scan(AORTA_DIR)
            radius = 0.75 * sh["aao_r"]
            kind = "aortic_valve"
        else:
            root = anat.to_scan(MITRAL_CENTRE)
            normal = anat.heart_axes[0]
            radius = 14.0 * anat.heart_scale
            kind = "mitral_annulus"
        for _ in range(int(rng.integers(1, 4))):
            a0 = float(rng.uniform(0, 2 * np.pi))
            a1 = a0 + float(rng.uniform(0.3, 1.4))
            amp = float(rng.lognormal(np.log(900.0), 0.5))
            c, cov, a = _ring_beads(root, normal, radius, a0, a1, 0.6, amp, rng)
            out.append(Beads(kind, "", c, cov, a))
    if stent:
        name = ["LAD", "RCA", "CX"][int(rng.choice(3, p=[0.5, 0.3, 0.2]))]
        ves = tree[name]
        length = float(rng.uniform(10.0, 24.0))
        s0 = float(rng.uniform(3.0, max(ves.length * 0.5, 4.0)))
        length = min(length, ves.length - s0 - 1.0)
        centres, covs, amps = [], [], []
        for s in np.arange(s0, s0 + length, 0.5):
            p, t, r = ves.at(s)
            e1, e2 = _perp_basis(t)
            for k in range(8):
                ang = 2 * np.pi * k / 8 + 0.4 * s
                centres.append(p + (r + 0.1) * (np.cos(ang) * e1 + np.sin(ang) * e2))
                covs.append(np.eye(3) * 0.25**2)
                amps.append(float(rng.uniform(0.8, 1.2)))
        scale = float(rng.uniform(6000.0, 9000.0))
        out.append(
            Beads("stent", name, np.asarray(centres), np.asarray(covs), scale * np.asarray(amps))
        )
        stented[name] = (s0, s0 + length)
    return out, stented


# Version 4 findings: dense metal and bone, rendered to a drawn blurred peak (Beads.min_peak).
WIRE_PEAK_HU = (2000.0, 3000.0)  # stainless steel sternal wire, blurred peak above tissue
CLIP_PEAK_HU = (1500.0, 3000.0)  # titanium / steel surgical clip
OSTEOPHYTE_PEAK_HU = (350.0, 800.0)
CLIP_CLEARANCE_MM = 8.0  # a clip keeps this far from every coronary centre-line


def _segment(p0: np.ndarray, p1: np.ndarray, sigma: float, step: float = 0.5):
    """Beads (centres, covs) along the straight segment p0 -> p1 (a wire, a clip, a spur)."""
    d = p1 - p0
    length = float(np.linalg.norm(d))
    t = d / max(length, 1e-9)
    m = max(int(np.ceil(length / step)), 1)
    centres = p0 + ((np.arange(m) + 0.5) / m)[:, None] * d
    covs = np.repeat(_tube_cov(t, max(length / m, sigma), sigma)[None], m, axis=0)
    return centres, covs


def _beads(kind: str, centres: np.ndarray, covs: np.ndarray, peak: float) -> Beads:
    return Beads(kind, "", centres, covs, np.ones(len(centres)), min_peak=peak)


def _far_from_tree(p: np.ndarray, tree: dict[str, Vessel]) -> bool:
    return all(
        np.min(np.linalg.norm(v.points - p, axis=1)) > CLIP_CLEARANCE_MM for v in tree.values()
    )


def sample_findings(
    rng: np.random.Generator,
    anat: Anatomy,
    tree: dict[str, Vessel],
    skel: Skeleton,
    z_range: tuple[float, float],
    osteophyte: float,
) -> list[Beads]:
    """Draw the version-4 dense findings of one scan (never labelled).

    - extra aortic wall calcification, more with age (Poisson, mean ``4 age^2``);
    - vertebral osteophytes: 1-4 dense spurs of 2-6 mm on the anterior or lateral edge of the
      vertebral body, in a share ``osteophyte * (0.5 + age)`` of scans;
    - after a sternotomy (``skel.sternotomy``): a stainless-steel wire loop around the sternum
      every 18-26 mm with its twisted knot in front, and in 80 % of these scans 2-8 surgical
      clips (bars of 3-6 mm) along the left internal mammary path behind the chest wall and in
      front of the ascending aorta, each at least 8 mm from every coronary centre-line.

    All draws come from ``rng`` (the scan's version-4 stream); how many are made does not move
    the anatomy, plaques or noise.

    Args:
        rng: the scan's generator of version-4 findings.
        anat: the scan's anatomy.
        tree: coronary centre-lines.
        skel: the scan's age and sternotomy.
        z_range: local z (mm) of the bottom and top slices.
        osteophyte: base probability of osteophytes (scaled by ``0.5 + age``).

    Returns:
        The findings as :class:`Beads` (amplitudes set by ``min_peak``, except aortic wall).
    """
    out: list[Beads] = []
    sh, b = anat.shape, anat.body_scale
    z_lo, z_hi = float(z_range[0]), float(z_range[1])
    for _ in range(int(rng.poisson(4.0 * skel.age**2))):
        out.append(_aortic_wall(rng, anat, z_hi, z_lo))
    if rng.uniform() < osteophyte * (0.5 + skel.age):
        spc, spr = sh["spine_c"], sh["spine_r"]
        for _ in range(1 + min(int(rng.poisson(2.0 * skel.age)), 3)):
            theta = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 1.75))  # 0 = anterior
            u = np.array([np.sin(theta) * spr[1], -np.cos(theta) * spr[0]])  # outward normal
            u /= np.linalg.norm(u)
            edge = np.array([spc[0] + spr[0] * np.sin(theta), spc[1] - spr[1] * np.cos(theta)])
            z = float(rng.uniform(z_lo, z_hi))
            length = float(rng.uniform(2.0, 6.0))
            p0 = np.array([*(edge - 1.0 * u), z])
            p1 = np.array([*(edge + length * u), z + float(rng.normal(0.0, 1.5))])
            c, cov = _segment(p0, p1, float(rng.uniform(0.6, 1.2)))
            out.append(_beads("osteophyte", c, cov, float(rng.uniform(*OSTEOPHYTE_PEAK_HU))))
    if not skel.sternotomy:
        return out
    sx, sy = anat.sternum_centre
    a0, b0 = (s * b for s in STERNUM_SEMI_MM)
    z = sh["xiphoid_z"] + float(rng.uniform(5.0, 15.0))
    gap = float(rng.uniform(18.0, 26.0))
    while z < z_hi + 2.0:
        if z > z_lo - 2.0:
            ang = np.linspace(0.0, 2 * np.pi, max(int(2 * np.pi * a0 / 0.5), 16), endpoint=False)
            rx, ry = sx + (a0 + 1.0) * np.cos(ang), sy + (b0 + 1.0) * np.sin(ang)
            ring = np.stack([rx, ry, np.full_like(ang, z)], axis=1)
            knot = np.array([sx + float(rng.normal(0, 2)), sy - b0 - 2.5, z])
            kc, kcov = _segment(knot - [1.5, 0, 0], knot + [1.5, 0, 0], 0.6)
            covs = np.repeat((np.eye(3) * 0.3**2)[None], len(ring), axis=0)
            peak = float(rng.uniform(*WIRE_PEAK_HU))
            out.append(
                _beads("sternotomy_wire", np.vstack([ring, kc]), np.vstack([covs, kcov]), peak)
            )
        z += gap
    if rng.uniform() < 0.8:
        root = anat.to_scan(AORTIC_ROOT)
        for _ in range(int(rng.integers(2, 9))):
            if rng.uniform() < 0.7:  # left internal mammary bed, behind the chest wall
                p = np.array(
                    [
                        sx + float(rng.uniform(12.0, 22.0)) * b,
                        sy + b0 + float(rng.uniform(5.0, 9.0)),
                        float(rng.uniform(z_lo, z_hi)),
                    ]
                )
            else:  # vein-graft origin in front of the ascending aorta
                p = root + np.array(
                    [float(rng.normal(0, 5)), -sh["aao_r"] - 4.0, float(rng.uniform(5, 30))]
                )
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            half = 0.5 * float(rng.uniform(3.0, 6.0))
            if not _far_from_tree(p, tree):
                continue
            c, cov = _segment(p - half * d, p + half * d, 0.4)
            out.append(_beads("surgical_clip", c, cov, float(rng.uniform(*CLIP_PEAK_HU))))
    return out
