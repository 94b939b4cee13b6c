"""One exception tree for the whole auditor; the CLI maps each branch to an exit code.

AuditorError            base; never raised itself
├── ConfigError         2  bad flag, auditor.toml, environment
│   └── RuleFileError   2  carries path, line, field
├── CaptureError        2  not a capture file, unreadable file, no such interface
├── StoreError          4  database locked, schema newer than code
└── OutputError         4  cannot write output files

Wire data is never an error: bad packets are counted and skipped, never raised.
"""

from __future__ import annotations


class AuditorError(Exception):
    """Base of every error the auditor raises on purpose."""

    exit_code: int = 1


class ConfigError(AuditorError):
    """A flag, config file or environment value is wrong."""

    exit_code = 2


class RuleFileError(ConfigError):
    """A rule file is wrong; names the file, the line and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        where = path if line is None else f"{path}:{line}"
        what = f"{field}: {message}" if field else message
        super().__init__(f"{where}: {what}")


class CaptureError(AuditorError):
    """A capture file or interface cannot be read at all (not a bad packet: a bad source)."""

    exit_code = 2


class StoreError(AuditorError):
    """The embedded store cannot be opened or written."""

    exit_code = 4


class OutputError(AuditorError):
    """An output file cannot be written."""

    exit_code = 4
