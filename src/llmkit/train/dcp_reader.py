"""Reading torch.distributed.checkpoint (DCP) directories without running code from them.

DCP's own FileSystemReader unpickles `.metadata` with plain `pickle.load` and its default planner
reads non-tensor entries with `torch.load(weights_only=False)`: a 65-byte `.metadata` planted in a
checkpoint directory runs any command on `--resume`. Here the metadata goes through an unpickler
that admits only the classes DCP writes (its metadata dataclasses, torch.Size, dtypes, layouts and
memory formats, paths), every storage entry must name a file inside the checkpoint directory, and
non-tensor entries (optimizer step counts, learning rates) load with `weights_only=True`.
"""

from __future__ import annotations

import io
import pickle
from pathlib import PurePath

import torch
from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

from llmkit.errors import LlmkitError

_METADATA = "torch.distributed.checkpoint.metadata"
ALLOWED = {
    (_METADATA, name) for name in ("Metadata", "TensorStorageMetadata", "TensorProperties", "ChunkStorageMetadata",
                                   "BytesStorageMetadata", "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING")
} | {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch.serialization", "_get_layout"),  # maps a layout's name ("torch.strided") to the layout
    ("torch", "Size"),
    ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "PurePosixPath"),
    ("collections", "OrderedDict"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Builds only the classes in ALLOWED and torch dtypes; anything else is refused unbuilt."""

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise LlmkitError(f"checkpoint metadata refers to {module}.{name}, which DCP never writes: the file was "
                          "tampered with or is not a DCP checkpoint; it was not loaded")


def read_dcp_metadata(data: bytes, source: str = ".metadata") -> Metadata:
    """The checkpoint's Metadata, validated: right type, storage files inside the directory."""
    try:
        metadata = RestrictedUnpickler(io.BytesIO(data)).load()
    except LlmkitError:
        raise
    except Exception as error:  # noqa: BLE001 - any malformed pickle is bad input
        raise LlmkitError(f"{source} is not a readable DCP metadata file ({type(error).__name__}: {error})") from None
    if not isinstance(metadata, Metadata):
        raise LlmkitError(f"{source} holds a {type(metadata).__name__}, not DCP Metadata; it was not loaded")
    for info in (metadata.storage_data or {}).values():
        relative = PurePath(str(getattr(info, "relative_path", "")))
        if relative.is_absolute() or ".." in relative.parts or len(relative.parts) != 1:
            raise LlmkitError(f"{source} points outside its checkpoint directory ({relative}); it was not loaded")
    return metadata


class SafeFileSystemReader(FileSystemReader):
    def read_metadata(self, *args, **kwargs) -> Metadata:
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as stream:
            metadata = read_dcp_metadata(stream.read(), str(path))
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    """Non-tensor entries are loaded with weights_only=True (numbers, strings, lists, tuples)."""

    def load_bytes(self, read_item, value: io.BytesIO) -> None:
        try:
            loaded = torch.load(value, weights_only=True)
        except pickle.UnpicklingError as error:
            raise LlmkitError(f"checkpoint entry {read_item.dest_index.fqn} holds an object that is not plain data "
                              f"({error}); it was not loaded") from None
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], loaded)
        else:
            self.state_dict[read_item.dest_index.fqn] = loaded
