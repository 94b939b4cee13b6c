"""Shared fixtures: the real-capture corpus in ../shared, tshark, and running the engine on a file."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from auditor.config import Settings
from auditor.flows.community_id import with_community_ids
from auditor.flows.types import FlowRecords
from auditor.pipeline import RunStats, analyze_files

# Hypothesis: a quick default for every run; HYPOTHESIS_PROFILE=fuzz for a long hunt. Tests that
# set max_examples themselves keep their own count.
settings.register_profile("default", deadline=None)
settings.register_profile("fuzz", deadline=None, max_examples=5_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "pcaps" / "real"


def corpus_files() -> list[Path]:
    """Return every capture of the shared real corpus (empty when ../shared is absent)."""
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng", ".gz"))


@pytest.fixture
def corpus() -> Path:
    """The shared corpus folder; skips the test when it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus absent: {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def tshark() -> str:
    """Path of tshark; skips the test when it is not installed."""
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark not installed")
    return path


def run_engine(paths: list[Path], settings: Settings | None = None) -> tuple[list[FlowRecords], RunStats]:
    """Run the offline pipeline and return every finished-flow batch plus the run stats."""
    out: list[FlowRecords] = []
    stats = analyze_files(paths, settings or Settings(), lambda r: out.append(with_community_ids(r)))
    return out, stats


@pytest.fixture
def engine() -> Callable[..., tuple[list[FlowRecords], RunStats]]:
    """The offline pipeline as a function: engine([paths]) -> (flow batches, stats)."""
    return run_engine


def finishes_within(seconds: float, fn: Callable[[], object]) -> tuple[bool, BaseException | None]:
    """Run fn in a thread; return (finished in time?, what it raised)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            raised.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    return not t.is_alive(), (raised[0] if raised else None)
