"""The live sensor: the flow engine on a capture interface, run for months by systemd."""
