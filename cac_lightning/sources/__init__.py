"""Where scans come from: the synthetic cohort generator and dataset importers (COCA, ...).

A source's whole contract with training is the **manifest layout** it writes into a folder::

    DIR/manifest.csv        one row per scan: scan_id, patient_id (a pseudonym), image, label,
                            split (train/val/test/test_zero) and the reference scores
                            ref_<vessel>_<agatston|volume_mm3|mass_mg>; the schema's one home
                            is :mod:`cac_lightning.io.manifest`
    DIR/<image files>       CT volumes in HU (NIfTI/MHA/NRRD), paths relative to DIR
    DIR/<label files>       label maps on the image grid: 0 background, 1 LM, 2 LAD, 3 CX, 4 RCA

The training pipeline (:mod:`cac_lightning.data`) only reads that layout; it never generates
or guesses data for a manifest dataset. A new importer goes here, writes that layout, and gets
a console script in :mod:`cac_lightning.cli`.
"""
