"""Training in physical units: the training grid (in-plane resampling and a fixed field of view).

:class:`TrainingGrid` is the one rule that maps a scan's native in-plane grid to a network's
training grid and maps results back. The cache applies it once per scan when the entry is built
(:mod:`cac_lightning.data.cache`, :func:`preprocess_scan`), so a network is trained at
``data.target_spacing_mm`` on ``data.fov_mm`` crops whatever matrix the source scans have; the
Predictor (:mod:`cac_lightning.inference.predictor`) applies the same rule to every scan it
predicts (:meth:`TrainingGrid.plan`), so the network sees a scan's pixels exactly as the cache
would have stored them, and maps the logits back to the native grid with the inverse of the
same transform (:meth:`GridPlan.to_native`). Slices are never resampled along z (gated CaSc
scans are 2.5–3 mm slices and the Agatston rule is per slice).

The rule, in this order:

1. Resample the whole slice to ``spacing_mm`` (sizes rounded *down*: ``floor(n · s / t)``
   pixels, exact scale factor ``s / t``; none when the scan is already at ``spacing_mm``, up
   to :data:`SAME_SPACING_RTOL`, or no spacing is set).
2. Cut a ``fov_mm`` square (``round(fov_mm / t)`` pixels) on the resampled grid, centred on the
   body centre of the resampled scan (or a given centre, e.g. the heart region's, mapped onto
   the resampled grid); padded with air where it reaches past the image.

Grid convention (the same as :func:`torch.nn.functional.interpolate` with
``align_corners=False`` and a fixed scale factor): the resampled grid shares the outer corner
of pixel (0, 0) with the source grid, so output pixel ``i`` is centred at source index
``(i + 0.5) * r - 0.5`` with ``r = target / source`` spacing, and the physical extent is kept
(``floor(n / r)`` pixels of ``target`` mm cover ``n`` pixels of ``source`` mm up to one pixel).

- HU: bilinear with anti-aliasing when pixels grow (``antialias=True``: a triangle filter as wide
  as the output pixel), rounded to int16.
- Labels: nearest neighbour (``nearest-exact``), then gated with the scan's own threshold:
  a resampled pixel keeps its calcium class only where its resampled HU is >= the threshold
  (:func:`cac_lightning.scoring.config.threshold_for_kvp`), so "calcium only at >= threshold"
  holds on the training grid exactly as on the native one.
- Field of view: a square of ``fov_mm`` (``round(fov_mm / spacing)`` pixels) centred on the
  *body centre*: the centroid of the largest connected region of pixels that are > -300 HU in at
  least half of the slices (soft tissue, blood, bone; not lung or air). In a gated CaSc scan the
  field of view is centred on the heart and this region is the mediastinum, chest wall and spine,
  so its centroid lies within a few cm of the heart. The window is shifted to stay inside the
  image where it fits and padded with air (-1024 HU, background label) where it does not.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from cac_lightning.volume import AIR_HU, Geometry

__all__ = [
    "AIR_HU",
    "BODY_HU",
    "SAME_SPACING_RTOL",
    "GridPlan",
    "Preprocessed",
    "TrainingGrid",
    "body_centre",
    "crop_fov",
    "cut_window",
    "fov_pixels",
    "fov_window",
    "window_slices",
    "preprocess_scan",
    "resample_scan",
    "resampled_size",
]

BODY_HU = -300.0  # body / mediastinum mask threshold for the field-of-view centre
SAME_SPACING_RTOL = 1e-6
"""Relative difference below which a pixel spacing counts as the training spacing (float noise
of a header, not a real difference): such a scan is not resampled."""


@dataclass
class Preprocessed:
    """A scan on the training grid.

    Attributes:
        hu: int16 (z, y, x) HU.
        labels: uint8 (z, y, x) calcium labels (0 where HU < threshold).
        geometry: the grid of ``hu`` (origin and spacing updated).
        native_geometry: the source grid.
        centre_yx: body centre (row, column) on the resampled grid before cropping, or None.
        lost_label_voxels: calcium voxels of the resampled map outside the field of view.
    """

    hu: np.ndarray
    labels: np.ndarray
    geometry: Geometry
    native_geometry: Geometry
    centre_yx: tuple[float, float] | None = None
    lost_label_voxels: int = 0


def resampled_size(n: int, spacing_mm: float, target_mm: float) -> int:
    """Pixels along an axis of ``n`` pixels of ``spacing_mm`` after resampling to ``target_mm``."""
    return max(1, int(math.floor(n * spacing_mm / target_mm + 1e-6)))


def fov_pixels(fov_mm: float, spacing_mm: float) -> int:
    """Side in pixels of a ``fov_mm`` square at ``spacing_mm``."""
    return max(1, int(round(fov_mm / spacing_mm)))


def resample_scan(
    hu: np.ndarray,
    labels: np.ndarray | None,
    geometry: Geometry,
    target_mm: float,
    threshold_hu: float,
) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
    """Resample every slice to square ``target_mm`` pixels (the grid convention above).

    Args:
        hu: (z, y, x) HU.
        labels: (z, y, x) integer classes, or None.
        geometry: the grid of ``hu``.
        target_mm: in-plane pixel spacing to resample to (mm, > 0).
        threshold_hu: the scan's calcium threshold; labels are kept only where the resampled
            HU is >= it.

    Returns:
        ``(hu int16, labels uint8 or None, geometry)`` on the new grid.
    """
    if not target_mm > 0:
        raise ValueError(f"target spacing must be > 0 mm, got {target_mm}")
    sy, sx = (float(v) for v in geometry.pixel_spacing)
    n_y, n_x = hu.shape[1:]
    size = (resampled_size(n_y, sy, target_mm), resampled_size(n_x, sx, target_mm))
    # The scale factor is target / source, so exact spacings are kept (the sizes round down).
    r_y, r_x = target_mm / sy, target_mm / sx
    out_hu = _interp_scaled(hu, size, (1 / r_y, 1 / r_x), "bilinear")
    out_hu = np.clip(np.rint(out_hu), -32768, 32767).astype(np.int16)
    out_labels = None
    if labels is not None:
        nearest = _interp_scaled(labels, size, (1 / r_y, 1 / r_x), "nearest-exact")
        out_labels = np.rint(nearest).astype(np.uint8)
        out_labels[out_hu < threshold_hu] = 0
    origin = geometry.index_to_mm(np.array([0.0, 0.5 * r_y - 0.5, 0.5 * r_x - 0.5]))
    geom = dataclasses.replace(
        geometry,
        shape=(int(hu.shape[0]), *size),
        pixel_spacing=(float(target_mm), float(target_mm)),
        origin=tuple(float(v) for v in origin),
    )
    return out_hu, out_labels, geom


def _interp_scaled(
    arr: np.ndarray, size: tuple[int, int], scale: tuple[float, float], mode: str
) -> np.ndarray:
    """``F.interpolate`` by an exact scale factor, cut to ``size``; slices in chunks."""
    import torch
    import torch.nn.functional as F

    kw: dict = {"align_corners": False, "antialias": True} if mode == "bilinear" else {}
    chunks = []
    for z0 in range(0, arr.shape[0], 16):
        t = torch.from_numpy(np.ascontiguousarray(arr[z0 : z0 + 16], dtype=np.float32))[:, None]
        out = F.interpolate(t, scale_factor=scale, mode=mode, recompute_scale_factor=False, **kw)
        chunks.append(out[:, 0, : size[0], : size[1]].numpy())
    out = np.concatenate(chunks) if chunks else np.zeros((0, *size), np.float32)
    if out.shape[1:] != size:  # floor of the interpolation size one below ours: edge-pad
        pad = [(0, 0), (0, size[0] - out.shape[1]), (0, size[1] - out.shape[2])]
        out = np.pad(out, pad, mode="edge")
    return out


def body_centre(hu: np.ndarray) -> tuple[float, float] | None:
    """(row, column) centroid of the body region (see the module docstring), or None if empty."""
    from scipy import ndimage

    frac = (np.asarray(hu) > BODY_HU).mean(axis=0) if hu.shape[0] else np.zeros(hu.shape[1:])
    mask = frac >= 0.5
    lab, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = np.bincount(lab.ravel())[1:]
    cy, cx = ndimage.center_of_mass(lab == (int(np.argmax(sizes)) + 1))
    return float(cy), float(cx)


def _start(centre: float, side: int, n: int) -> int:
    """Start index of a ``side`` window centred at ``centre``, kept inside [0, n) if it fits."""
    start = int(round(centre - (side - 1) / 2))
    if side <= n:
        return min(max(start, 0), n - side)
    return (n - side) // 2  # larger than the image: centre it (padded both sides)


Window = tuple[int, int, int, int]
"""``(row0, col0, rows, cols)`` of a window on a slice; row0/col0 < 0 where it reaches past."""


def fov_window(
    hu: np.ndarray, rows: int, cols: int, centre_yx: tuple[float, float] | None = None
) -> Window:
    """A ``rows`` x ``cols`` window around ``centre_yx`` of a (z, y, x) scan.

    ``centre_yx`` defaults to :func:`body_centre`, or the image centre when no body is found.
    The window is shifted to stay inside the image where it fits (see the module docstring).
    """
    n_y, n_x = hu.shape[1:]
    if centre_yx is None:
        centre_yx = body_centre(hu) or ((n_y - 1) / 2, (n_x - 1) / 2)
    return _start(centre_yx[0], rows, n_y), _start(centre_yx[1], cols, n_x), rows, cols


def window_slices(window: Window, shape: tuple[int, ...]) -> tuple[tuple[slice, ...], ...]:
    """``(in_window, in_image)`` (z, y, x) slices of the part of ``window`` inside a slice of
    (y, x) ``shape``."""
    y0, x0, rows, cols = window
    ys, ye = max(y0, 0), min(y0 + rows, shape[0])
    xs, xe = max(x0, 0), min(x0 + cols, shape[1])
    in_window = (slice(None), slice(ys - y0, ye - y0), slice(xs - x0, xe - x0))
    return in_window, (slice(None), slice(ys, ye), slice(xs, xe))


def cut_window(arr: np.ndarray, window: Window, fill: float) -> np.ndarray:
    """The ``window`` of every slice of a (z, y, x) array; ``fill`` where it reaches past."""
    out = np.full((arr.shape[0], *window[2:]), fill, dtype=arr.dtype)
    in_window, in_image = window_slices(window, arr.shape[1:])
    out[in_window] = arr[in_image]
    return out


def crop_fov(
    hu: np.ndarray,
    labels: np.ndarray | None,
    geometry: Geometry,
    fov_mm: float,
    centre_yx: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, Geometry, int]:
    """Cut a ``fov_mm`` square (``fov_pixels`` per side) around ``centre_yx``.

    Args:
        hu / labels / geometry: the scan (square pixels expected; the side uses the row
            spacing).
        fov_mm: side of the field of view (mm, > 0).
        centre_yx: (row, column) centre; default :func:`body_centre`, or the image centre when
            no body is found.

    Returns:
        ``(hu, labels, geometry, lost)``; ``lost`` counts label voxels > 0 left outside.
    """
    if not fov_mm > 0:
        raise ValueError(f"fov_mm must be > 0, got {fov_mm}")
    side = fov_pixels(fov_mm, float(geometry.pixel_spacing[0]))
    window = fov_window(hu, side, side, centre_yx)
    out_hu = cut_window(np.asarray(hu, dtype=np.int16), window, AIR_HU)
    out_labels, lost = None, 0
    if labels is not None:
        out_labels = cut_window(np.asarray(labels, dtype=np.uint8), window, 0)
        lost = int(np.count_nonzero(labels)) - int(np.count_nonzero(out_labels))
    origin = geometry.index_to_mm(np.array([0.0, float(window[0]), float(window[1])]))
    geom = dataclasses.replace(
        geometry, shape=(hu.shape[0], side, side), origin=tuple(float(v) for v in origin)
    )
    return out_hu, out_labels, geom, lost


def preprocess_scan(
    hu: np.ndarray,
    labels: np.ndarray | None,
    geometry: Geometry,
    threshold_hu: float,
    target_spacing_mm: float | None = None,
    fov_mm: float | None = None,
) -> Preprocessed:
    """``TrainingGrid(target_spacing_mm, fov_mm).preprocess(...)`` (see :class:`TrainingGrid`).

    Args:
        hu: (z, y, x) HU.
        labels: (z, y, x) classes or None.
        geometry: the grid of ``hu``.
        threshold_hu: the scan's calcium threshold (the label gate after resampling).
        target_spacing_mm: in-plane spacing of the training grid; None keeps the native one.
        fov_mm: side of the square field of view; None keeps the whole slice.

    Returns:
        The :class:`Preprocessed` scan.
    """
    grid = TrainingGrid(target_spacing_mm, fov_mm)
    return grid.preprocess(hu, labels, geometry, threshold_hu)


@dataclass(frozen=True)
class TrainingGrid:
    """The training grid of a network: in-plane spacing and square field of view (the module
    docstring gives the rule).

    Args:
        spacing_mm: training in-plane pixel spacing (mm); None keeps each scan's own.
        fov_mm: side of the square field of view (mm); None keeps whole slices.
    """

    spacing_mm: float | None = None
    fov_mm: float | None = None

    def __post_init__(self) -> None:
        for name in ("spacing_mm", "fov_mm"):
            value = getattr(self, name)
            if value is not None and not float(value) > 0:
                raise ValueError(f"{name} must be > 0 mm or None, got {value}")

    def scale(self, pixel_spacing: tuple[float, float]) -> tuple[float, float] | None:
        """``(r_y, r_x) = spacing_mm / pixel spacing``, or None when slices are not resampled."""
        if self.spacing_mm is None:
            return None
        target = float(self.spacing_mm)
        spacing = tuple(float(s) for s in pixel_spacing)
        if all(abs(s - target) <= SAME_SPACING_RTOL * target for s in spacing):
            return None
        return target / spacing[0], target / spacing[1]

    def grid_spacing(self, pixel_spacing: tuple[float, float]) -> tuple[float, float]:
        """(row, column) spacing of the resampled grid of a scan with ``pixel_spacing``."""
        if self.scale(pixel_spacing) is None:
            return tuple(float(s) for s in pixel_spacing)  # type: ignore[return-value]
        return float(self.spacing_mm), float(self.spacing_mm)  # type: ignore[arg-type]

    def resample(
        self,
        hu: np.ndarray,
        labels: np.ndarray | None,
        geometry: Geometry,
        threshold_hu: float,
    ) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
        """Step 1: :func:`resample_scan` to ``spacing_mm`` (at that spacing the HU unchanged and
        the labels gated, as a factor-1 resampling would; no spacing set: all unchanged)."""
        if self.spacing_mm is None:
            return hu, labels, geometry
        target = float(self.spacing_mm)
        if self.scale(geometry.pixel_spacing) is not None:
            return resample_scan(hu, labels, geometry, target, threshold_hu)
        # At the training spacing: what resampling by a factor 1 gives, without the arithmetic.
        if labels is not None:
            labels = np.where(np.asarray(hu) >= threshold_hu, labels, 0).astype(np.uint8)
        return hu, labels, dataclasses.replace(geometry, pixel_spacing=(target, target))

    def window(
        self,
        grid_hu: np.ndarray,
        grid_spacing: tuple[float, float],
        centre_yx: tuple[float, float] | None = None,
    ) -> Window | None:
        """Step 2: the field-of-view window of a resampled (z, y, x) scan (None: no field of
        view set, the whole slice); ``centre_yx`` on the resampled grid, default its
        :func:`body_centre`."""
        if self.fov_mm is None:
            return None
        side = fov_pixels(float(self.fov_mm), float(grid_spacing[0]))
        return fov_window(grid_hu, side, side, centre_yx)

    def preprocess(
        self,
        hu: np.ndarray,
        labels: np.ndarray | None,
        geometry: Geometry,
        threshold_hu: float,
        centre_yx: tuple[float, float] | None = None,
    ) -> Preprocessed:
        """A scan (and its label map) on the training grid: what the cache stores.

        Args:
            hu: (z, y, x) HU.
            labels: (z, y, x) classes or None.
            geometry: the grid of ``hu``.
            threshold_hu: the scan's calcium threshold (the label gate after resampling).
            centre_yx: field-of-view centre on the *native* grid; default the body centre of
                the resampled scan.

        Returns:
            The :class:`Preprocessed` scan.
        """
        native = geometry
        scale = self.scale(geometry.pixel_spacing)
        hu, labels, geometry = self.resample(hu, labels, geometry, threshold_hu)
        centre, lost = None, 0
        if self.fov_mm is not None:
            centre = body_centre(hu) if centre_yx is None else native_to_grid_yx(centre_yx, scale)
            hu, labels, geometry, lost = crop_fov(hu, labels, geometry, float(self.fov_mm), centre)
        return Preprocessed(
            hu=np.ascontiguousarray(hu, dtype=np.int16),
            labels=None if labels is None else np.ascontiguousarray(labels, dtype=np.uint8),
            geometry=geometry,
            native_geometry=native,
            centre_yx=centre,
            lost_label_voxels=lost,
        )

    def plan(
        self,
        hu: np.ndarray,
        pixel_spacing: tuple[float, float] | None,
        centre_yx: tuple[float, float] | None = None,
    ) -> GridPlan:
        """How a (z, y, x) scan is put on the training grid for prediction: its resampled HU
        (int16, exactly as :meth:`preprocess` stores them) and field-of-view window.

        Args:
            hu: (z, y, x) native HU.
            pixel_spacing: (row, column) mm; None (a bare array of a checkpoint that records
                no spacing): predicted as it is, whole slices.
            centre_yx: field-of-view centre on the native grid (e.g. the heart region's);
                default the body centre of the resampled scan, as in training.
        """
        native_yx = tuple(int(n) for n in np.shape(hu)[1:])
        if pixel_spacing is None:
            return GridPlan(np.asarray(hu), native_yx, None, None)
        geometry = Geometry(
            shape=tuple(int(n) for n in np.shape(hu)),  # type: ignore[arg-type]
            pixel_spacing=tuple(float(s) for s in pixel_spacing),  # type: ignore[arg-type]
            slice_spacing=1.0,
        )
        scale = self.scale(geometry.pixel_spacing)
        grid_hu, _, grid_geometry = self.resample(np.asarray(hu), None, geometry, 0.0)
        centre = None if centre_yx is None else native_to_grid_yx(centre_yx, scale)
        window = self.window(grid_hu, grid_geometry.pixel_spacing, centre)
        return GridPlan(grid_hu, native_yx, scale, window)


def native_to_grid_yx(
    yx: tuple[float, float], scale: tuple[float, float] | None
) -> tuple[float, float]:
    """A (row, column) position on the native grid in resampled-grid pixels (the grid
    convention: native index ``i`` is at grid index ``(i + 0.5) / r - 0.5``)."""
    if scale is None:
        return float(yx[0]), float(yx[1])
    return tuple((float(c) + 0.5) / r - 0.5 for c, r in zip(yx, scale, strict=True))  # type: ignore[return-value]


@dataclass
class GridPlan:
    """One scan on the training grid, for prediction (:meth:`TrainingGrid.plan`).

    Attributes:
        grid_hu: (z, gy, gx) HU on the resampled grid (the native array when not resampled).
        native_yx: the native slice size (rows, columns).
        scale: ``(r_y, r_x)`` training / native spacing, or None when not resampled.
        window: the field-of-view window on the resampled grid, or None (whole slices).
    """

    grid_hu: np.ndarray
    native_yx: tuple[int, int]
    scale: tuple[float, float] | None
    window: Window | None

    def network_hu(self, start: int, stop: int, context: int = 0) -> np.ndarray:
        """(b + 2 * context, rows, cols) HU of slices ``start:stop`` and ``context`` slices on
        each side (the edge slice repeated past either end,
        :func:`~cac_lightning.models.inputs.context_indices`) as the network sees them (the
        window, air where it reaches past the image)."""
        n = len(self.grid_hu)
        lo, hi = max(start - context, 0), min(stop + context, n)
        part = np.asarray(self.grid_hu[lo:hi])
        if context:
            from cac_lightning.models.inputs import context_indices  # torch: prediction only

            part = part[context_indices(n, start, stop, context) - lo]
        return part if self.window is None else cut_window(part, self.window, AIR_HU)

    def to_native(self, values, mode: str = "bilinear"):
        """Map (B, C, rows, cols) values on the network's window back to the native grid.

        The inverse of the plan: the window's part inside the resampled grid is put in place
        (``bilinear``: edge values continue past the window; ``nearest``: 0 there), then the
        grid is interpolated with the exact scale factor ``r`` (native pixel ``i`` from grid
        position ``(i + 0.5) / r - 0.5``; ``bilinear`` or ``nearest-exact``) and edge-padded to
        the native size (its last pixels lie within one grid pixel of the grid's edge).

        Args:
            values: (B, C, rows, cols) float tensor (logits, or a 0/1 mask with ``nearest``).
            mode: ``bilinear`` or ``nearest``.

        Returns:
            (B, C, H, W) tensor on the native grid.
        """
        import torch.nn.functional as F

        if mode not in ("bilinear", "nearest"):
            raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
        if self.window is not None:
            grid_yx = tuple(int(n) for n in self.grid_hu.shape[1:])
            in_window, in_image = window_slices(self.window, grid_yx)
            values = values[..., in_window[1], in_window[2]]
            ys, xs = in_image[1], in_image[2]
            pad = (xs.start, grid_yx[1] - xs.stop, ys.start, grid_yx[0] - ys.stop)
            if any(pad):
                if mode == "bilinear":
                    values = F.pad(values, pad, mode="replicate")
                else:
                    values = F.pad(values, pad, value=0.0)
        if self.scale is None:
            return values
        if mode == "bilinear":
            out = F.interpolate(
                values,
                scale_factor=self.scale,
                mode="bilinear",
                align_corners=False,
                recompute_scale_factor=False,
            )
        else:
            out = F.interpolate(
                values, scale_factor=self.scale, mode="nearest-exact", recompute_scale_factor=False
            )
        out = out[..., : self.native_yx[0], : self.native_yx[1]]
        ph, pw = self.native_yx[0] - out.shape[-2], self.native_yx[1] - out.shape[-1]
        if ph or pw:
            out = F.pad(out, (0, pw, 0, ph), mode="replicate")
        return out

    def inside(self, device=None):
        """(H, W) bool tensor: native pixels whose nearest grid pixel lies in the window."""
        import torch

        rows, cols = self.window[2:] if self.window is not None else self.grid_hu.shape[1:]
        ones = torch.ones(1, 1, int(rows), int(cols), device=device)
        return self.to_native(ones, "nearest")[0, 0] > 0.5
