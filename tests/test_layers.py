"""Each stage imports only what STYLE.md's layer table allows: data flows one way."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "auditor"

# module prefix -> prefixes it may import from auditor (besides itself)
ALLOWED: dict[str, tuple[str, ...]] = {
    "auditor.errors": (),
    "auditor.runtime": (),
    "auditor.paths": (),
    "auditor.yamlfile": ("auditor.errors",),
    "auditor.protocols": (),  # stdlib only: every parser fuzzes alone
    "auditor.geo": ("auditor.errors",),  # maxminddb and one error type: a reader object, nothing else
    "auditor.capture": ("auditor.errors", "auditor.runtime"),
    "auditor.decode": ("auditor.errors", "auditor.capture.types"),
    "auditor.flows": ("auditor.errors", "auditor.decode.types"),
    "auditor.output": (
        "auditor.errors", "auditor.runtime", "auditor.flows.types", "auditor.devices.types", "auditor.policy.types",
        "auditor.geo.types", "auditor.names.types",
    ),
    # evidence for a finding is cut from the very capture files of its run: it reads them with the
    # capture and decode stages and matches packets by the flow stage's Community ID (checked first)
    "auditor.store.evidence": ("auditor.errors", "auditor.capture", "auditor.decode", "auditor.flows.community_id",
                               "auditor.flows.fragments", "auditor.flows.types", "auditor.store"),
    # reports read the store and render; CSV cells are neutralised as the device CSV's are
    "auditor.report": ("auditor.errors", "auditor.store", "auditor.output.devices"),
    # the store reads a run's output files back (output.reread) and writes SQLite
    "auditor.store": ("auditor.errors", "auditor.output.reread", "auditor.flows.types", "auditor.devices.types",
                      "auditor.policy.types", "auditor.paths"),
    # the names stage reads parsed payloads (protocols/) handed over by the flow stage
    "auditor.names": ("auditor.errors", "auditor.protocols", "auditor.flows.types", "auditor.flows.payloads"),
    # the policy stage reads rule files and judges flow columns; it reuses the flow stage's vectorised
    # network matcher and Community ID (for the sample IDs of an alert) rather than copying them
    "auditor.policy": (
        "auditor.errors",
        "auditor.yamlfile",
        "auditor.devices.types",
        "auditor.flows.types",
        "auditor.flows.localnet",
        "auditor.flows.community_id",
        "auditor.names.types",
        "auditor.geo.types",
    ),
    "auditor.devices": (
        "auditor.errors",
        "auditor.yamlfile",
        "auditor.protocols",
        "auditor.decode.types",
        "auditor.flows.types",
        "auditor.names.types",
    ),
    # settings validate local networks with the flow stage's parser, and nothing else
    "auditor.config": ("auditor.errors", "auditor.flows.localnet"),
}
ONLY_FOR_ENTRY_POINTS = ("auditor.config",)
ENTRY_POINTS = ("auditor.cli", "auditor.pipeline")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name == "auditor" or name.startswith("auditor.")}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_stages_import_only_earlier_stage_types() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        stage = next((p for p in ALLOWED if _under(module, p)), None)
        for imported in _imports(path):
            if imported == "auditor" or (stage and _under(imported, stage)):
                continue
            if any(_under(module, e) for e in ENTRY_POINTS):
                if imported == "auditor.cli":
                    problems.append(f"{module} imports {imported}")
                continue
            if stage is None:
                continue
            if not any(_under(imported, allowed) for allowed in ALLOWED[stage]):
                problems.append(f"{module} imports {imported}")
            if any(_under(imported, o) for o in ONLY_FOR_ENTRY_POINTS):
                problems.append(f"{module} reads settings ({imported}); only cli/pipeline may")
    assert problems == []


def test_layer_check_sees_every_stage() -> None:
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    for stage in ALLOWED:
        assert any(_under(m, stage) for m in modules), f"no module under {stage}"
