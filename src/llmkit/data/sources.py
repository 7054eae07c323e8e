"""Input readers: .txt, .jsonl (plain, .gz, .zst), .parquet and WARC/WET (plain or .gz; see
llmkit.data.warc) files, directories and globs,
split into deterministic work units so that workers, tasks and resumed runs all see the same
split.

A unit is a byte range of an uncompressed line-based file (each line belongs to the unit in
which it starts), a row group of a parquet file, or a whole compressed or .txt file. Records are
dicts with the original fields; a malformed line becomes an `InputError` (file:line), never a
crash and never a silent loss. So do text that UTF-8 cannot carry (lone surrogates smuggled in
through JSON escapes) and documents over MAX_DOCUMENT_BYTES, which are skipped without ever being
held in memory whole: lines are read at most that many bytes at a time.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from llmkit.data.warc import is_warc, read_warc
from llmkit.errors import LlmkitError

LINE_SUFFIXES = (".jsonl", ".json", ".ndjson")
COMPRESSED = (".gz", ".zst")
TEXT_SUFFIXES = (".txt", ".md")
MAX_DOCUMENT_BYTES = 16 * 2**20
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class WorkUnit:
    index: int
    path: str
    start: int = 0  # byte offset, or parquet row group
    end: int | None = None  # None: to the end of the file

    @property
    def label(self) -> str:
        return f"{self.path}[{self.start}:{'' if self.end is None else self.end}]"


@dataclass
class InputError:
    location: str  # file:line
    message: str


def expand_inputs(patterns: list[str]) -> list[Path]:
    """Files named by paths, directories (searched recursively) and globs, sorted, deduplicated."""
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            files += [p for p in sorted(path.rglob("*")) if p.is_file() and _readable_kind(p)]
        elif any(ch in pattern for ch in "*?["):
            files += [Path(p) for p in sorted(glob.glob(pattern, recursive=True)) if Path(p).is_file()]
        elif path.is_file():
            files.append(path)
        else:
            raise LlmkitError(f"input {pattern} does not exist (give files, directories or globs)")
    unique = list(dict.fromkeys(files))
    if not unique:
        raise LlmkitError(f"no input files found in {', '.join(patterns)}")
    unsupported = [str(p) for p in unique if not _readable_kind(p)]
    if unsupported:
        raise LlmkitError(f"unsupported input type: {unsupported[0]} (use .txt, .jsonl[.gz|.zst], .parquet or "
                          ".warc[.gz]/.wet[.gz])")
    return unique


def _readable_kind(path: Path) -> bool:
    name = path.name.removesuffix(".gz").removesuffix(".zst")
    return name.endswith(LINE_SUFFIXES + TEXT_SUFFIXES + (".parquet",)) or is_warc(path)


def plan_units(files: list[Path], unit_bytes: int) -> list[WorkUnit]:
    units: list[WorkUnit] = []
    for path in files:
        for start, end in _ranges(path, unit_bytes):
            units.append(WorkUnit(len(units), str(path), start, end))
    return units


def _ranges(path: Path, unit_bytes: int) -> list[tuple[int, int | None]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [(g, g + 1) for g in range(pq.ParquetFile(path).num_row_groups)] or [(0, 1)]
    if path.suffix in COMPRESSED or path.suffix in TEXT_SUFFIXES or is_warc(path):
        return [(0, None)]
    size = path.stat().st_size
    return [(start, min(start + unit_bytes, size)) for start in range(0, max(size, 1), unit_bytes)]


def read_unit(unit: WorkUnit, text_field: str, errors: list[InputError]) -> Iterator[dict]:
    """Records of one unit, in file order; problems are appended to `errors`."""
    path = Path(unit.path)
    try:
        if path.suffix == ".parquet":
            yield from _read_parquet(path, unit.start, text_field, errors)
        elif is_warc(path):
            yield from read_warc(path, text_field, lambda where, message: errors.append(InputError(where, message)))
        elif path.suffix in TEXT_SUFFIXES:
            if path.stat().st_size > MAX_DOCUMENT_BYTES:
                errors.append(InputError(str(path), _too_long(path.stat().st_size)))
                return
            yield {text_field: path.read_text(encoding="utf-8", errors="replace"), "source": str(path)}
        else:
            yield from _read_jsonl(unit, text_field, errors)
    except (OSError, EOFError, ValueError) as err:  # unreadable or truncated file: report, go on
        errors.append(InputError(f"{path}", f"unreadable: {err}"))


def _open_lines(unit: WorkUnit) -> tuple[io.BufferedIOBase, int]:
    """A binary stream positioned at the first line starting inside the unit, and that line's number."""
    path = Path(unit.path)
    if path.suffix == ".gz":
        return gzip.open(path, "rb"), 1
    if path.suffix == ".zst":
        import zstandard

        raw = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
        return io.BufferedReader(raw), 1
    handle = open(path, "rb")
    if unit.start == 0:
        return handle, 1
    handle.seek(unit.start - 1)
    next(_bounded_lines(handle), None)  # finish the line that started before this unit (the previous one's)
    return handle, None  # line numbers are counted only when an error needs one


