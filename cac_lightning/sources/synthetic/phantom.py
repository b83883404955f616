"""One synthetic ECG-gated non-contrast cardiac CT scan with its coronary calcium label map.

:func:`make_scan` is a pure function of ``(seed, index, size, options)``: scan ``index`` of a
cohort never depends on how many scans the cohort has or on how many processes make it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage as ndi

from cac_lightning.errors import InputError
from cac_lightning.scoring.config import DEFAULT_THRESHOLD_HU
from cac_lightning.sources.synthetic.anatomy import (
    SLICE_MM,
    coronary_tree,
    sample_anatomy,
    sample_skeleton,
)
from cac_lightning.sources.synthetic.artefacts import (
    add_motion,
    motion_level,
    slice_profile,
    streaks,
)
from cac_lightning.sources.synthetic.grid import Grid, add_gaussian
from cac_lightning.sources.synthetic.plaques import (
    Beads,
    sample_findings,
    sample_negatives,
    sample_plaques,
)
from cac_lightning.sources.synthetic.render import render_anatomy
from cac_lightning.vessels import LABELS
from cac_lightning.volume import Geometry

__all__ = [
    "NON_GATED",
    "SynthOptions",
    "SynthScan",
    "is_sternotomy_scan",
    "is_stent_scan",
    "is_zero_scan",
    "make_scan",
    "patient_id",
]

NON_GATED = {
    "slice_mm": 5.0,
    "scan_fov_mm": (300.0, 460.0),
    "n_slices": (50, 64),
    "motion_scale": 3.0,
}
"""The non-gated chest CT variant (``cac-synth --non-gated``): 5 mm slices over the whole chest
(250-320 mm), a 300-460 mm field of view around a patient sized as in the gated scans, and no
ECG trigger, so three times the gated scans' residual cardiac motion blur. Routine chest CT is
also reconstructed at 2.5 mm: add ``slice_mm=2.5`` (and twice the slices)."""

HU_MIN, HU_MAX = -1024, 3071  # 12-bit CT range with RescaleIntercept -1024
PSF_SIGMA_XY = 0.35  # in-plane scanner blur (mm, Gaussian sigma; ~0.8 mm FWHM, I30f kernel)
PSF_SIGMA_Z = 0.5  # z blur before slice integration (mm; 0.6 mm collimation)
NOISE_CORR_MM = 0.53  # in-plane noise correlation (Gaussian sigma, mm)
TISSUE_REF_HU = 35.0  # vessel wall / myocardium CT number the plaque floors refer to
SUPPORT_HU = 20.0  # a voxel belongs to a plaque where its blurred density adds >= this


@dataclass(frozen=True)
class SynthOptions:
    """Cohort options (all scans share them).

    Attributes:
        zero_fraction: share of calcium-free scans (deterministic, see :func:`is_zero_scan`).
        stent_fraction: share of scans with a coronary stent (unlabelled; deterministic, see
            :func:`is_stent_scan`).
        aortic_fraction: probability of aortic wall calcification.
        valve_fraction: probability of aortic valve or mitral annulus calcification.
        cartilage_fraction: share of scans with calcified costal cartilage (the oldest ones;
            more and denser with age; version 4).
        osteophyte_fraction: base probability of vertebral osteophytes (x ``0.5 + age``).
        sternotomy_fraction: share of scans after cardiac surgery: sternal wires and surgical
            clips (deterministic, see :func:`is_sternotomy_scan`).
        noise_sd: (low, high) blood-pool noise SD (HU); COCA sample: see docs/synthetic.md.
        fov_mm: (low, high) in-plane field of view (mm) of a gated scan, which also sizes the
            patient (the body fills it); COCA: 164-243 mm.
        n_slices: (low, high) number of slices; COCA: 46-57 of 3 mm.
        slice_mm: slice spacing and thickness (mm); gated calcium scans 3 mm.
        scan_fov_mm: (low, high) field of view actually reconstructed (mm), wider than the
            patient-sizing ``fov_mm`` for a whole-chest scan; None: ``fov_mm`` (gated).
        motion_scale: factor on the residual cardiac motion blur (non-gated: no ECG trigger).
    """

    zero_fraction: float = 0.2
    stent_fraction: float = 0.1
    aortic_fraction: float = 0.45
    valve_fraction: float = 0.3
    cartilage_fraction: float = 0.7
    osteophyte_fraction: float = 0.35
    sternotomy_fraction: float = 0.05
    noise_sd: tuple[float, float] = (12.0, 22.0)
    fov_mm: tuple[float, float] = (165.0, 230.0)
    n_slices: tuple[int, int] = (40, 60)
    slice_mm: float = SLICE_MM
    scan_fov_mm: tuple[float, float] | None = None
    motion_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "zero_fraction",
            "stent_fraction",
            "aortic_fraction",
            "valve_fraction",
            "cartilage_fraction",
            "osteophyte_fraction",
            "sternotomy_fraction",
        ):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {v}")
        for name, lo_min in (("noise_sd", 0.0), ("fov_mm", 60.0), ("n_slices", 8)):
            v = tuple(getattr(self, name))
            if len(v) != 2 or v[0] > v[1] or v[0] < lo_min:
                raise InputError(f"{name} must be (low, high), {lo_min} <= low <= high; got {v}")
            object.__setattr__(self, name, v)
        if self.scan_fov_mm is not None:
            v = tuple(float(x) for x in self.scan_fov_mm)
            if len(v) != 2 or not 60.0 <= v[0] <= v[1]:
                raise InputError(f"scan_fov_mm must be (low, high), 60 <= low <= high; got {v}")
            object.__setattr__(self, "scan_fov_mm", v)
        if not 0.5 <= float(self.slice_mm) <= 10.0:
            raise InputError(f"slice_mm must be in [0.5, 10] mm, got {self.slice_mm}")
        if not 0.0 <= float(self.motion_scale) <= 10.0:
            raise InputError(f"motion_scale must be in [0, 10], got {self.motion_scale}")

    @classmethod
    def from_dict(cls, options: dict) -> SynthOptions:
        """Build from keyword options; an unknown name is an :class:`InputError`."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"unknown synthetic option(s) {unknown}; known: {sorted(known)}")
        return cls(**options)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SynthScan:
    """A generated scan.

    Attributes:
        hu: int16 (z, y, x) CT numbers, slices ascending in z.
        labels: uint8 (z, y, x) calcium label map (0 bg, 1 LM, 2 LAD, 3 CX, 4 RCA).
        geometry: voxel grid in patient coordinates (LPS, identity direction).
        patient_id: synthetic pseudonym, e.g. "SYN0007".
        meta: what the scan contains (plaque count, stent vessel, hard negatives, ...).
        parts: with ``make_scan(..., keep_parts=True)``, float32 (z, y, x) components in HU:
            ``tissue`` (blurred anatomy, bone and cartilage included), ``negatives``
            (aortic/valve calcium, stent, osteophytes, wires, clips), ``calcium`` (coronary
            plaques), ``streaks`` (streaks and halo around them).
    """

    hu: np.ndarray
    labels: np.ndarray
    geometry: Geometry
    patient_id: str
    meta: dict = field(default_factory=dict)
    parts: dict[str, np.ndarray] | None = None


