"""The drop-folder source: the files of a folder read in name order, a line at a time, resumable mid-file.

The offset is ``{"file": <name>, "line": <n>}``: line ``n`` of that file (numbered as an editor shows them, the
CSV header being line 1) is the last one committed. :meth:`FilesSource.poll` goes on at the next line, or, once
that file has nothing more, with the first waiting file whose name sorts after it. A finished file moves to
``done/`` in :meth:`FilesSource.acknowledge`, that is only once its last line is committed.

Three rules keep "the offset says where it stands" true after any crash:

1. **A batch never holds lines of two files.** At the end of a file a poll in the middle of a batch returns
   nothing, so the batch is committed with an offset naming that file; the next file's lines start a new batch.
2. **A file is finished before the offset names a later one.** The move to ``done/`` happens in ``acknowledge``;
   if a crash came between the commit and the move, the first poll after the restart (which the runtime always
   makes from the committed offset) finds the file finished, moves it, and goes on. Its lines are not read
   again. So a waiting file whose name sorts before the offset's was never read.
3. **Such a late file is refused, not silently skipped:** it arrived after the source had passed its name (or a
   file of the offset's own name was dropped again after it was imported). It is reported as a dead letter
   (``BAD_RECORD``, the offset unchanged) and moved to ``rejected/`` with its reason once that is committed.
   Give it a name that sorts after the current file and drop it again.

A CSV file whose header is wrong is reported once as a dead letter (its offset is the header line) and moved to
``rejected/`` with ``<name>.reason.txt`` once that is committed; the stream goes on with the next file. A file
with no records (a header alone, only blank lines) moves to ``done/`` at once: it has nothing to commit.

An offset this folder cannot have — a file in none of the folder, ``done/`` and ``rejected/``, a line past the
end of its file, or not a files offset at all — stops the connector with :class:`UnknownOffsetError` at the
first poll, before anything is read: the source does not guess where to go on. Move the offset with
``exchange connector reset-offset NAME --to '{"file": …, "line": …}'`` (or ``--from-start``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from connectors.files.config import FilesSourceConfig
from connectors.files.errors import FilesConfigError, ParseError, UnknownOffsetError
from connectors.files.folder import Folder
from connectors.files.parse import CsvHeader, RecordParser
from connectors.files.reader import Chunk, LineFile
from connectors.sdk.api import BadRecord, Offset, Retryable, Source, SourceContext, SourceRecord
from exchange.log import get_logger
from exchange.schemas import Catalogue, UnknownSchemaError

__all__ = ["FilesSource"]

At = tuple[str, int]
"""A place: a file name and the last line read of it."""

_MARKS = 4096
"""Byte positions remembered after recent lines, so a poll goes on without reading the file from the start."""

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Header:
    """A CSV file's header: checked (``columns``), or refused (``reason``); ``line`` is its last line."""

    line: int
    columns: CsvHeader | None = None
    reason: str = ""
    original: bytes = b""


