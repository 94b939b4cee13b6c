"""Data shipped with the package: the dated OUI snapshot."""
