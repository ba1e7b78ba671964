"""Quantised weights in attn.reference: decoding checked on hand-written words and bytes."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from attn import reference as ref  # noqa: E402


def i32(word):
    """An unsigned 32-bit pattern as the int32 a checkpoint stores."""
    return np.uint32(word).view(np.int32)


# ---------------------------------------------------------------------------------------------
# GPTQ int4


def test_unpack_int4_low_nibble_first():
    words = np.array([[i32(0x76543210)], [i32(0xFEDCBA98)]], dtype=np.int32)
    assert ref.unpack_int4(words)[:, 0].tolist() == list(range(16))


def hand_gptq(perm=None):
    """K = 16, N = 2, group 8. Column 0 holds nibbles 0..15, column 1 ones then eights."""
    qweight = np.array(
        [[i32(0x76543210), i32(0x11111111)], [i32(0xFEDCBA98), i32(0x88888888)]], dtype=np.int32
    )
    scales = np.array([[0.5, 2.0], [0.25, -1.0]], dtype=np.float16)
    return ref.GPTQWeight(qweight, scales, group_size=8, perm=perm)


def test_gptq_decode_hand_written():
    w = hand_gptq().decode()
    # (q - 8) * scale: nibbles 0..7 with scale 0.5, then 8..15 with scale 0.25.
    expected0 = [-4.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0, -0.5] + [
        0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    # nibble 1 with scale 2, then nibble 8 (zero) with scale -1.
    expected1 = [-14.0] * 8 + [0.0] * 8
    assert w.tolist() == [expected0, expected1]


def test_gptq_apply_desc_act_permutes_activations():
    perm = np.arange(16)[::-1].copy()
    x = np.arange(1.0, 17.0).reshape(1, 16)
    w = hand_gptq().decode()
    # y[n] = sum_r x[perm[r]] * W[n, r]
    expected = [sum(x[0, perm[r]] * w[n, r] for r in range(16)) for n in range(2)]
    np.testing.assert_array_equal(hand_gptq(perm).apply(x)[0], expected)
    assert not np.array_equal(hand_gptq().apply(x)[0], expected)


def test_gptq_column_blocks_hand_written():
    # K = 16, N = 64: word [r, n] = 1000 r + n.
    qweight = (1000 * np.arange(2)[:, None] + np.arange(64)[None, :]).astype(np.int32)
    blocks = ref.gptq_column_blocks(qweight)
    assert blocks.shape == (2, 2, 32)
    # Block 1, word row 1, column 3 of the block: checkpoint word [1, 35].
    assert blocks[1, 1, 3] == 1035
    assert blocks[0, 1, :4].tolist() == [1000, 1001, 1002, 1003]
    # In memory: block 0's two word rows, then block 1's.
    flat = np.ascontiguousarray(blocks).ravel()
    assert flat[30:34].tolist() == [30, 31, 1000, 1001]
    assert flat[62:66].tolist() == [1030, 1031, 32, 33]
    np.testing.assert_array_equal(ref.gptq_checkpoint_order(blocks), qweight)


def test_gptq_column_blocks_decode_as_the_checkpoint():
    rng = np.random.default_rng(3)
    qweight = rng.integers(-(2**31), 2**31, size=(4, 128)).astype(np.int32)
    scales = rng.uniform(0.5, 1.5, size=(2, 128)).astype(np.float16)
    checkpoint = ref.GPTQWeight(qweight, scales, group_size=16)
    blocked = ref.GPTQWeight(np.ascontiguousarray(ref.gptq_column_blocks(qweight)),
                             np.ascontiguousarray(ref.gptq_column_blocks(scales)),
                             group_size=16, layout="column_blocks")
    np.testing.assert_array_equal(blocked.decode(), checkpoint.decode())
    import torch
    np.testing.assert_array_equal(
        ref.gptq_column_blocks(torch.from_numpy(qweight)).contiguous().numpy(),
        np.ascontiguousarray(ref.gptq_column_blocks(qweight)))
    with pytest.raises(ValueError, match="multiple of 32"):
        ref.gptq_column_blocks(qweight[:, :80])
    with pytest.raises(ValueError, match="unknown GPTQ layout"):
        ref.GPTQWeight(qweight, scales, group_size=16, layout="tiles")


def test_gptq_perm_from_g_idx_is_stable_sort():
    assert ref.gptq_perm_from_g_idx([1, 0, 1, 0, 2, 0]).tolist() == [1, 3, 5, 0, 2, 4]


def test_pack_int4_inverts_unpack():
    q = np.arange(32).reshape(16, 2) % 16
    assert ref.pack_int4(q)[:, 0].tolist() == [i32(0xECA86420), i32(0xECA86420)]
    np.testing.assert_array_equal(ref.unpack_int4(ref.pack_int4(q)), q)


def test_gptq_from_checkpoint_with_g_idx():
    """A desc_act checkpoint (rows in k order, group g_idx[k]) in MAX's form gives the
    checkpoint's own product: W[n, k] = (q[k, n] - 8) * scales[g_idx[k], n]."""
    rng = np.random.default_rng(3)
    k, n, g = 32, 16, 8
    q = rng.integers(0, 16, size=(k, n))
    g_idx = rng.permutation(np.arange(k) // g)
    scales = rng.uniform(0.5, 2, size=(k // g, n)).astype(np.float16)
    qzeros = np.full((k // g, n // 8), i32(0x77777777), dtype=np.int32)
    weight = ref.gptq_from_checkpoint(ref.pack_int4(q), scales, qzeros, g, g_idx)
    x = rng.standard_normal((3, k))
    dense = ((q - 8) * scales.astype(np.float64)[g_idx]).T
    np.testing.assert_allclose(weight.apply(x), x @ dense.T, rtol=1e-13, atol=1e-12)
    # Without g_idx the words are taken as they are.
    plain = ref.gptq_from_checkpoint(ref.pack_int4(q), scales, qzeros, g)
    assert plain.perm is None and np.array_equal(plain.qweight, ref.pack_int4(q))


def test_gptq_from_checkpoint_rejects_asymmetric_and_uneven_groups():
    qweight = np.zeros((2, 8), dtype=np.int32)
    scales = np.ones((2, 8), dtype=np.float16)
    with pytest.raises(ValueError, match="asymmetric"):
        ref.gptq_from_checkpoint(qweight, scales, [[i32(0x77777778)], [i32(0x77777777)]], 8)
    zeros = np.full((2, 1), i32(0x77777777), dtype=np.int32)
    with pytest.raises(ValueError, match="group_size rows"):
        ref.gptq_from_checkpoint(qweight, scales, zeros, 8, g_idx=[0] * 9 + [1] * 7)


def test_gptq_rejects_inconsistent_parts():
    qweight = np.zeros((2, 4), dtype=np.int32)
    with pytest.raises(ValueError, match="scales"):
        ref.GPTQWeight(qweight, np.ones((3, 4), dtype=np.float16), group_size=8)
    with pytest.raises(ValueError, match="perm"):
        ref.GPTQWeight(qweight, np.ones((2, 4), dtype=np.float16), 8, perm=[0] * 16)


# ---------------------------------------------------------------------------------------------
# float8 E4M3


FP8_BYTES = {
    0x00: 0.0,
    0x38: 1.0,  # exponent 7 = bias
    0x40: 2.0,
    0x3C: 1.5,  # mantissa 100
    0xB4: -0.75,  # sign, exponent 6, mantissa 100
    0x7E: 448.0,  # the largest finite value
    0xFE: -448.0,
    0x08: 2.0**-6,  # the smallest normal
    0x07: 7 / 8 * 2.0**-6,  # subnormals: m/8 * 2^-6
    0x01: 2.0**-9,
}


def test_decode_fp8_e4m3_hand_written():
    got = ref.decode_fp8_e4m3(list(FP8_BYTES))
    assert got.tolist() == list(FP8_BYTES.values())
    assert np.signbit(ref.decode_fp8_e4m3([0x80]))[0]
    assert np.isnan(ref.decode_fp8_e4m3([0x7F, 0xFF])).all()


def test_decode_fp8_every_finite_byte_round_trips():
    values = ref.decode_fp8_e4m3(np.arange(256))
    finite = ~np.isnan(values)
    assert finite.sum() == 254
    np.testing.assert_array_equal(ref.round_to_fp8_e4m3(values[finite]), values[finite])


@pytest.mark.parametrize(
    "x, expected",
    [
        (1.0625, 1.0),  # halfway between 1.0 and 1.125: to the even mantissa
        (1.1875, 1.25),  # halfway between 1.125 and 1.25: to the even mantissa
        (1.07, 1.125),
        (500.0, 448.0),  # clamped first
        (-1000.0, -448.0),
        (-0.001, -(2.0**-9)),  # subnormal quantum 2^-9
        (2.0**-10, 0.0),  # half the smallest subnormal: ties to even (zero)
        (3 * 2.0**-10, 2 * 2.0**-9),
    ],
)
def test_round_to_fp8_e4m3(x, expected):
    assert ref.round_to_fp8_e4m3(np.array([x]))[0] == expected


def test_float8_row_dynamic_hand_written():
    # s_x = 448 / 448 = 1, so x8 = x; y = (2 * 1 + -448 * 2) * s_x * s_w = -894 * 0.5.
    w = ref.Float8Weight([[0x38, 0x40]], [0.5], "row")
    assert w.apply(np.array([[2.0, -448.0]])).tolist() == [[-447.0]]


def test_float8_dynamic_scale_and_upper_bound():
    x = np.array([[896.0, 3.0], [0.0, 0.0]])
    x8, s = ref.quantize_fp8_input(x)
    assert s.tolist() == [2.0, 0.0]
    assert x8.tolist() == [[448.0, 1.5], [0.0, 0.0]]
    x8, s = ref.quantize_fp8_input(x[:1], upper_bound=448.0)
    assert s.tolist() == [1.0] and x8.tolist() == [[448.0, 3.0]]  # 896 clamps to 448


def test_float8_static_input_scale():
    w = ref.Float8Weight([[0x38, 0x38]], [1.0], "tensor", input_scale=[0.5])
    # x / 0.5 = [2.125, 3] -> E4M3 [2.0, 3.0] (2.125 is halfway: to even); y = 5 * 0.5
    assert w.apply(np.array([[1.0625, 1.5]])).tolist() == [[2.5]]


def test_float8_block_scales_apply_per_128_block():
    rng = np.random.default_rng(0)
    n, k = 130, 256
    raw = rng.integers(0, 256, size=(n, k), dtype=np.uint8)
    raw[(raw & 0x7F) == 0x7F] = 0x38  # no NaN codes
    scales = rng.uniform(0.5, 2.0, size=(2, 2)).astype(np.float32)
    x = rng.standard_normal((3, k))
    w = ref.Float8Weight(raw, scales, "block")
    x8, s_x = ref.quantize_fp8_input(x)
    w8 = ref.decode_fp8_e4m3(raw)
    expected = np.zeros((3, n))
    for i in range(n):
        for kb in range(2):
            cols = slice(128 * kb, 128 * (kb + 1))
            expected[:, i] += x8[:, cols] @ w8[i, cols] * scales[i // 128, kb]
    np.testing.assert_allclose(w.apply(x), expected * s_x[:, None], rtol=1e-13, atol=1e-10)


def test_qkv_projection_with_quantised_weights():
    rng = np.random.default_rng(1)
    k = 16
    weights = []
    for rows in (8, 4, 4):
        qweight = rng.integers(-(2**31), 2**31, size=(k // 8, rows), dtype=np.int64).astype(np.int32)
        weights.append(ref.GPTQWeight(qweight, rng.uniform(0.1, 1, (2, rows)).astype(np.float16), 8))
    x = rng.standard_normal((3, k))
    q, kk, v = ref.qkv_projection(x, weights, num_heads=2, num_kv_heads=1, head_dim=4)
    dense = [w.decode() for w in weights]
    np.testing.assert_array_equal(q.reshape(3, 8), x @ dense[0].T)
    np.testing.assert_array_equal(v.reshape(3, 4), x @ dense[2].T)
    with pytest.raises(ValueError, match="clip"):
        ref.qkv_projection(x, weights, 2, 1, 4, clip=1.0)


# ---------------------------------------------------------------------------------------------
# GGUF blocks, written byte by byte


def gguf(gguf_type, *parts):
    """One block (a row of W with one block) from byte lists."""
    block = np.concatenate([np.asarray(p, dtype=np.int64) & 0xFF for p in parts]).astype(np.uint8)
    return ref.GGUFWeight(gguf_type, block.reshape(1, -1))


def test_gguf_q4_0_block():
    d = [0x00, 0x38]  # f16 0.5
    qs = [j | ((15 - j) << 4) for j in range(16)]  # low nibbles 0..15, high 15..0
    w = gguf("q4_0", d, qs).decode()[0]
    expected = [-4.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0, -0.5,
                0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert w.tolist() == expected + expected[::-1]


def test_gguf_q8_0_block():
    d = [0x00, 0xB4]  # f16 -0.25
    qs = [-128, -1, 0, 1, 127] + [2] * 27
    w = gguf("q8_0", d, qs).decode()[0]
    assert w.tolist() == [32.0, 0.25, -0.0, -0.25, -31.75] + [-0.5] * 27


def test_gguf_q4_k_block():
    d, dmin = [0x00, 0x3C], [0x00, 0x38]  # f16 1.0, 0.5
    scales = [0x41, 0x02, 0x03, 0xC4, 0x05, 0x46, 0x07, 0x08, 0x21, 0x43, 0x65, 0x87]
    # Chunk c of 32 bytes: low nibble l % 16 (sub-block 2c), high nibble 3 (sub-block 2c + 1).
    qs = [(l % 16) | 0x30 for l in range(32)] * 4
    w = gguf("q4_k", d, dmin, scales, qs).decode()[0]
    # 6-bit (scale, min) of the sub-blocks unpacked from `scales` by hand.
    sc = [1, 2, 3, 4, 17, 3, 5, 55]
    m = [5, 6, 7, 8, 2, 20, 6, 8]
    ramp = [l % 16 for l in range(32)]
    for j in range(8):
        q = ramp if j % 2 == 0 else [3] * 32
        assert w[32 * j : 32 * j + 32].tolist() == [sc[j] * v - 0.5 * m[j] for v in q], j
    assert w[:4].tolist() == [-2.5, -1.5, -0.5, 0.5]
    assert w[224:226].tolist() == [161.0, 161.0]  # 55 * 3 - 0.5 * 8


def test_gguf_q6_k_block():
    # Half 0: ql[l] = l % 16 | 2 << 4, ql[l + 32] = 3 | 4 << 4, qh = 0b11_10_01_00;
    # half 1: ql = 0xF0 / 0x0F, qh = 0b00_01_10_11.
    ql = [(l % 16) | 0x20 for l in range(32)] + [0x43] * 32 + [0xF0] * 32 + [0x0F] * 32
    qh = [0xE4] * 32 + [0x1B] * 32
    scales = [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 15, -16]
    d = [0x00, 0x38]  # f16 0.5
    w = gguf("q6_k", ql, qh, scales, d).decode()[0]
    ramp = [l % 16 - 32 for l in range(32)]
    # Quarters (32 elements, scales s and s + 1 for their halves of 16) with their 6-bit values.
    quarters = [ramp, [-13] * 32, [2] * 32, [20] * 32, [16] * 32, [15] * 32, [-1] * 32, [-32] * 32]
    for quarter, q in enumerate(quarters):
        s = scales[2 * quarter : 2 * quarter + 2]
        expected = [0.5 * s[0] * v for v in q[:16]] + [0.5 * s[1] * v for v in q[16:]]
        assert w[32 * quarter : 32 * quarter + 32].tolist() == expected, quarter
    assert w[:2].tolist() == [-16.0, -15.5]
    assert w[224:226].tolist() == [-240.0, -240.0]  # 0.5 * scales[8 + 6] (15) * -32


def scalar_gguf_decode(gguf_type, block):
    """A transcription of quantization.md, element by element, for one block of bytes."""
    f16 = lambda o: np.float32(block[o : o + 2].view(np.float16)[0])  # noqa: E731
    f32 = np.float32
    y = [None] * ref.GGUF_BLOCKS[gguf_type][0]
    if gguf_type == "q4_0":
        for j in range(16):
            y[j] = f32((int(block[2 + j]) & 0xF) - 8) * f16(0)
            y[j + 16] = f32((int(block[2 + j]) >> 4) - 8) * f16(0)
    elif gguf_type == "q8_0":
        for j in range(32):
            y[j] = f32(int(block[2 + j : 3 + j].view(np.int8)[0])) * f16(0)
    elif gguf_type == "q4_k":
        scales = [int(v) for v in block[4:16]]

        def scale_min(j):
            if j < 4:
                return scales[j] & 63, scales[j + 4] & 63
            return ((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4),
                    (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4))

        d, dmin = f16(0), f16(2)
        for c in range(4):
            (sc1, m1), (sc2, m2) = scale_min(2 * c), scale_min(2 * c + 1)
            for l in range(32):
                q = int(block[16 + 32 * c + l])
                y[64 * c + l] = d * f32(sc1) * f32(q & 0xF) - dmin * f32(m1)
                y[64 * c + 32 + l] = d * f32(sc2) * f32(q >> 4) - dmin * f32(m2)
    else:
        d = f16(208)
        for h in range(2):
            ql = [int(v) for v in block[64 * h : 64 * h + 64]]
            qh = [int(v) for v in block[128 + 32 * h : 128 + 32 * h + 32]]
            sc = [f32(v) for v in block[192 + 8 * h : 200 + 8 * h].view(np.int8)]
            for l in range(32):
                s = l // 16
                q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32
                q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32
                q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32
                q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32
                y[128 * h + l] = d * sc[s] * f32(q1)
                y[128 * h + l + 32] = d * sc[s + 2] * f32(q2)
                y[128 * h + l + 64] = d * sc[s + 4] * f32(q3)
                y[128 * h + l + 96] = d * sc[s + 6] * f32(q4)
    return np.array(y, dtype=np.float32)


@pytest.mark.parametrize("gguf_type", ["q4_0", "q8_0", "q4_k", "q6_k"])
def test_gguf_decode_matches_element_by_element(gguf_type):
    rng = np.random.default_rng(14)
    w = ref.random_gguf_weight(rng, gguf_type, 3, 512)
    elements, nbytes = ref.GGUF_BLOCKS[gguf_type]
    decoded = w.decode()
    assert decoded.shape == (3, 512) and decoded.dtype == np.float32
    for n in range(3):
        for i in range(512 // elements):
            block = w.blocks[n, i * nbytes : (i + 1) * nbytes]
            expected = scalar_gguf_decode(gguf_type, block)
            np.testing.assert_array_equal(decoded[n, i * elements : (i + 1) * elements], expected)


def test_gguf_apply_and_shape_checks():
    rng = np.random.default_rng(3)
    w = ref.random_gguf_weight(rng, "q4_k", 4, 256)
    x = rng.standard_normal((2, 256))
    w.q8_max_rows = 0  # the f32 mode at every row count
    np.testing.assert_array_equal(ref.linear(x, w), x @ w.decode().astype(np.float64).T)
    with pytest.raises(ValueError, match="q6_k blocks"):
        ref.GGUFWeight("q6_k", np.zeros((2, 209), dtype=np.uint8))
    with pytest.raises(ValueError, match="unknown GGUF type"):
        ref.GGUFWeight("q5_k", np.zeros((2, 176), dtype=np.uint8))


# ---------------------------------------------------------------------------------------------
# Q8_K activations and the int8 mode of GGUF products


def scalar_quantize_q8_k(block):
    """llama.cpp's quantize_row_q8_K_ref of one block of 256, transcribed: the signed value of
    largest magnitude (the first of equal ones), iscale = -127 / max, nearest_int (f32 rounding
    of iscale x, ties to even), at most 127, d = 1 / iscale."""
    block = [np.float32(v) for v in block]
    amax, signed_max = np.float32(0), np.float32(0)
    for v in block:
        if abs(v) > amax:
            amax, signed_max = abs(v), v
    if amax == 0:
        return [0] * len(block), np.float32(0)
    iscale = np.float32(-127) / signed_max
    q = [min(127, int(np.rint(np.float32(iscale * v)))) for v in block]
    return q, np.float32(1) / iscale


def test_quantize_q8_k_is_llama_cpp_up_to_sign():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 768)).astype(np.float32)
    x[0, :256] = 0  # an all-zero block
    x[1, 300] = 7.0  # a positive maximum (llama.cpp's q and d negative there)
    x[1, 600], x[1, 700] = -9.0, 9.0  # equal magnitudes, the negative first
    x[1, 4:8] = [2.5, 3.5, -2.5, 127.0]  # iscale = 1: halfway cases round to even
    q, d = ref.quantize_q8_k(x)
    assert q.dtype == np.int8 and d.dtype == np.float32 and d.shape == (2, 3)
    for t in range(2):
        for b in range(3):
            want_q, want_d = scalar_quantize_q8_k(x[t, 256 * b : 256 * (b + 1)])
            sign = -1 if want_d < 0 else 1
            assert d[t, b] == sign * want_d
            assert q[t, 256 * b : 256 * (b + 1)].tolist() == [sign * v for v in want_q]
    assert d[0, 0] == 0 and not q[0, :256].any()
    assert q[1, 4:8].tolist() == [2, 4, -2, 127]


def scalar_quantize_q8_0(block):
    """llama.cpp's x86 quantize_row_q8_0 (AVX2) of one block of 32, transcribed: d = max / 127
    stored as f16, id = 127 / max (0 for an all-zero block), q = round-nearest-even(x id)."""
    block = [np.float32(v) for v in block]
    amax = max(abs(v) for v in block)
    d = np.float16(np.float32(amax / np.float32(127)))
    iscale = np.float32(127) / amax if amax != 0 else np.float32(0)
    return [int(np.rint(np.float32(v * iscale))) for v in block], np.float32(d)


def test_quantize_q8_0_is_llama_cpp():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 96)).astype(np.float32)
    x[0, 32:64] = 0  # an all-zero block
    x[1, 0:4] = [2.5, 3.5, -2.5, 127.0]  # id = 1: halfway cases round to even
    x[1, 40] = -1e-3  # a tiny block: d rounds to an f16 subnormal
    x[1, 32:40] = x[1, 41:64] = 0
    q, d = ref.quantize_q8_0(x)
    assert q.dtype == np.int8 and d.dtype == np.float32 and d.shape == (2, 3)
    for t in range(2):
        for b in range(3):
            want_q, want_d = scalar_quantize_q8_0(x[t, 32 * b : 32 * (b + 1)])
            assert d[t, b] == want_d and q[t, 32 * b : 32 * (b + 1)].tolist() == want_q
    assert d[0, 1] == 0 and not q[0, 32:64].any()
    assert q[1, 0:4].tolist() == [2, 4, -2, 127]
    assert d[1, 1] == np.float32(np.float16(np.float32(1e-3) / np.float32(127)))
    assert q[1, 40] == -127


@pytest.mark.parametrize("gguf_type", ref.GGUF_BLOCKS)
def test_gguf_q8_product_is_the_product_of_the_rounded_activations(gguf_type):
    """The int8 mode with exact integer sums (K-quants: sum_b d8_b (d_b I_b - dmin_b M_b);
    Q4_0 / Q8_0: sum_b f32(d_b d8_b) I_b) is (d8 q8) @ W^T of the decoded weights (up to the f32
    rounding of the factors, relative 2^-23)."""
    rng = np.random.default_rng(6)
    w = ref.random_gguf_weight(rng, gguf_type, 5, 512)
    x = rng.standard_normal((3, 512))
    q8, d8 = w.quantize_activations(x)
    rounded = q8.astype(np.float64) * np.repeat(d8, w.q8_block, axis=1)
    want = rounded @ w.decode().astype(np.float64).T
    got = w.apply_q8(x)
    assert np.max(np.abs(got - want)) <= 2.0**-22 * np.max(np.abs(rounded) @ np.abs(w.decode()).T)
    assert np.array_equal(ref.linear(x, w), got) and w.uses_q8(3)
    assert not w.uses_q8(ref.GGUF_Q8_K_MAX_ROWS + 1)
    limit = ref.GGUF_Q8_0_MAX_ROWS if gguf_type in ref.GGUF_Q8_0_TYPES else ref.GGUF_Q8_K_MAX_ROWS
    assert w.uses_q8(limit) and not w.uses_q8(limit + 1)
    assert np.max(np.abs(got - x @ w.decode().astype(np.float64).T)) > 1e-4
    assert np.all(w.q8_abs_terms(x) >= np.abs(got))
