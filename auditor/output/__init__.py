"""Outputs: ECS-shaped JSON lines and CSV, written to streams the caller opens."""
