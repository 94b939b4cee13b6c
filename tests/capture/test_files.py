"""open_capture: format sniffing, gzip streaming, bad files, and the real capture corpus."""

from __future__ import annotations

import gc
import gzip
import os
import re
import shutil
import struct
import subprocess
import warnings
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from auditor.capture import MemorySource, PacketSource, PcapngSource, PcapSource, open_capture
from auditor.errors import CaptureError

CORPUS = Path(__file__).parents[2] / ".." / "shared" / "pcaps" / "real"
CUT_SHORT = "suricata-verify__pgsql-5000-query-results_CUT-SHORT.pcap"


def pcap_bytes(payloads: list[bytes], order: str = "<") -> bytes:
    out = [struct.pack(f"{order}IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, data in enumerate(payloads):
        out.append(struct.pack(f"{order}IIII", 1_600_000_000 + i, i, len(data), len(data)) + data)
    return b"".join(out)


def pcapng_bytes(payloads: list[bytes]) -> bytes:
    out = [struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)]
    out.append(struct.pack("<IIHHII", 1, 20, 1, 0, 0, 20))
    for i, data in enumerate(payloads):
        padded = data + b"\0" * (-len(data) % 4)
        n = 32 + len(padded)
        out.append(struct.pack("<IIIIIII", 6, n, 0, 0, i, len(data), len(data)) + padded + struct.pack("<I", n))
    return b"".join(out)


def random_payloads(n: int, seed: int = 0, max_len: int = 1500) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, int(k), dtype=np.uint8).tobytes() for k in rng.integers(0, max_len, n)]


def read_all(src: PacketSource, max_frames: int = 65536) -> list[bytes]:
    return [b.frame(i) for b in src.batches(max_frames) for i in range(len(b))]


def write(path: Path, blob: bytes) -> Path:
    path.write_bytes(blob)
    return path


# --- dispatch by content -------------------------------------------------------------------------


def test_open_capture_sniffs_pcap_and_pcapng_whatever_the_name(tmp_path: Path) -> None:
    payloads = random_payloads(20)
    pcap = write(tmp_path / "really-pcap.pcapng", pcap_bytes(payloads))
    ng = write(tmp_path / "really-pcapng.pcap", pcapng_bytes(payloads))
    with open_capture(pcap) as a, open_capture(ng) as b:
        assert isinstance(a, PcapSource) and isinstance(b, PcapngSource)
        assert read_all(a) == read_all(b) == payloads


def test_open_capture_reads_big_endian_pcap(tmp_path: Path) -> None:
    payloads = random_payloads(5, seed=1)
    with open_capture(write(tmp_path / "be.pcap", pcap_bytes(payloads, order=">"))) as src:
        assert read_all(src) == payloads


def test_open_capture_names_the_source_as_given(tmp_path: Path) -> None:
    path = write(tmp_path / "x.pcap", pcap_bytes([]))
    with open_capture(path) as a, open_capture(str(path)) as b:
        assert a.name == b.name == str(path)


def test_open_capture_header_only_pcap_yields_no_frames(tmp_path: Path) -> None:
    with open_capture(write(tmp_path / "e.pcap", pcap_bytes([]))) as src:
        assert read_all(src) == []
        assert src.stats.warnings == [] and src.stats.frames == 0


def test_open_capture_passes_chunk_bytes_through(tmp_path: Path) -> None:
    payloads = random_payloads(50, seed=2, max_len=200)
    with open_capture(write(tmp_path / "c.pcap", pcap_bytes(payloads)), chunk_bytes=256) as src:
        batches = list(src.batches())
        assert len(batches) > 10
        assert [b.frame(i) for b in batches for i in range(len(b))] == payloads


def test_closed_source_yields_nothing(tmp_path: Path) -> None:
    with open_capture(write(tmp_path / "c.pcap", pcap_bytes(random_payloads(3)))) as src:
        pass
    assert list(src.batches()) == []
    assert src.stats.warnings == []


