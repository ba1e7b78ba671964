"""attn.gguf: GGUF files written here byte by byte (header, metadata of every value type,
tensor infos, alignment padding, data) read back; a llama layer's tensors as the layer's
arguments, executed on the CPU against the reference of the blocks written."""

import struct

import numpy as np
import pytest

from cpu_exec_support import LAYER_TOL, Build, assert_close, nan_filled, needs_attn_compile

from attn import gguf  # noqa: E402  (cpu_exec_support puts python/ on sys.path)
from attn import ir  # noqa: E402
from attn import reference as ref  # noqa: E402

TYPE_IDS = {name: type_id for type_id, name in gguf.GGML_TYPES.items()}


def gguf_string(text):
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def gguf_value(type_id, value):
    """A metadata value of type ``type_id`` (8 string, 9 array of ``(element type, values)``)."""
    if type_id == 8:
        return gguf_string(value)
    if type_id == 9:
        element, items = value
        return struct.pack("<IQ", element, len(items)) + b"".join(
            gguf_value(element, item) for item in items)
    return struct.pack("<" + {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
                              10: "Q", 11: "q", 12: "d"}[type_id], value)


def write_gguf(path, metadata, tensors, alignment=32, version=3):
    """``metadata``: (key, type id, value); ``tensors``: (name, ne, type name, bytes). Each
    tensor's data starts at a multiple of ``alignment``, after zero padding."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for key, type_id, value in metadata:
        out += gguf_string(key) + struct.pack("<I", type_id) + gguf_value(type_id, value)
    data, offsets = b"", []
    for _, _, _, raw in tensors:
        data += b"\0" * (-len(data) % alignment)
        offsets.append(len(data))
        data += raw
    for (name, ne, type_name, _), offset in zip(tensors, offsets):
        out += gguf_string(name) + struct.pack(f"<I{len(ne)}Q", len(ne), *ne)
        out += struct.pack("<IQ", TYPE_IDS[type_name], offset)
    out += b"\0" * (-len(out) % alignment)
    path.write_bytes(out + data)
    return path


def test_header_metadata_and_tensors(tmp_path):
    rng = np.random.default_rng(1)
    embd = rng.standard_normal((3, 8)).astype(np.float16)
    norm = rng.standard_normal(40).astype(np.float32)
    q8 = ref.random_gguf_weight(rng, "q8_0", 5, 64)
    metadata = [
        ("general.alignment", 4, 64), ("general.name", 8, "tiny ☃"), ("u8", 0, 250),
        ("i8", 1, -3),
        ("u16", 2, 65000), ("i16", 3, -30000), ("i32", 5, -7), ("f32", 6, 0.5), ("flag", 7, True),
        ("u64", 10, 2**40), ("i64", 11, -(2**40)), ("f64", 12, 1e-300),
        ("tokens", 9, (8, ["a", "bc", ""])), ("nested", 9, (9, [(5, [1, 2]), (5, [])])),
    ]
    path = write_gguf(tmp_path / "t.gguf", metadata, [
        ("token_embd.weight", (8, 3), "f16", embd.tobytes()),
        ("blk.0.attn_norm.weight", (40,), "f32", norm.tobytes()),
        ("blk.0.attn_q.weight", (64, 5), "q8_0", q8.blocks.tobytes()),
    ], alignment=64)
    f = gguf.read_gguf(path)
    assert (f.version, f.alignment) == (3, 64)
    assert f.metadata == {
        "general.alignment": 64, "general.name": "tiny ☃", "u8": 250, "i8": -3, "u16": 65000,
        "i16": -30000, "i32": -7, "f32": 0.5, "flag": True, "u64": 2**40, "i64": -(2**40),
        "f64": 1e-300, "tokens": ["a", "bc", ""], "nested": [[1, 2], []]}
    assert list(f.tensors) == ["token_embd.weight", "blk.0.attn_norm.weight",
                               "blk.0.attn_q.weight"]
    t = f.tensors["token_embd.weight"]
    assert (t.ne, t.shape, t.type) == ((8, 3), (3, 8), "f16")
    assert np.array_equal(t.array(), embd)
    assert np.array_equal(f.tensors["blk.0.attn_norm.weight"].array(), norm)
    blocks = f.tensors["blk.0.attn_q.weight"].array()
    assert blocks.dtype == np.int8 and blocks.shape == (5, 68)
    assert np.array_equal(blocks.view(np.uint8), q8.blocks)
    # The q8_0 tensor starts after 40 f32 (160 bytes) padded to 64: at 192 from the data start.
    data_start = len(path.read_bytes()) - 192 - q8.blocks.size
    assert data_start % 64 == 0
    assert path.read_bytes()[data_start + 192 :] == q8.blocks.tobytes()


def test_default_alignment_is_32(tmp_path):
    raw = np.arange(8, dtype=np.float32)
    path = write_gguf(tmp_path / "t.gguf", [("general.architecture", 8, "llama")], [
        ("a", (3,), "f32", raw[:3].tobytes()), ("b", (5,), "f32", raw[3:].tobytes())])
    f = gguf.read_gguf(path)
    assert f.alignment == 32
    assert f.tensors["b"].array().tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]


@pytest.mark.parametrize("corrupt, message", [
    (lambda b: b"GGML" + b[4:], "not a GGUF file"),
    (lambda b: b[:4] + struct.pack("<I", 4) + b[8:], "GGUF version 4"),
    (lambda b: b[:30], "truncated"),
    (lambda b: b[:-1], "past the end"),
])
def test_malformed_files(tmp_path, corrupt, message):
    path = write_gguf(tmp_path / "t.gguf", [("general.architecture", 8, "llama")],
                      [("a", (4,), "f32", np.ones(4, np.float32).tobytes())])
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(gguf.GGUFError, match=message):
        gguf.read_gguf(path)


def test_unknown_tensor_type_and_misaligned_offset(tmp_path):
    good = write_gguf(tmp_path / "t.gguf", [], [("a", (4,), "f32", b"\0" * 16)]).read_bytes()
    info = good.index(b"a") + 1 + 4 + 8  # after the name, n_dims and ne[0]
    q5_k = good[:info] + struct.pack("<I", 13) + good[info + 4 :]
    (tmp_path / "q5.gguf").write_bytes(q5_k)
    with pytest.raises(gguf.GGUFError, match="tensor 'a' has ggml type 13"):
        gguf.read_gguf(tmp_path / "q5.gguf")
    shifted = good[:info + 4] + struct.pack("<Q", 4) + good[info + 12 :]
    (tmp_path / "off.gguf").write_bytes(shifted)
    with pytest.raises(gguf.GGUFError, match="at offset 4, not aligned to 32"):
        gguf.read_gguf(tmp_path / "off.gguf")


# ---------------------------------------------------------------------------------------------
# A llama layer from a file

HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 256, 4, 2, 64
# llama.cpp's Q4_K_M: v and o in Q6_K here, q and k in Q4_K.
LAYER_TYPES = {"wq": "q4_k", "wk": "q4_k", "wv": "q6_k", "wo": "q6_k"}


def llama_file(tmp_path, rng, types=LAYER_TYPES, layer=3):
    rows = {"wq": HEADS * HEAD_DIM, "wk": KV_HEADS * HEAD_DIM, "wv": KV_HEADS * HEAD_DIM,
            "wo": HIDDEN}
    cols = {"wq": HIDDEN, "wk": HIDDEN, "wv": HIDDEN, "wo": HEADS * HEAD_DIM}
    weights = {a: ref.random_gguf_weight(rng, t, rows[a], cols[a], cols[a] ** -0.5)
               for a, t in types.items()}
    metadata = [("general.architecture", 8, "llama"), ("llama.embedding_length", 4, HIDDEN),
                ("llama.attention.head_count", 4, HEADS),
                ("llama.attention.head_count_kv", 4, KV_HEADS),
                ("llama.rope.freq_base", 6, 500000.0)]
    tensors = [(f"blk.{layer}.attn_norm.weight", (HIDDEN,), "f32",
                np.ones(HIDDEN, np.float32).tobytes())] + [
        (f"blk.{layer}.{gguf.LAYER_TENSORS[a]}.weight", (cols[a], rows[a]), w.gguf_type,
         w.blocks.tobytes()) for a, w in weights.items()]
    return write_gguf(tmp_path / "llama.gguf", metadata, tensors), weights


def test_layer_config_from_metadata(tmp_path):
    path, _ = llama_file(tmp_path, np.random.default_rng(2))
    cfg = gguf.layer_config(gguf.read_gguf(path), 3, page_size=16)
    assert (cfg.hidden, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.dtype) == (
        HIDDEN, HEADS, KV_HEADS, HEAD_DIM, "f32")
    assert cfg.rope == {"theta": 500000.0, "interleaved": True, "scaling": None}
    assert {a: cfg.quant_of(a)["type"] for a in LAYER_TYPES} == LAYER_TYPES
    assert not cfg.stacked and not cfg.bias


def test_layer_weights_checked_against_the_layer(tmp_path):
    f = gguf.read_gguf(llama_file(tmp_path, np.random.default_rng(3))[0])
    cfg = gguf.layer_config(f, 3)
    with pytest.raises(gguf.GGUFError, match="no tensor 'blk.0.attn_q.weight'"):
        gguf.layer_weights(f, 0, cfg)
    wrong_type = gguf.layer_config(f, 3, quant={"kind": "gguf", "type": "q4_k"})
    with pytest.raises(gguf.GGUFError, match=r"attn_v.weight is q6_k, the layer's wv "
                                             r"#attn.gguf<q4_k>"):
        gguf.layer_weights(f, 3, wrong_type)
    wrong_shape = gguf.layer_config(f, 3, num_heads=2)
    with pytest.raises(gguf.GGUFError, match=r"attn_q.weight is \[256, 256\], the layer's wq "
                                             r"\[128, 256\]"):
        gguf.layer_weights(f, 3, wrong_shape)


@needs_attn_compile
def test_layer_from_file_executes(tmp_path):
    rng = np.random.default_rng(4)
    path, weights = llama_file(tmp_path, rng)
    f = gguf.read_gguf(path)
    cfg = gguf.layer_config(f, 3, page_size=16, num_layers=2, layer_idx=1)
    inputs = ir.random_layer_inputs(rng, cfg, [5, 0, 30], [1, 9, 3])
    inputs.update(gguf.layer_weights(f, 3, cfg))
    want, _ = ir.reference_layer(cfg, inputs)
    for argument, weight in weights.items():  # the bytes as written
        assert np.array_equal(inputs[f"{argument}_blocks"].view(np.uint8), weight.blocks)
    out = nan_filled((13, HIDDEN), "f32")
    build = Build("gguf-file-layer", lambda: ir.module_text(ir.layer_function("layer", cfg)))
    build.library().call("layer", list(inputs.values()), [out])
    assert_close(out, want, LAYER_TOL["f32"], "out", f"\n  module {build.where()}")
