"""Synthetic ECG-gated non-contrast cardiac CT with coronary calcium labels (the default data).

A vectorised numpy phantom calibrated on the COCA sample: chest wall, lungs, mediastinal fat,
heart, great vessels, bone, coronary centre-lines (LM, LAD, CX, RCA) with calcified plaques,
and unlabelled hard negatives (aortic and valve calcification, stents, calcified costal
cartilage, textured sternum and ribs, osteophytes, sternal wires, surgical clips). See
docs/synthetic.md.

Example:
    >>> from cac_lightning.sources.synthetic import generate_cohort
    >>> manifest = generate_cohort("/tmp/synth", 20, seed=0, size=128)
"""

from __future__ import annotations

from cac_lightning.sources.synthetic.cohort import (
    COHORT_VERSION,
    SPLIT_RULES,
    assign_splits,
    cohort_split_rule,
    cohort_version,
    generate_cohort,
    prepare_cohort,
    write_scan,
)
from cac_lightning.sources.synthetic.phantom import (
    SynthOptions,
    SynthScan,
    is_stent_scan,
    is_sternotomy_scan,
    is_zero_scan,
    make_scan,
    patient_id,
)

__all__ = [
    "COHORT_VERSION",
    "SPLIT_RULES",
    "SynthOptions",
    "SynthScan",
    "assign_splits",
    "cohort_split_rule",
    "cohort_version",
    "generate_cohort",
    "is_sternotomy_scan",
    "is_stent_scan",
    "is_zero_scan",
    "make_scan",
    "patient_id",
    "prepare_cohort",
    "write_scan",
]