# --- gzip ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_open_capture_streams_gzip(tmp_path: Path, kind: str) -> None:
    payloads = random_payloads(300, seed=3)
    blob = pcap_bytes(payloads) if kind == "pcap" else pcapng_bytes(payloads)
    path = write(tmp_path / f"c.{kind}.gz", gzip.compress(blob))
    with open_capture(path, chunk_bytes=4096) as src:
        batches = list(src.batches())
        assert [b.frame(i) for b in batches for i in range(len(b))] == payloads
        assert max(b.data.nbytes for b in batches) <= 4096 + 1600  # never the whole file in memory
        assert src.stats.warnings == []
        assert src.stats.bytes_read == path.stat().st_size  # compressed bytes: progress against the file size


@pytest.mark.parametrize("keep", [0.3, 0.5, 0.9])
def test_open_capture_truncated_gzip_keeps_frames_and_warns_once(tmp_path: Path, keep: float) -> None:
    payloads = random_payloads(200, seed=4)  # random bytes: the compressed cut lands mid-stream
    compressed = gzip.compress(pcap_bytes(payloads))
    path = write(tmp_path / "t.pcap.gz", compressed[: int(len(compressed) * keep)])
    with open_capture(path, chunk_bytes=4096) as src:
        got = read_all(src)
    assert 0 < len(got) < len(payloads) and got == payloads[: len(got)]
    [warning] = src.stats.warnings
    # the byte offset is in the uncompressed stream: where the first unread record starts
    next_record = 24 + sum(16 + len(p) for p in got)
    assert re.fullmatch(
        rf"{re.escape(str(path))}: (truncated record( header)? at byte {next_record} \(needs \d+ bytes, \d+ left\)"
        rf"|stream ends at byte {next_record}); compressed stream ends early \(.+\); read {len(got)} frames",
        warning,
    ), warning


def test_open_capture_damaged_gzip_warns_instead_of_raising(tmp_path: Path) -> None:
    payloads = random_payloads(100, seed=5)
    compressed = bytearray(gzip.compress(pcap_bytes(payloads)))
    compressed[len(compressed) // 2 : len(compressed) // 2 + 8] = b"\xff" * 8
    with open_capture(write(tmp_path / "d.pcap.gz", bytes(compressed))) as src:
        got = read_all(src)
    assert len(got) <= len(payloads)
    assert len(src.stats.warnings) == 1  # zlib or CRC error, or a garbage record: one warning either way


# --- not a capture -------------------------------------------------------------------------------


def open_fails(path: Path | str, match: str) -> CaptureError:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CaptureError, match=match) as info:
            open_capture(path)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]  # the file was closed
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)
    return info.value


def test_open_capture_missing_file_is_a_capture_error(tmp_path: Path) -> None:
    err = open_fails(tmp_path / "nope.pcap", r"nope\.pcap: cannot open: No such file or directory")
    assert isinstance(err.__cause__, FileNotFoundError)


def test_open_capture_directory_is_a_capture_error(tmp_path: Path) -> None:
    err = open_fails(tmp_path, f"{re.escape(str(tmp_path))}: cannot (open|read): Is a directory")
    assert isinstance(err.__cause__, IsADirectoryError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_open_capture_unreadable_file_is_a_capture_error(tmp_path: Path) -> None:
    path = write(tmp_path / "locked.pcap", pcap_bytes([]))
    path.chmod(0)
    open_fails(path, "cannot open: Permission denied")


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"", r"empty file, not a capture"),
        (b"\xd4\xc3", r"too short for a capture file \(2 bytes\)"),
        (b"hello, world\n", r"not a pcap or pcapng file \(magic 0x68656c6c\)"),
        (pcap_bytes([])[:20], r"too short for a pcap global header \(20 of 24 bytes\)"),
        (pcapng_bytes([])[:16], r"too short for a pcapng section header"),
        (b"\x1f\x8b" + b"not really gzip" * 4, r"bad gzip stream"),
        (gzip.compress(b""), r"empty after gzip decompression, not a capture"),
        (gzip.compress(b"%PDF-1.7 and so on"), r"not a pcap or pcapng file \(magic 0x25504446\)"),
    ],
    ids=["empty", "two-bytes", "text", "short-pcap", "short-pcapng", "bad-gzip", "empty-gzip", "gzip-pdf"],
)
def test_open_capture_rejects_what_is_not_a_capture(tmp_path: Path, blob: bytes, match: str) -> None:
    path = write(tmp_path / "bad.pcap", blob)
    open_fails(path, f"^{re.escape(str(path))}: {match}")


