"""Tensors of a .safetensors file as views of the memory-mapped file: nothing is copied, so a
checkpoint's weights are in memory once (as file pages) when assigned to a model built on meta.

The format is 8 bytes of header length, a JSON header {name: {dtype, shape, data_offsets}}, then
the raw little-endian data. Every entry is checked against the file's size before it is mapped.
The mapping is private copy-on-write: a tensor may be written without touching the file.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
from pathlib import Path
from typing import Iterator

import torch

from llmkit.errors import LlmkitError

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}
MAX_HEADER = 100 * 2**20


def _header(file: Path, handle) -> tuple[dict, int]:
    size = file.stat().st_size
    raw = handle.read(8)
    length = struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1
    if not 0 < length <= min(MAX_HEADER, size - 8):
        raise LlmkitError(f"weights file {file} is corrupt or not safetensors (bad header length)")
    try:
        header = json.loads(handle.read(length))
    except ValueError as err:
        raise LlmkitError(f"weights file {file} is corrupt or not safetensors ({err})") from None
    if not isinstance(header, dict):
        raise LlmkitError(f"weights file {file} is corrupt or not safetensors (header is not an object)")
    return header, 8 + length


def _entry(file: Path, name: str, info, data_bytes: int) -> tuple[torch.dtype, list[int], int, int]:
    try:
        dtype, shape, (start, end) = DTYPES[info["dtype"]], [int(d) for d in info["shape"]], info["data_offsets"]
    except (KeyError, TypeError, ValueError):
        raise LlmkitError(f"weights file {file}: tensor {name!r} has an unreadable entry ({info!r:.80})") from None
    count = math.prod(shape)
    if min(shape, default=0) < 0 or not 0 <= start <= end <= data_bytes or end - start != count * dtype.itemsize:
        raise LlmkitError(f"weights file {file}: tensor {name!r} does not fit the file (truncated or damaged)")
    return dtype, shape, start, count


def mapped_tensors(file: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for every tensor of the file, each a view of the mapping."""
    file = Path(file)
    with open(file, "rb") as handle:
        header, base = _header(file, handle)
        data_bytes = file.stat().st_size - base
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY) if data_bytes else None
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, start, count = _entry(file, name, info, data_bytes)
        if count == 0:
            yield name, torch.empty(shape, dtype=dtype)
            continue
        yield name, torch.frombuffer(mapping, dtype=dtype, count=count, offset=base + start).view(shape)