def patient_id(index: int) -> str:
    """Synthetic pseudonym of scan ``index``: "SYN0000", "SYN0001", ..."""
    return f"SYN{index:04d}"


def is_zero_scan(index: int, zero_fraction: float) -> bool:
    """True when scan ``index`` is calcium-free.

    Deterministic and evenly spread: scan i is zero when floor((i + 1) f) > floor(i f), so any
    prefix of a cohort holds the requested share (f = 0.2: scans 4, 9, 14, ...).
    """
    f = float(zero_fraction)
    return int(np.floor((index + 1) * f + 1e-9)) > int(np.floor(index * f + 1e-9))


STENT_PHASE = 0.5
"""Offset of the stent sequence (:func:`is_stent_scan`), away from the zero-scan pattern."""


def is_stent_scan(index: int, stent_fraction: float) -> bool:
    """True when scan ``index`` holds a coronary stent.

    Deterministic and evenly spread like :func:`is_zero_scan`, but along the golden-ratio
    sequence frac(i * 0.618... + :data:`STENT_PHASE`) < f, so stents do not fall on the
    periodic zero-calcium scans and any run of scans (hence every split of a shuffled cohort)
    holds about its share. Independent draws left a whole training split without a stent, and
    the demo model then called every stent calcium (docs/physical_units.md).
    """
    golden = (np.sqrt(5.0) - 1.0) / 2.0
    return float((index * golden + STENT_PHASE) % 1.0) < float(stent_fraction)


STERNOTOMY_PHASE = 0.15
"""Offset of the sternotomy sequence: [0.15, 0.15 + f) never meets the stents' [0.5, 0.5 + f)
for f <= 0.35, so wired and stented scans are distinct (both spread evenly)."""


def is_sternotomy_scan(index: int, sternotomy_fraction: float) -> bool:
    """True when scan ``index`` had a sternotomy (sternal wires, surgical clips).

    Spread evenly along the golden-ratio sequence like :func:`is_stent_scan`, with its own
    phase (:data:`STERNOTOMY_PHASE`), so a 5 % share gives one in any run of about 20 scans.
    """
    golden = (np.sqrt(5.0) - 1.0) / 2.0
    return float((index * golden + STERNOTOMY_PHASE) % 1.0) < float(sternotomy_fraction)