def test_memory_source_and_file_sources_share_the_interface(tmp_path: Path) -> None:
    sources: list[PacketSource] = [
        MemorySource([b"a"]),
        open_capture(write(tmp_path / "a.pcap", pcap_bytes([b"a"]))),
        open_capture(write(tmp_path / "a.pcapng", pcapng_bytes([b"a"]))),
    ]
    for src in sources:
        assert read_all(src) == [b"a"]
        assert src.stats.frames == 1 and isinstance(src.name, str)
        src.close()


# --- the real corpus -----------------------------------------------------------------------------


def manifest_packets() -> dict[str, int]:
    """Return file name -> packet count from the corpus MANIFEST.md table (empty if absent)."""
    manifest = CORPUS / "MANIFEST.md"
    if not manifest.is_file():
        return {}
    counts: dict[str, int] = {}
    column = None
    for line in manifest.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if column is None and "packets" in cells:
            column = cells.index("packets")
        elif column is not None and len(cells) > column and cells[column].isdigit():
            counts[cells[0]] = int(cells[column])
    return counts


MANIFEST = manifest_packets()
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"{CORPUS} is absent")


@pytest.mark.corpus
@needs_corpus
def test_corpus_manifest_lists_every_file() -> None:
    files = sorted(p.name for p in CORPUS.iterdir() if p.name != "MANIFEST.md")
    assert sorted(MANIFEST) == files


@pytest.mark.corpus
@needs_corpus
@pytest.mark.parametrize("name", sorted(MANIFEST) or ["(no corpus)"])
def test_corpus_file_reads_its_manifest_packet_count(name: str) -> None:
    with open_capture(CORPUS / name) as src:
        got = sum(len(b) for b in src.batches())
    assert got == MANIFEST[name]
    if name == CUT_SHORT:
        [warning] = src.stats.warnings
        assert warning.endswith("truncated record header at byte 3276005 (needs 16 bytes, 1 left); read 785 frames")
    else:
        assert src.stats.warnings == [] and src.stats.skipped == {}


@pytest.mark.corpus
@pytest.mark.oracle
@needs_corpus
@pytest.mark.skipif(shutil.which("capinfos") is None, reason="capinfos is not installed")
def test_corpus_packet_counts_equal_capinfos() -> None:
    for path in sorted(CORPUS.glob("*.pcap*")):
        out = subprocess.run(["capinfos", "-M", "-c", str(path)], capture_output=True, text=True).stdout
        match = re.search(r"Number of packets:\s+(\d+)", out)
        assert match, out
        with open_capture(path) as src:
            assert sum(len(b) for b in src.batches()) == int(match.group(1)), path.name


ORACLE_FILES = [
    "zeek__pcapng-multi-interface.pcapng",  # per-interface timestamp resolutions
    "ndpi__quic-v2.pcapng",  # nanosecond pcapng, Linux SLL
    "ndpi__rtsp.pcap",  # a pcapng file named .pcap
    "zeek__linux_dlt_sll2.pcap",
    CUT_SHORT,
]


@pytest.mark.corpus
@pytest.mark.oracle
@needs_corpus
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("name", ORACLE_FILES)
def test_corpus_timestamps_and_lengths_equal_tshark(name: str) -> None:
    fields = ["frame.time_epoch", "frame.len", "frame.cap_len"]
    cmd = ["tshark", "-r", str(CORPUS / name), "-T", "fields", *[a for f in fields for a in ("-e", f)]]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    want = [(int(Decimal(t) * 10**9), int(n), int(c)) for t, n, c in (line.split("\t") for line in out.splitlines())]
    with open_capture(CORPUS / name) as src:
        got = [
            (int(t), int(w), int(c))
            for b in src.batches()
            for t, w, c in zip(b.ts_ns.tolist(), b.wirelen.tolist(), b.caplen.tolist(), strict=True)
        ]
    assert got == want
