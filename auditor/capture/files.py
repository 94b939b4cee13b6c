"""Open a capture file by its content: pcap or pcapng, optionally gzip-compressed (read streaming)."""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import zlib

from auditor.capture._chunks import DEFAULT_CHUNK_BYTES, _Closable
from auditor.capture.pcap import PcapSource, is_pcap_magic
from auditor.capture.pcapng import PcapngSource, is_pcapng_magic
from auditor.errors import CaptureError

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952 §2.3.1 ID1 ID2
MAGIC_BYTES = 4


def open_capture(path: str | os.PathLike[str], chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> PcapSource | PcapngSource:
    """Return a packet source for the capture file at `path`, chosen by its magic number.

    Raises CaptureError if the file cannot be opened or is not a (gzip-compressed) pcap or pcapng.
    """
    name = os.fspath(path)
    try:
        raw = open(name, "rb")  # noqa: SIM115 (the source owns and closes it)
    except OSError as exc:
        raise CaptureError(f"{name}: cannot open: {exc.strerror or exc}") from exc
    closers: list[_Closable] = [raw]
    try:
        _advise_sequential(raw)
        stream: io.BufferedReader | gzip.GzipFile = raw
        head = _peek(raw, name)
        if head[:2] == GZIP_MAGIC:
            # Wrap, don't decompress: GzipFile inflates as the readers ask for chunks.
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
            closers.insert(0, stream)
            head = _peek(stream, name)
        if is_pcap_magic(head):
            return PcapSource(stream, name, chunk_bytes, closers)
        if is_pcapng_magic(head):
            return PcapngSource(stream, name, chunk_bytes, closers)
        if not head:
            what = "empty after gzip decompression" if stream is not raw else "empty file"
            raise CaptureError(f"{name}: {what}, not a capture")
        if len(head) < MAGIC_BYTES:
            raise CaptureError(f"{name}: too short for a capture file ({len(head)} bytes)")
        raise CaptureError(f"{name}: not a pcap or pcapng file (magic 0x{head.hex()})")
    except BaseException:
        for closer in closers:
            closer.close()
        raise


def _peek(stream: io.BufferedReader | gzip.GzipFile, name: str) -> bytes:
    """Return the first bytes of `stream` without consuming them."""
    try:
        return bytes(stream.peek(MAGIC_BYTES)[:MAGIC_BYTES])
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CaptureError(f"{name}: bad gzip stream: {exc}") from exc
    except OSError as exc:  # e.g. IsADirectoryError surfaces on the first read
        raise CaptureError(f"{name}: cannot read: {exc.strerror or exc}") from exc


def _advise_sequential(raw: io.BufferedReader) -> None:
    """Tell the kernel we read front to back (bigger readahead); harmless where unsupported."""
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(raw.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
