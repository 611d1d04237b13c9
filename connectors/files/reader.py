"""A drop-folder file read one record at a time from a byte position, counting physical lines.

Lines are numbered from 1 as an editor shows them (the CSV header is line 1), so an offset ``{"file": …,
"line": n}`` points at a place an operator can open. A record is one line, except that a CSV value in double
quotes may hold line breaks: a CSV record then runs on until its quotes balance (RFC 4180 doubles a quote inside
a quoted value, so the count of quote characters is odd exactly while a value is open). Its number is its last
line. Blank lines are skipped. A UTF-8 byte order mark before line 1 is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["MAX_RECORD_BYTES", "MAX_RECORD_LINES", "Chunk", "LineFile"]

MAX_RECORD_BYTES = 1024 * 1024
"""The longest record read; a longer line is a bad record of its own (its first MiB kept as the original)."""
MAX_RECORD_LINES = 64
"""The most lines one quoted CSV value may span. A quote left open longer (or to the end of the file) makes only
its first line a bad record, and reading goes on at the next line: one stray quote must not swallow a register."""

_BOM = b"\xef\xbb\xbf"
_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class Chunk:
    """One record's bytes (without the final line break), its last line, and the position after it."""

    line: int
    data: bytes
    end: int
    problem: str | None = None
    """Why it cannot be a record whatever it holds (too long, a quote never closed); None if it may be one."""


class LineFile:
    """An open file, positioned after line :attr:`line` at byte :attr:`pos`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO = path.open("rb")
        self.line = 0
        self.pos = 0

    def close(self) -> None:
        self._file.close()

    def seek(self, pos: int, line: int) -> None:
        """Go to byte ``pos``, the start of line ``line + 1`` (a position this reader reported)."""
        self._file.seek(pos)
        self.pos, self.line = pos, line

    def skip_to(self, line: int) -> bool:
        """Go to just after line ``line`` from the start; False if the file has fewer lines."""
        self.seek(0, 0)
        while self.line < line:
            if not self._physical()[0]:
                return False
        return True

    def count_lines(self) -> int:
        """The number of lines from here to the end (the position moves to the end)."""
        while self._physical()[0]:
            pass
        return self.line

    def next(self, *, quoted: bool) -> Chunk | None:
        """The next record (``quoted``: a CSV one, which may span lines), or None at the end of the file."""
        while True:
            data, too_long = self._physical()
            if not data:
                return None
            if self.line == 1 and data.startswith(_BOM):
                data = data[len(_BOM):]
            text = _strip(data)
            if text.strip():
                break
        if too_long:
            return Chunk(self.line, text, self.pos, f"the line is longer than {MAX_RECORD_BYTES} bytes")
        if not quoted or text.count(b'"') % 2 == 0:
            return Chunk(self.line, text, self.pos)
        return self._quoted(data, text)

    def _quoted(self, first: bytes, first_text: bytes) -> Chunk:
        """A CSV record whose first line leaves a quoted value open: read on until the quotes balance. The
        record keeps its inner line breaks as they are in the file."""
        first_line, first_end = self.line, self.pos
        parts = [first]
        quotes = first.count(b'"')
        size = len(first)
        while quotes % 2 == 1 and self.line - first_line < MAX_RECORD_LINES and size <= MAX_RECORD_BYTES:
            data, too_long = self._physical()
            if not data or too_long:
                break
            parts.append(data)
            quotes += data.count(b'"')
            size += len(data)
        if quotes % 2 == 0:
            return Chunk(self.line, _strip(b"".join(parts)), self.pos)
        self.seek(first_end, first_line)
        return Chunk(first_line, first_text, first_end, "a quoted value is not closed (a stray double quote?)")

    def _physical(self) -> tuple[bytes, bool]:
        """The next physical line with its line break (empty at the end), and whether it was cut at the limit
        (the rest of it is read and dropped)."""
        data = self._file.readline(MAX_RECORD_BYTES + 1)
        too_long = len(data) > MAX_RECORD_BYTES and not data.endswith(b"\n")
        self.pos += len(data)
        if too_long:
            while True:
                rest = self._file.readline(_READ)
                self.pos += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            data = data[:MAX_RECORD_BYTES]
        if data:
            self.line += 1
        return data, too_long


def _strip(data: bytes) -> bytes:
    """``data`` without its final line break (LF or CR LF)."""
    if data.endswith(b"\n"):
        data = data[:-1]
    if data.endswith(b"\r"):
        data = data[:-1]
    return data