def _psf_var(grid: Grid) -> np.ndarray:
    """PSF variances (x, y, z) in mm^2: scanner blur plus the pixel and slice boxes."""
    xy = PSF_SIGMA_XY**2 + grid.px**2 / 12.0
    return np.array([xy, xy, PSF_SIGMA_Z**2 + grid.slice_mm**2 / 12.0])


def _render_beads(objs: list[Beads], grid: Grid, psf: np.ndarray) -> np.ndarray:
    """Sum of the blurred beads of ``objs`` (float32 on the grid).

    An object with ``min_peak`` > 0 (version-4 metal and bone) is rendered on its own box and
    scaled so that its blurred peak is exactly ``min_peak``, whatever the pixel and slice size.
    """
    out = np.zeros(grid.shape, dtype=np.float32)
    for ob in objs:
        if ob.min_peak > 0:
            box, local = _render_local(ob, grid, psf)
            if box is not None and local.max() > 0:
                out[box] += local * np.float32(ob.min_peak / float(local.max()))
            continue
        for c, cov, a in zip(ob.centres, ob.covs, ob.amps, strict=True):
            add_gaussian(out, grid, c, cov, float(a), psf)
    return out


def _render_local(ob: Beads, grid: Grid, psf: np.ndarray):
    """``(box, local)``: the blurred beads of one object on its own index box (None, None
    when it misses the grid)."""
    reach = 3.5 * np.sqrt(np.max(np.linalg.eigvalsh(ob.covs), axis=1) + psf.max())
    box = grid.box((ob.centres - reach[:, None]).min(0), (ob.centres + reach[:, None]).max(0))
    if box is None:
        return None, None
    local = np.zeros(tuple(s.stop - s.start for s in box), dtype=np.float32)
    origin = (box[0].start, box[1].start, box[2].start)
    for c, cov, a in zip(ob.centres, ob.covs, ob.amps, strict=True):
        add_gaussian(local, grid, c, cov, float(a), psf, origin=origin)
    return box, local


def _render_plaques(objs: list[Beads], grid: Grid, psf: np.ndarray, tissue: np.ndarray):
    """Blurred plaque density and the vessel label owning each voxel.

    A plaque whose brightest voxel stays below ``TISSUE_REF_HU + min_peak`` HU (tissue
    included, before noise) is scaled up to reach it, whatever the pixel and slice sampling.
    """
    calc = np.zeros(grid.shape, dtype=np.float32)
    best = np.zeros(grid.shape, dtype=np.float32)
    owner = np.zeros(grid.shape, dtype=np.uint8)
    for ob in objs:
        box, local = _render_local(ob, grid, psf)
        if box is None:
            continue
        k = int(np.argmax(local))
        peak = float(local.flat[k])
        base = float(tissue[box].flat[k])
        need = TISSUE_REF_HU + ob.min_peak - base
        if 0 < peak < need:
            local *= np.float32(need / peak)
        calc[box] += local
        win = local > best[box]
        best[box][win] = local[win]
        owner[box][win] = LABELS[ob.vessel]
    return calc, best, owner