class FilesSource(Source):
    """Reads :class:`FilesSourceConfig`'s folder; one record per line (or per quoted multi-line CSV record)."""

    def __init__(self, config: FilesSourceConfig, catalogue: Catalogue) -> None:
        try:
            schema = catalogue.current(config.record_type)
        except UnknownSchemaError as exc:
            raise FilesConfigError(f"record_type {config.record_type!r} is not in the schema catalogue") from exc
        self.config = config
        self._type = config.record_type
        self._csv = config.format == "csv"
        self._parser = RecordParser(schema, config.format)
        self._folder = Folder(config.directory, config.pattern, config.done_dir, config.rejected_dir)
        self._log = get_logger("connectors.files", connector=config.name)
        self._file: LineFile | None = None
        self._marks: OrderedDict[At, int] = OrderedDict()
        self._headers: dict[str, _Header] = {}
        self._done_lines: dict[str, int] = {}
        self._handed: At | None = None
        """Where the last item handed to the runtime (a record, or a bad one) ends; a poll from anywhere else is
        a poll from the committed offset (the runtime polls from nowhere else)."""
        self._deferred: tuple[At, BadRecord] | None = None
        """A bad line met after good ones: raised by the next poll, from just before it."""
        self._late: dict[str, str] = {}
        """Late files reported in the batch in progress, with their reasons; refused on its acknowledge."""

    # -- the Source surface ---------------------------------------------------------------------------------

    def open(self, context: SourceContext) -> None:
        self._folder.prepare()

    def close(self) -> None:
        self._close_file()

    def poll(self, after: Offset | None) -> list[SourceRecord]:
        return self._on_disk(self._poll, after)

    def acknowledge(self, upto: Offset) -> None:
        self._on_disk(self._acknowledge, upto)

    def remaining(self, after: Offset | None) -> int | None:
        """How many records wait after ``after`` (for a progress bar's total): records left in the offset's file
        and in every waiting file after it."""
        at = _place(after, self.config.name)
        total = 0
        for name in self._folder.waiting():
            if at is not None and name < at[0]:
                continue
            start = at[1] if at is not None and name == at[0] else 0
            counter = LineFile(self._folder.path(name))
            try:
                if counter.skip_to(start):
                    found = 0
                    while counter.next(quoted=self._csv) is not None:
                        found += 1
                    total += max(0, found - 1) if self._csv and start == 0 else found
            finally:
                counter.close()
        return total

    # -- polling --------------------------------------------------------------------------------------------

    def _poll(self, after: Offset | None) -> list[SourceRecord]:
        at = _place(after, self.config.name)
        settled = at is None or at != self._handed  # `after` is the committed offset: no batch is in progress
        self._handed = None
        deferred, self._deferred = self._deferred, None
        if deferred is not None and deferred[0] == at:
            self._hand_bad(deferred[1])
        if settled:
            self._late.clear()  # a batch that was not committed reported them: report them again
        waiting = self._folder.waiting()
        if at is not None:
            name, line = at
            if name not in waiting:
                self._check_moved(name, line)  # an offset this folder cannot have stops here, before anything
            self._refuse_late(waiting, name, line, after)
            waiting = [w for w in waiting if w not in self._late]
            if name in waiting:
                records = self._read(name, line)
                if records or not settled:
                    return records
                self._finish(name)  # finished and committed: the acknowledge that a crash prevented
        for name in waiting:
            if at is not None and name <= at[0]:
                continue
            records = self._read(name, 0)
            if records:
                return records
            self._log.info("file has no records; moved to done", file=name)
            self._folder.finish(name)
            self._forget(name)
        return []

    def _refuse_late(self, waiting: list[str], name: str, line: int, after: Offset | None) -> None:
        """Report the first waiting file the offset has passed (rule 3), if any, as a bad record."""
        for other in waiting:
            if other > name:
                return
            if other in self._late:
                continue
            if other < name:
                reason = (f"it arrived after the source had passed its name: files are read in name order and the "
                          f"source is at {name} line {line}. Give it a name that sorts after {name} and drop it "
                          "again")
            elif self._folder.has(other, "done"):
                reason = "a file of this name was imported already (it is in done/): drop it under a new name"
            else:
                continue
            self._late[other] = reason
            self._log.warning("late file refused", file=other, at=name)
            self._hand_bad(BadRecord(f"{other}: {reason}", offset=after))

    def _read(self, name: str, line: int) -> list[SourceRecord]:
        """Up to ``batch`` records of file ``name`` after ``line``; a bad line first is raised, a bad line after
        good ones is deferred to the next poll."""
        header: _Header | None = None
        if self._csv:
            header = self._header(name)
            if header.columns is None:
                if line == 0:
                    self._hand_bad(BadRecord(f"{name}: {header.reason}", offset=_offset(name, header.line),
                                             original=header.original))
                return []  # a refused file has nothing after its header
            line = max(line, header.line)
        reader = self._seek(name, line)
        records: list[SourceRecord] = []
        while len(records) < self.config.batch:
            chunk = reader.next(quoted=self._csv)
            if chunk is None:
                break
            self._mark(name, chunk.line, chunk.end)
            try:
                values = self._values(chunk, header)
            except ParseError as exc:
                bad = BadRecord(f"{name} line {chunk.line}: {exc.reason}", offset=_offset(name, chunk.line),
                                original=chunk.data)
                if not records:
                    self._hand_bad(bad)
                self._deferred = ((name, int(records[-1].offset["line"])), bad)
                break
            records.append(SourceRecord(self._type, values, _offset(name, chunk.line)))
        if records:
            self._handed = (name, int(records[-1].offset["line"]))
        return records

    def _values(self, chunk: Chunk, header: _Header | None) -> dict[str, Any]:
        text = _text(chunk)
        if header is not None and header.columns is not None:
            return self._parser.csv_row(header.columns, text)
        return self._parser.json_line(text)

    def _header(self, name: str) -> _Header:
        found = self._headers.get(name)
        if found is not None:
            return found
        chunk = self._seek(name, 0).next(quoted=True)
        if chunk is None:
            found = _Header(1, reason="wrong header: the file is empty; a CSV file starts with a header row of the "
                                      "schema's field names")
        else:
            try:
                found = _Header(chunk.line, columns=self._parser.header(_text(chunk)))
                self._mark(name, chunk.line, chunk.end)
            except ParseError as exc:
                found = _Header(chunk.line, reason=f"wrong header: {exc.reason}", original=chunk.data)
        self._headers[name] = found
        return found

    def _hand_bad(self, bad: BadRecord) -> NoReturn:
        self._handed = _place(bad.offset, self.config.name)
        raise bad

    # -- finishing ------------------------------------------------------------------------------------------

    def _acknowledge(self, upto: Offset) -> None:
        at = _place(upto, self.config.name)
        if at is None:
            return
        for late, reason in self._late.items():
            self._folder.reject(late, f"{late}: {reason}")
            self._log.warning("late file moved to rejected", file=late)
        self._late.clear()
        name, line = at
        if self._folder.has(name, "waiting") and self._finished(name, line):
            self._finish(name)

    def _finished(self, name: str, line: int) -> bool:
        """Nothing follows line ``line`` of waiting file ``name``."""
        if self._csv:
            header = self._header(name)
            if header.columns is None:
                return line >= header.line
            line = max(line, header.line)
        return self._seek(name, line).next(quoted=self._csv) is None

    def _finish(self, name: str) -> None:
        header = self._header(name) if self._csv else None
        if header is not None and header.columns is None:
            self._folder.reject(name, f"{name}: {header.reason}")
            self._log.warning("file rejected", file=name, reason=header.reason)
        else:
            self._folder.finish(name)
            self._log.info("file done", file=name)
        self._forget(name)

    def _check_moved(self, name: str, line: int) -> None:
        """The offset names a file that is no longer waiting: it must be in ``done/`` (with at least ``line``
        lines) or in ``rejected/``; UnknownOffsetError otherwise."""
        if self._folder.has(name, "rejected"):
            return
        if self._folder.has(name, "done"):
            lines = self._done_lines.get(name)
            if lines is None:
                counter = LineFile(self._folder.path(name, "done"))
                try:
                    lines = self._done_lines[name] = counter.count_lines()
                finally:
                    counter.close()
            if line <= lines:
                return
            raise UnknownOffsetError(f"connector {self.config.name}: the committed offset names line {line} of "
                                     f"{name}, but done/{name} has {lines} lines; {_RESET.format(self.config.name)}")
        raise UnknownOffsetError(
            f"connector {self.config.name}: the committed offset names {name} line {line}, but there is no file "
            f"{name} in {self._folder.directory}, {self._folder.done} or {self._folder.rejected} (the offset belongs "
            f"to another folder, or the file was removed); {_RESET.format(self.config.name)}")

    # -- the open file --------------------------------------------------------------------------------------

    def _seek(self, name: str, line: int) -> LineFile:
        """The reader of ``name`` placed just after ``line``; UnknownOffsetError if the file is shorter."""
        if self._file is None or self._file.path.name != name:
            self._close_file()
            self._file = LineFile(self._folder.path(name))
        reader = self._file
        if reader.line == line:
            return reader
        pos = self._marks.get((name, line))
        if pos is not None:
            reader.seek(pos, line)
        elif not reader.skip_to(line):
            raise UnknownOffsetError(f"connector {self.config.name}: the committed offset names line {line} of "
                                     f"{name}, which has {reader.line} lines (the file changed after it was read?); "
                                     f"{_RESET.format(self.config.name)}")
        return reader

    def _mark(self, name: str, line: int, pos: int) -> None:
        self._marks[(name, line)] = pos
        self._marks.move_to_end((name, line))
        if len(self._marks) > _MARKS:
            self._marks.popitem(last=False)

    def _forget(self, name: str) -> None:
        if self._file is not None and self._file.path.name == name:
            self._close_file()
        for place in [p for p in self._marks if p[0] == name]:
            del self._marks[place]
        self._headers.pop(name, None)

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _on_disk(self, step: Callable[[Any], _T], argument: Any) -> _T:
        """Run ``step``; a failing disk (a network share away, a permission) is a passing failure: retried."""
        try:
            return step(argument)
        except OSError as exc:
            self._close_file()
            raise Retryable(f"the drop folder {self.config.directory}: {exc.strerror or exc}") from exc


_RESET = ("nothing was read. Put the file back, or move the offset with `exchange connector reset-offset {} --to "
          "'{{\"file\": NAME, \"line\": N}}'` (or --from-start)")


def _text(chunk: Chunk) -> str:
    if chunk.problem is not None:
        raise ParseError(chunk.problem)
    try:
        return chunk.data.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("the line is not UTF-8") from None


def _offset(name: str, line: int) -> dict[str, str | int]:
    return {"file": name, "line": line}


def _place(offset: Offset | None, connector: str) -> At | None:
    """The file and line an offset names; UnknownOffsetError if it is not a files offset."""
    if offset is None:
        return None
    name, line = offset.get("file"), offset.get("line")
    if (set(offset) != {"file", "line"} or not isinstance(name, str) or type(line) is not int or line < 0
            or not name or "/" in name or "\\" in name or name in (".", "..")):
        raise UnknownOffsetError(f"connector {connector}: the committed offset {dict(offset)} is not a files "
                                 'offset ({"file": <a file name>, "line": <n ≥ 0>}); '
                                 f"{_RESET.format(connector)}")
    return name, line
