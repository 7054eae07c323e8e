"""Output directories that appear whole and never take a user's files with them.

Every llmkit writer builds its output in a temporary sibling and renames it into place, so a crash
leaves the old content or the new one. Before writing, the target is checked: it must be absent,
empty, or an llmkit output of the same kind (named in its `.llmkit.json` marker, or recognised by
the files that kind always has); anything else is refused unless `overwrite` is given. Even then
only the entries llmkit writes are replaced: a file llmkit did not create is never deleted. An
input inside the output directory is refused outright (replacing the output would remove it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator

from llmkit.errors import LlmkitError

MARKER = ".llmkit.json"
# Files that every output of a kind holds: outputs written before the marker existed still count.
RECOGNISED_BY = {
    "model": ("config.json",),
    "adapter": ("adapter_config.json",),
    "tokenizer": ("tokenizer.json",),
    "classifier": ("config.json",),
    "data": ("plan.json", ".work"),
    "run": ("metrics.jsonl", "checkpoints", "final"),
    "eval": ("results.json",),
    "report": ("report.md",),
    "tasks": ("train.jsonl", "sft.jsonl"),
    "demo": ("corpus.jsonl",),
}


def _marker(path: Path) -> dict:
    """The directory's marker ({"kind", "files"}), or {} when it has none (or a damaged one)."""
    try:
        record = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _created_by_us(path: Path, kind: str) -> set[str]:
    record = _marker(path)
    return set(record.get("files", [])) | {MARKER} if record.get("kind") == kind else set()


def is_output_of(path: Path, kind: str) -> bool:
    marked = _marker(path).get("kind")
    if marked is not None:
        return marked == kind
    return any((path / name).exists() for name in RECOGNISED_BY.get(kind, ()))


def check_output(path: str | Path, kind: str, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse an output directory that would lose data: an input inside it, or a non-empty
    directory that is not an llmkit output of `kind` (unless `overwrite`)."""
    path = Path(path)
    target = path.resolve()
    ours = _created_by_us(path, kind) if path.is_dir() else set()
    for given in inputs:
        source = None if given is None else Path(given).resolve()
        if source is None or not source.is_relative_to(target):
            continue
        if source != target and source.relative_to(target).parts[0] in ours:
            continue  # an earlier step of this same output wrote it (context distillation's data)
        raise LlmkitError(f"input {given} lies inside the output directory {path}; writing the output would "
                          "replace it: choose an --out outside the inputs")
    if path.exists() and not path.is_dir():
        raise LlmkitError(f"--out {path} is a file, not a directory; choose another --out")
    if path.is_dir() and any(path.iterdir()) and not overwrite and not is_output_of(path, kind):
        raise LlmkitError(f"--out {path} is not empty and holds no llmkit {kind} output; choose an empty or new "
                          "directory, or pass --overwrite (only the files llmkit writes are replaced)")
    return path


def check_output_file(path: str | Path, magic: bytes, overwrite: bool = False) -> Path:
    """An output file may replace only a file of its own format (starting with `magic`) unless `overwrite`."""
    path = Path(path)
    if path.is_dir():
        raise LlmkitError(f"--out {path} is a directory; give a file name")
    if path.exists() and not overwrite:
        with open(path, "rb") as handle:
            if handle.read(len(magic)) != magic:
                raise LlmkitError(f"--out {path} exists and is not a file this command writes; choose another name "
                                  "or pass --overwrite")
    return path


def mark_output(path: str | Path, kind: str, files: Iterable[str] = ()) -> None:
    """Record `path` as an llmkit output of `kind` that created `files` (names in the directory)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    created = sorted((_created_by_us(path, kind) - {MARKER}) | set(files))
    atomic_write_text(path / MARKER, json.dumps({"kind": kind, "files": created}) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | Path, kind: str = "model", overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; on success its entries become `path`.

    A new or llmkit-owned target is swapped whole (rename aside, rename in, remove the old);
    a target with other files (only with `overwrite`) gets just the entries written here replaced."""
    path = check_output(path, kind, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _normalise_modes(tmp)
    written = sorted(entry.name for entry in tmp.iterdir())
    atomic_write_text(tmp / MARKER, json.dumps({"kind": kind, "files": written}) + "\n")
    written.append(MARKER)
    ours = _created_by_us(path, kind) if path.is_dir() else set()
    foreign = [e.name for e in path.iterdir() if e.name not in ours and e.name not in written] if path.is_dir() else []
    if foreign:
        _replace_entries(tmp, path, written, ours)
    else:
        _swap_whole(tmp, path)


def _normalise_modes(root: Path) -> None:
    """Every file and folder gets the mode a plain open() would give (some writers, safetensors
    among them, create owner-only files): an output's files are readable alike."""
    umask = _umask()
    root.chmod(0o777 & ~umask)
    for entry in root.rglob("*"):
        if not entry.is_symlink():
            entry.chmod((0o777 if entry.is_dir() else 0o666) & ~umask)


def _umask() -> int:
    """This process's umask, read without setting it (os.umask would change it for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def _swap_whole(tmp: Path, path: Path) -> None:
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def _replace_entries(tmp: Path, path: Path, written: list[str], ours: set[str]) -> None:
    """Move each new entry over its namesake; remove earlier outputs of ours that are gone now."""
    for name in written:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            old = path / f".{name}.old-{os.getpid()}"
            target.rename(old)
            (tmp / name).rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            (tmp / name).replace(target)
    for name in ours - set(written):
        stale = path / name
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        elif stale.exists() or stale.is_symlink():
            stale.unlink()
    shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except BaseException:  # disk full, interrupted: leave no half-written temp file behind
        tmp.unlink(missing_ok=True)
        raise


def read_json_object(path: str | Path, fix: str = "re-save or re-download it") -> dict[str, Any]:
    """A JSON file that must hold an object; anything else is a one-line LlmkitError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LlmkitError(f"missing file {path}") from None
    except UnicodeDecodeError:
        raise LlmkitError(f"{path} is not UTF-8 text; {fix}") from None
    except ValueError as error:
        raise LlmkitError(f"{path} is not valid JSON ({error}); {fix}") from None
    if not isinstance(data, dict):
        raise LlmkitError(f"{path} must hold a JSON object, not {type(data).__name__}; {fix}")
    return data


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