def make_scan(
    seed: int,
    index: int,
    size: int = 512,
    options: SynthOptions | None = None,
    *,
    keep_parts: bool = False,
) -> SynthScan:
    """Generate scan ``index`` of the cohort with ``seed``.

    Args:
        seed: cohort seed.
        index: scan number (0-based); the scan is seeded from ``(seed, index)``.
        size: in-plane matrix (pixels); the FOV does not change, spacing = FOV / size.
        options: cohort options (defaults when None).
        keep_parts: also return the HU components (``SynthScan.parts``), for tests and figures.

    Returns:
        The scan: int16 HU, uint8 labels (calcium voxels only: plaque voxels >= 130 HU after
        blur and noise), geometry and metadata.
    """
    if size < 16:
        raise InputError(f"size must be >= 16 pixels, got {size}")
    opt = options or SynthOptions()
    # Four streams: anatomy and lesions, noise, texture (plaque shapes, motion, streaks; version
    # 3), findings (age, bone and cartilage, osteophytes, wires, clips; version 4). A
    # SeedSequence's first children do not depend on how many are spawned, so each version's
    # additions leave the earlier streams' draws as they were.
    ss = np.random.SeedSequence([int(seed), int(index)]).spawn(4)
    params_ss, noise_ss, texture_ss, findings_ss = ss
    rng = np.random.default_rng(params_ss)
    trng = np.random.default_rng(texture_ss)
    frng = np.random.default_rng(findings_ss)
    anat = sample_anatomy(rng, opt.fov_mm, opt.n_slices, opt.slice_mm)
    fov = anat.fov_mm
    if opt.scan_fov_mm is not None:  # own stream: the gated draws stay as they are
        fov = float(np.random.default_rng([int(seed), int(index), 5]).uniform(*opt.scan_fov_mm))
    px = round(fov / size, 6)
    grid = Grid(size, anat.n_slices, px * size, opt.slice_mm, anat.z0_mm)
    tree = coronary_tree(anat)
    negatives, stented = sample_negatives(
        rng,
        anat,
        tree,
        float(grid.z[-1]),
        opt.aortic_fraction,
        opt.valve_fraction,
        is_stent_scan(index, opt.stent_fraction),
    )
    zero = is_zero_scan(index, opt.zero_fraction)
    burden = float(rng.uniform()) ** 0.75
    plaques = [] if zero else sample_plaques(rng, tree, burden, avoid=stented, texture=trng)
    noise_sd = float(rng.uniform(*opt.noise_sd))
    table = (rng.uniform(-40, 40), rng.uniform(-200, -120), rng.uniform(-320, -60))

    motion = motion_level(trng) * float(opt.motion_scale)
    negatives = add_motion(negatives, motion, trng)
    plaques = add_motion(plaques, motion, trng)

    skel = sample_skeleton(
        frng, opt.cartilage_fraction, is_sternotomy_scan(index, opt.sternotomy_fraction)
    )
    z_range = (float(grid.z[0]), float(grid.z[-1]))
    findings = sample_findings(frng, anat, tree, skel, z_range, opt.osteophyte_fraction)
    findings = add_motion(findings, motion, frng)

    psf = _psf_var(grid)
    tissue = slice_profile(render_anatomy(anat, grid, tree, skel))
    sig_xy = np.sqrt(PSF_SIGMA_XY**2 + grid.px**2 / 12.0) / grid.px
    tissue = ndi.gaussian_filter(tissue, (0, sig_xy, sig_xy), mode="nearest", truncate=3.0)
    neg = _render_beads(negatives, grid, psf)
    calc, best, owner = _render_plaques(plaques, grid, psf, tissue)
    # Streaks of the version-3 sources first, from their own stream, so that adding findings
    # does not move them; bone (osteophytes) casts none, as the anatomy's bone casts none.
    streak = streaks(neg + calc, grid, trng)
    metal = [f for f in findings if f.kind != "osteophyte"]
    found = _render_beads(metal, grid, psf)
    streak += streaks(found, grid, frng)
    found += _render_beads([f for f in findings if f.kind == "osteophyte"], grid, psf)
    neg += found

    nrng = np.random.default_rng(noise_ss)
    noise = nrng.standard_normal(grid.shape, dtype=np.float32)
    sig_n = NOISE_CORR_MM / grid.px
    if sig_n > 0.3:
        noise = ndi.gaussian_filter(noise, (0, sig_n, sig_n), mode="wrap", truncate=3.0)
    noise *= np.float32(noise_sd / max(float(noise.std()), 1e-6))

    img = tissue + neg + calc + streak + noise
    hu = np.clip(np.rint(img), HU_MIN, HU_MAX).astype(np.int16)
    calcium = DEFAULT_THRESHOLD_HU
    support = (best >= SUPPORT_HU) & (calc >= neg) & (tissue < calcium) & (hu >= calcium)
    labels = np.where(support, owner, 0).astype(np.uint8)

    origin_local = np.array([grid.x[0], grid.y[0], grid.z[0]], dtype=np.float64)
    origin = tuple(round(float(o + t), 3) for o, t in zip(origin_local, table, strict=True))
    geometry = Geometry(
        shape=grid.shape,
        pixel_spacing=(px, px),
        slice_spacing=opt.slice_mm,
        origin=origin,
        slice_thickness=opt.slice_mm,
    )
    meta = {
        "zero": zero,
        "burden": 0.0 if zero else burden,
        "n_plaques": len(plaques),
        "plaque_vessels": sorted({p.vessel for p in plaques}),
        "negatives": sorted(
            {o.kind for o in (*negatives, *findings)}
            | ({"costal_cartilage"} if skel.cartilage_mode != "none" else set())
        ),
        "stent_vessel": next((o.vessel for o in negatives if o.kind == "stent"), ""),
        "noise_sd": noise_sd,
        "motion": motion,
        "fov_mm": grid.fov_mm,
        "age": skel.age,
        "cartilage": {
            "mode": skel.cartilage_mode,
            "extent": skel.cartilage_extent,
            "peak_hu": skel.cartilage_hu,
        },
        "findings": {
            k: sum(f.kind == k for f in findings)
            for k in ("aortic_wall", "osteophyte", "sternotomy_wire", "surgical_clip")
        },
        "heart_centre_mm": [float(v) for v in anat.heart_centre + np.array(table)],
    }
    parts = None
    if keep_parts:
        parts = {"tissue": tissue, "negatives": neg, "calcium": calc, "streaks": streak}
    return SynthScan(hu, labels, geometry, patient_id(index), meta, parts)
