"""Every real capture in ../shared/pcaps/real runs through the whole engine without an exception."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from auditor.decode.types import SKIP_REASONS
from auditor.flows.types import END_REASONS
from tests.conftest import CORPUS, corpus_files, run_engine

pytestmark = pytest.mark.corpus


def _manifest_packets() -> dict[str, int]:
    """Packet counts per file from the corpus MANIFEST (capinfos' figures)."""
    manifest = CORPUS / "MANIFEST.md"
    if not manifest.is_file():
        return {}
    counts = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 8 and re.fullmatch(r"\d+", cells[7] or ""):
            counts[cells[1]] = int(cells[7])
    return counts


MANIFEST = _manifest_packets()


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_engine_reads_every_real_capture(path: Path) -> None:
    flows, stats = run_engine([path])
    assert stats.errors == []
    if path.name in MANIFEST:
        assert stats.frames == MANIFEST[path.name]
    assert stats.frames == stats.ip_packets + stats.arp_frames + stats.other_l2_frames + sum(
        n for reason, n in stats.skipped.items() if reason in SKIP_REASONS
    )
    assert set(stats.skipped) <= set(SKIP_REASONS) | {"truncated-record", "unknown-interface"}
    assert stats.flows == sum(len(batch) for batch in flows)
    assert set(stats.flows_by_end) <= set(END_REASONS)
    total_packets = sum(int(b.src_packets.sum() + b.dst_packets.sum()) for b in flows)
    # every IP packet lands in exactly one flow
    assert total_packets == stats.ip_packets


def test_manifest_was_read(corpus: Path) -> None:
    assert len(MANIFEST) >= 50


def test_cut_short_capture_warns_with_the_byte_offset(corpus: Path) -> None:
    _, stats = run_engine([corpus / "suricata-verify__pgsql-5000-query-results_CUT-SHORT.pcap"])
    assert len(stats.warnings) == 1
    assert re.search(r"at byte \d+", stats.warnings[0])
    assert stats.frames == 785
