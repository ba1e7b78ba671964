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
