"""A reader (and writer) of safetensors files, the Hugging Face checkpoint format.

A file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON mapping each tensor
name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the data after the
header; an optional ``"__metadata__"`` entry maps strings to strings), then the raw row-major
little-endian data. A checkpoint split over several files has a ``model.safetensors.index.json``
whose ``"weight_map"`` names each tensor's file.

bf16 tensors are read into numpy as uint16 bit patterns (the package's ABI representation),
into torch as ``torch.bfloat16``; F8_E4M3 as uint8 bytes.
"""

import json
import os
import struct

import numpy as np

from .arguments import torch_tensor

# safetensors dtype -> numpy dtype of the stored bytes.
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
    "F8_E4M3": np.dtype("u1"),
}
# numpy dtype -> safetensors dtype when writing (uint16 is bf16, as everywhere here).
_WRITE_DTYPES = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32",
                 np.dtype(np.float16): "F16", np.dtype(np.uint16): "BF16",
                 np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16",
                 np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL"}
_MAX_HEADER = 100 * 2**20


class SafetensorsError(ValueError):
    """A malformed file, or a tensor that is not in it."""


class SafetensorsFile:
    """The tensors of one ``.safetensors`` file, read on demand."""

    def __init__(self, path):
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise SafetensorsError(f"{self.path}: shorter than the 8-byte header length")
            (length,) = struct.unpack("<Q", raw)
            if length > _MAX_HEADER:
                raise SafetensorsError(f"{self.path}: header length {length} is implausible")
            try:
                header = json.loads(f.read(length))
            except ValueError as e:
                raise SafetensorsError(f"{self.path}: header is not JSON: {e}") from None
        self.data_start = 8 + length
        self.metadata = header.pop("__metadata__", {})
        self.entries = header
        size = os.path.getsize(self.path)
        for name, entry in header.items():
            dtype = DTYPES.get(entry.get("dtype"))
            if dtype is None:
                raise SafetensorsError(f"{self.path}: {name}: dtype {entry.get('dtype')!r}")
            begin, end = entry["data_offsets"]
            expected = int(np.prod(entry["shape"], dtype=np.int64)) * dtype.itemsize
            if end - begin != expected or self.data_start + end > size:
                raise SafetensorsError(f"{self.path}: {name}: data_offsets {[begin, end]} do not "
                                       f"hold {entry['dtype']} {entry['shape']}")

    def keys(self):
        return list(self.entries)

    def __contains__(self, name):
        return name in self.entries

    def dtype(self, name):
        """The safetensors dtype name (``"BF16"``, ...) of tensor ``name``."""
        return self._entry(name)["dtype"]

    def _entry(self, name):
        if name not in self.entries:
            raise SafetensorsError(f"{self.path}: no tensor {name!r}")
        return self.entries[name]

    def numpy(self, name):
        """Tensor ``name`` as a numpy array of its own (BF16: uint16 bits)."""
        entry = self._entry(name)
        dtype = DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            data = np.fromfile(f, dtype, (end - begin) // dtype.itemsize)
        return data.reshape(tuple(entry["shape"])).astype(dtype.newbyteorder("="), copy=False)

    def torch(self, name, device="cpu"):
        """Tensor ``name`` as a torch tensor on ``device`` (BF16: ``torch.bfloat16``)."""
        element = "bf16" if self.dtype(name) == "BF16" else None
        return torch_tensor(self.numpy(name), element, device)


class Checkpoint:
    """The tensors of a checkpoint: one ``.safetensors`` file, a
    ``model.safetensors.index.json``, or a folder holding either."""

    def __init__(self, path):
        path = os.fspath(path)
        if os.path.isdir(path):
            index = os.path.join(path, "model.safetensors.index.json")
            path = index if os.path.isfile(index) else os.path.join(path, "model.safetensors")
        if path.endswith(".json"):
            with open(path) as f:
                weight_map = json.load(f)["weight_map"]
            folder = os.path.dirname(path)
            files = {name: os.path.join(folder, file) for name, file in weight_map.items()}
        else:
            files = {name: path for name in SafetensorsFile(path).keys()}
        self._files = files
        self._open = {}

    def keys(self):
        return list(self._files)

    def __contains__(self, name):
        return name in self._files

    def file(self, name):
        """The ``SafetensorsFile`` holding tensor ``name``."""
        if name not in self._files:
            raise SafetensorsError(f"no tensor {name!r} in the checkpoint")
        path = self._files[name]
        if path not in self._open:
            self._open[path] = SafetensorsFile(path)
        return self._open[path]


def write(path, tensors, metadata=None):
    """Writes ``tensors`` (name -> numpy array; uint16 is stored as BF16) to ``path``."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name, array in tensors.items():
        array = np.asarray(array, order="C")
        if array.dtype not in _WRITE_DTYPES:
            raise SafetensorsError(f"{name}: no safetensors dtype for {array.dtype}")
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _WRITE_DTYPES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the format recommends
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
