"""Outputs: ECS-shaped JSON lines, written to streams the caller opens (or by a forked writer)."""

from __future__ import annotations

from auditor.output.background import BackgroundSink
from auditor.output.ecs import ECS_VERSION, flow_documents, flow_json_lines
from auditor.output.jsonl import JsonLinesWriter

__all__ = ["ECS_VERSION", "BackgroundSink", "JsonLinesWriter", "flow_documents", "flow_json_lines"]
