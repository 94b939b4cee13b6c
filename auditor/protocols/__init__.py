"""Payload parsers, one module per protocol: `parse(payload) -> Record | None`, stdlib only.

Each parser does bounded work, never raises on any input (hostile bytes give None), and returns a
frozen record whose `facts()` are (field, value) pairs that describe the SENDER of the payload
(what it is, what it runs, what it looked up or called): the device classifier matches
signatures (rules/fingerprints) against them.
"""