def _bounded_lines(handle, limit: int = MAX_DOCUMENT_BYTES) -> Iterator[tuple[bytes | None, int]]:
    """(line, its length) per line; the line is None when longer than `limit`, which is then read
    past in limit-sized pieces, so memory stays bounded whatever the input holds."""
    while raw := handle.readline(limit + 1):
        if raw.endswith(b"\n") or len(raw) <= limit:
            yield raw, len(raw)
            continue
        length = len(raw)
        while raw and not raw.endswith(b"\n"):
            raw = handle.readline(limit + 1)
            length += len(raw)
        yield None, length


def _too_long(length: int) -> str:
    return (f"document of {length / 2**20:.1f} MB is longer than the {MAX_DOCUMENT_BYTES / 2**20:.0f} MB limit; "
            "split it into smaller documents")


def _read_jsonl(unit: WorkUnit, text_field: str, errors: list[InputError]) -> Iterator[dict]:
    handle, first_line = _open_lines(unit)
    with handle:
        position = handle.tell() if unit.end is not None else 0
        for offset, (raw, length) in enumerate(_bounded_lines(handle)):
            line_start, position = position, position + length
            if unit.end is not None and line_start >= unit.end:
                return
            if raw is not None and not raw.strip():
                continue
            record = _too_long(length) if raw is None else _parse(raw, text_field)
            if isinstance(record, str):
                errors.append(InputError(_location(unit, first_line, offset, line_start), record))
            else:
                yield record


def _parse(raw: bytes, text_field: str) -> dict | str:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return f"malformed JSON ({err.__class__.__name__}: {str(err)[:80]})"
    if not isinstance(record, dict):
        return "line is not a JSON object"
    if not isinstance(record.get(text_field), str):
        return f"no string field {text_field!r} (set --text-field)"
    bad = _lone_surrogate(record)
    if bad is not None:
        return f"invalid code point U+{ord(bad):04X} (a lone surrogate, which UTF-8 cannot encode)"
    return record


def _lone_surrogate(value) -> str | None:
    """The first lone surrogate in any string of a JSON value, or None."""
    if isinstance(value, str):
        found = LONE_SURROGATE.search(value)
        return found.group() if found else None
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    if isinstance(value, dict):
        children = [*value.keys(), *children]
    return next((bad for child in children if (bad := _lone_surrogate(child)) is not None), None)


def _location(unit: WorkUnit, first_line: int | None, offset: int, byte_pos: int) -> str:
    if first_line is not None:
        return f"{unit.path}:{first_line + offset}"
    with open(unit.path, "rb") as handle:  # rare: count the lines before this one
        line = handle.read(byte_pos).count(b"\n") + 1
    return f"{unit.path}:{line}"


def _read_parquet(path: Path, row_group: int, text_field: str, errors: list[InputError]) -> Iterator[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise LlmkitError("reading .parquet needs pyarrow: pip install 'llmkit[parquet]'") from None
    table = pq.ParquetFile(path).read_row_group(row_group)
    for row, record in enumerate(table.to_pylist()):
        if isinstance(record.get(text_field), str):
            yield record
        else:
            errors.append(InputError(f"{path}:row-group-{row_group}:row-{row}", f"no string field {text_field!r}"))


def iter_texts(patterns: list[str], text_field: str = "text") -> Iterator[str]:
    """Every document text of the inputs, in order (malformed lines skipped)."""
    errors: list[InputError] = []
    for unit in plan_units(expand_inputs(patterns), 1 << 62):
        for record in read_unit(unit, text_field, errors):
            yield record[text_field]
