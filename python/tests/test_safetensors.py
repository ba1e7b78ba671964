"""The safetensors reader and writer: the bytes of the format, every dtype, bf16 into numpy and
torch, checkpoints split by an index, malformed files."""

import json
import os
import struct
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from attn import runtime as rt  # noqa: E402
from attn import safetensors  # noqa: E402


def test_layout_and_round_trip(tmp_path):
    rng = np.random.default_rng(11)
    tensors = {
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f16": rng.standard_normal(7).astype(np.float16),
        "bf16": rt.to_bf16_bits(rng.standard_normal((2, 4))),
        "i64": rng.integers(-2**40, 2**40, (4,)),
        "i8": rng.integers(-128, 128, (2, 2, 2)).astype(np.int8),
        "scalar": np.array(2.5, np.float64),
    }
    path = tmp_path / "t.safetensors"
    safetensors.write(path, tensors, metadata={"format": "pt"})
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    assert (8 + length) % 8 == 0 and header["__metadata__"] == {"format": "pt"}
    begin, end = header["bf16"]["data_offsets"]
    assert header["bf16"]["dtype"] == "BF16" and header["bf16"]["shape"] == [2, 4]
    assert raw[8 + length + begin:8 + length + end] == tensors["bf16"].astype("<u2").tobytes()

    file = safetensors.SafetensorsFile(path)
    assert file.metadata == {"format": "pt"} and sorted(file.keys()) == sorted(tensors)
    for name, want in tensors.items():
        got = file.numpy(name)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    as_torch = file.torch("bf16")
    assert as_torch.dtype == torch.bfloat16
    np.testing.assert_array_equal(as_torch.float().numpy(), rt.from_bf16_bits(tensors["bf16"]))


def test_index_checkpoint(tmp_path):
    a, b = np.arange(6, dtype=np.float32), np.ones((2, 2), np.float16)
    safetensors.write(tmp_path / "part-1.safetensors", {"a": a})
    safetensors.write(tmp_path / "part-2.safetensors", {"b": b})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"a": "part-1.safetensors", "b": "part-2.safetensors"}}))
    checkpoint = safetensors.Checkpoint(tmp_path)
    assert sorted(checkpoint.keys()) == ["a", "b"]
    np.testing.assert_array_equal(checkpoint.file("b").numpy("b"), b)
    with pytest.raises(safetensors.SafetensorsError, match="no tensor 'c' in the checkpoint"):
        checkpoint.file("c")


@pytest.mark.parametrize("corruption, message", [
    (lambda raw: raw[:5], "shorter than the 8-byte header length"),
    (lambda raw: struct.pack("<Q", 2**40) + raw[8:], "header length 1099511627776"),
    (lambda raw: raw[:8] + b"x" + raw[9:], "header is not JSON"),
    (lambda raw: raw[:-4], r"x: data_offsets \[0, 16\] do not hold F32 \[4\]"),
    (lambda raw: raw.replace(b'"F32"', b'"F99"'), "x: dtype 'F99'"),
])
def test_malformed_files_are_named(tmp_path, corruption, message):
    path = tmp_path / "bad.safetensors"
    safetensors.write(path, {"x": np.zeros(4, np.float32)})
    path.write_bytes(corruption(path.read_bytes()))
    with pytest.raises(safetensors.SafetensorsError, match=message):
        safetensors.SafetensorsFile(path)
