"""The Hydra configs (``conf/`` at the top of the repository, ``cac_lightning.conf`` installed).

The folder is mapped into the package (``setup.py``), so a wheel ships it and ``cac-train``
composes from it in any working folder. Users add their own configs in ``./conf``.
"""
