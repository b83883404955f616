"""cac-lightning: automated coronary artery calcium scoring on gated cardiac CT."""

__version__ = "0.1.0"
