"""span-auditor: a passive auditor of what cameras and scanners on a network are and where they send data."""

__version__ = "0.1.0"
