"""Checks of attn.reference against independent formulations (loops, complex numbers, dense masks)."""

import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from attn import reference as ref  # noqa: E402

PLAIN = {"theta": 10000.0, "interleaved": False, "scaling": None}
MASKS = [{"kind": "causal"}, {"kind": "none"}, {"kind": "sliding_window", "window": 3}]


def nonzero(rng, *shape):
    """Random values in +-[0.5, 1.5): never zero."""
    return rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)


# ---------------------------------------------------------------------------------------------
# Independent formulations


def naive_attention(q, k, v, q_pos, mask, scale):
    """Loop-per-(row, head) softmax attention; explicit visibility test, GQA by h * Hkv // H."""
    n, h_q, d = q.shape
    h_kv = k.shape[1]
    out = np.zeros((n, h_q, d))
    for i in range(n):
        for h in range(h_q):
            g = h * h_kv // h_q
            keys = []
            for j in range(k.shape[0]):
                if mask["kind"] == "none":
                    ok = True
                elif mask["kind"] == "causal":
                    ok = j <= q_pos[i]
                else:
                    ok = j <= q_pos[i] and q_pos[i] - j < mask["window"]
                if ok:
                    keys.append(j)
            if not keys:
                continue
            s = [scale * float(np.dot(q[i, h], k[j, g])) for j in keys]
            top = max(s)
            w = [math.exp(x - top) for x in s]
            total = sum(w)
            for wj, j in zip(w, keys):
                out[i, h] += wj / total * v[j, g]
    return out


def rope_complex(x, pos, inv_freq, mscale, interleaved):
    """RoPE as complex multiplication of (xa + i xb) by m * exp(i pos inv_freq)."""
    d = x.shape[-1]
    if interleaved:
        z = x[..., 0::2] + 1j * x[..., 1::2]
    else:
        z = x[..., : d // 2] + 1j * x[..., d // 2 :]
    rot = mscale * np.exp(1j * np.asarray(pos, dtype=np.float64)[:, None, None] * inv_freq)
    z = z * rot
    out = np.empty(x.shape)
    if interleaved:
        out[..., 0::2], out[..., 1::2] = z.real, z.imag
    else:
        out[..., : d // 2], out[..., d // 2 :] = z.real, z.imag
    return out


def scatter_logical(logical_k, logical_v, kv_blocks, lookup, layer):
    """Write per-sequence logical K/V [len, Hkv, D] into pages, one token at a time."""
    blocks = np.array(kv_blocks, dtype=np.float64)
    page = blocks.shape[3]
    for b, (kb, vb) in enumerate(zip(logical_k, logical_v)):
        for j in range(kb.shape[0]):
            pid = lookup[b][j // page]
            blocks[pid, 0, layer, j % page] = kb[j]
            blocks[pid, 1, layer, j % page] = vb[j]
    return blocks


# ---------------------------------------------------------------------------------------------
# dtypes


def test_bf16_rounding_known_values():
    cases = [
        (1.0, 1.0),
        (1 + 2**-7, 1 + 2**-7),  # representable
        (1 + 2**-8, 1.0),  # tie -> even (1.0)
        (1 + 3 * 2**-8, 1 + 2**-6),  # tie -> even (mantissa ...10)
        (1 + 2**-8 + 2**-20, 1 + 2**-7),  # just above the tie
        (1 + 2**-8 + 2**-30, 1 + 2**-7),  # above the tie only in f64: no double rounding via f32
        (-(1 + 2**-8), -1.0),
        (3.0e38, float.fromhex("0x1.c4p+127")),
        (3.4028235e38, math.inf),  # f32 max rounds up past bf16 max
        (1e-45, 0.0),
        (0.0, 0.0),
        (math.inf, math.inf),
    ]
    x = np.array([c[0] for c in cases])
    want = np.array([c[1] for c in cases])
    got = ref.cast_like(x, "bf16")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    # Same results from float32 input where the value is a float32 (all but the f64-only case).
    got32 = ref.cast_like(x.astype(np.float32), "bf16")
    keep = np.arange(len(cases)) != 5
    np.testing.assert_array_equal(got32[keep], want[keep])
    assert np.isnan(ref.cast_like(np.array([np.nan]), "bf16"))[0]


def test_bf16_rounding_matches_float_reasoning():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(2000) * 10.0 ** rng.integers(-5, 5, 2000)
    got = ref.cast_like(x, "bf16").astype(np.float64)
    # bf16 has 8 significant bits: relative error at most half an ulp (2^-8), result on that grid.
    assert np.all(np.abs(got - x) <= np.abs(x) * 2.0**-8)
    mant, _ = np.frexp(got)
    assert np.all(mant * 2**8 == np.round(mant * 2**8))


def test_cast_like_f16_f32():
    x = np.array([1 + 2**-11, 1 + 2**-24, 65520.0])
    np.testing.assert_array_equal(ref.cast_like(x, "f16"), np.array([1.0, 1.0, np.inf], np.float16))
    assert ref.cast_like(x, "f32").dtype == np.float32
    assert ref.cast_like(x, "f32")[1] == np.float32(1.0)


# ---------------------------------------------------------------------------------------------
# RoPE


def test_positions():
    pos = ref.positions([0, 3, 3, 5], [2, 7, 0])
    np.testing.assert_array_equal(pos, [2, 3, 4, 0, 1])


def test_inv_freq_plain():
    d = 16
    inv = ref.rope_inv_freq(PLAIN, d)
    want = np.array([np.float32(math.pow(10000.0, -2 * i / d)) for i in range(d // 2)])
    assert inv.dtype == np.float32
    np.testing.assert_array_equal(inv, want)
    assert ref.rope_mscale(PLAIN, d) == 1.0


def test_rope_table_position_zero():
    yarn = {
        "theta": 10000.0,
        "interleaved": False,
        "scaling": {"kind": "yarn", "factor": 4.0, "beta_fast": 32, "beta_slow": 1,
                    "original_max_position": 256},
    }
    for rope in (PLAIN, yarn):
        m = ref.rope_mscale(rope, 8)
        t = ref.rope_table(rope, 8, 5)
        assert t.shape == (5, 8)
        np.testing.assert_array_equal(t[0], np.tile([m, 0.0], 4))
    assert ref.rope_mscale(yarn, 8) == pytest.approx(0.1 * math.log(4.0) + 1)


@pytest.mark.parametrize("interleaved", [False, True])
def test_apply_rope_matches_complex_and_preserves_pair_norms(interleaved):
    rng = np.random.default_rng(1)
    rope = {"theta": 500000.0, "interleaved": interleaved,
            "scaling": {"kind": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position": 64}}
    off, cache = [0, 3, 7], [5, 40]
    x = nonzero(rng, 7, 2, 16)
    y = ref.apply_rope(x, off, cache, rope)
    pos = np.array([5, 6, 7, 40, 41, 42, 43])
    want = rope_complex(x, pos, ref.rope_inv_freq(rope, 16).astype(np.float64), 1.0, interleaved)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)

    def pair_norms(a):
        if interleaved:
            return np.hypot(a[..., 0::2], a[..., 1::2])
        return np.hypot(a[..., :8], a[..., 8:])

    np.testing.assert_allclose(pair_norms(y), pair_norms(x), rtol=1e-12)


def test_interleaved_is_permutation_of_half_pairing():
    rng = np.random.default_rng(2)
    d = 12
    x = nonzero(rng, 4, 3, d)
    half = dict(PLAIN, interleaved=False)
    inter = dict(PLAIN, interleaved=True)
    # perm puts half-pairing partners (i, i + D/2) at (2i, 2i+1).
    perm = np.stack([np.arange(d // 2), np.arange(d // 2) + d // 2], axis=1).reshape(-1)
    off, cache = [0, 4], [9]
    a = ref.apply_rope(x, off, cache, half)[..., perm]
    b = ref.apply_rope(x[..., perm], off, cache, inter)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_rope_matches_rotate_half_form():
    """Hugging Face form: x * cat(cos, cos) + rotate_half(x) * cat(sin, sin)."""
    rng = np.random.default_rng(3)
    d = 8
    x = nonzero(rng, 5, 1, d)
    y = ref.apply_rope(x, [0, 5], [3], PLAIN)
    inv = ref.rope_inv_freq(PLAIN, d).astype(np.float64)
    ang = np.arange(3, 8)[:, None] * inv
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None]
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None]
    rot = np.concatenate([-x[..., d // 2 :], x[..., : d // 2]], axis=-1)
    np.testing.assert_allclose(y, x * cos + rot * sin, rtol=1e-13, atol=1e-13)


def test_llama3_scaling_bands():
    d, factor, orig = 128, 8.0, 8192
    rope = {"theta": 500000.0, "interleaved": False,
            "scaling": {"kind": "llama3", "factor": factor, "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position": orig}}
    base = ref.rope_inv_freq(PLAIN | {"theta": 500000.0}, d).astype(np.float64)
    inv = ref.rope_inv_freq(rope, d).astype(np.float64)
    wavelen = 2 * np.pi / np.array([math.pow(500000.0, -2 * i / d) for i in range(d // 2)])
    high = wavelen < orig / 4.0
    low = wavelen > orig / 1.0
    mid = ~high & ~low
    assert high.any() and low.any() and mid.any()
    np.testing.assert_array_equal(inv[high], base[high])
    np.testing.assert_allclose(inv[low], base[low] / factor, rtol=1e-7)
    assert np.all(inv[mid] < base[mid]) and np.all(inv[mid] > base[mid] / factor)
    # Smooth factor moves continuously: ratio is non-increasing with i.
    assert np.all(np.diff(inv / base) <= 1e-7)


def test_linear_scaling():
    rope = dict(PLAIN, scaling={"kind": "linear", "factor": 2.5})
    base = ref.rope_inv_freq(PLAIN, 16).astype(np.float64)
    np.testing.assert_allclose(ref.rope_inv_freq(rope, 16), base / 2.5, rtol=1e-7)
    assert ref.rope_mscale(rope, 16) == 1.0


def test_yarn_ramp():
    d, factor = 64, 4.0
    rope = dict(PLAIN, scaling={"kind": "yarn", "factor": factor, "beta_fast": 32,
                                "beta_slow": 1, "original_max_position": 4096})
    base = ref.rope_inv_freq(PLAIN, d).astype(np.float64)
    ratio = ref.rope_inv_freq(rope, d).astype(np.float64) / base
    # cd(32) ~ 10.5 -> lo = 10, cd(1) ~ 22.5 -> hi = 23.
    np.testing.assert_allclose(ratio[:11], 1.0, rtol=1e-7)
    np.testing.assert_allclose(ratio[23:], 1 / factor, rtol=1e-7)
    assert np.all((ratio[11:23] < 1) & (ratio[11:23] > 1 / factor))
    assert np.all(np.diff(ratio) <= 1e-7)
    assert ref.rope_mscale(dict(PLAIN, scaling=dict(rope["scaling"], factor=1.0)), d) == 1.0


def test_yarn_hi_equals_lo_does_not_divide_by_zero():
    orig = 64
    # cd(beta_slow) slightly below 0 -> hi = 0; cd(beta_fast) very negative -> lo = 0.
    rope = dict(PLAIN, scaling={"kind": "yarn", "factor": 2.0, "beta_fast": 32,
                                "beta_slow": orig / (2 * math.pi) * 1.01,
                                "original_max_position": orig})
    with np.errstate(all="raise"):
        inv = ref.rope_inv_freq(rope, 8).astype(np.float64)
    base = ref.rope_inv_freq(PLAIN, 8).astype(np.float64)
    # ramp = clip(i / 0.001, 0, 1) = [0, 1, 1, 1].
    np.testing.assert_allclose(inv, base * np.array([1, 0.5, 0.5, 0.5]), rtol=1e-7)


def test_longrope_short_and_long():
    d, orig, max_pos = 8, 8, 64
    short = [1.0, 1.5, 2.0, 3.0]
    long = [2.0, 4.0, 8.0, 16.0]
    rope = dict(PLAIN, scaling={"kind": "longrope", "short_factor": short, "long_factor": long,
                                "original_max_position": orig, "max_position": max_pos})
    base = ref.rope_inv_freq(PLAIN, d).astype(np.float64)
    np.testing.assert_allclose(ref.rope_inv_freq(rope, d, 3), base / short, rtol=1e-7)
    np.testing.assert_allclose(ref.rope_inv_freq(rope, d, orig - 1), base / short, rtol=1e-7)
    np.testing.assert_allclose(ref.rope_inv_freq(rope, d, orig), base / long, rtol=1e-7)
    np.testing.assert_allclose(ref.rope_inv_freq(rope, d, 50), base / long, rtol=1e-7)
    m = math.sqrt(1 + math.log(max_pos / orig) / math.log(orig))
    assert ref.rope_mscale(rope, d) == pytest.approx(m)
    t = ref.rope_table(rope, d, 12)
    base64 = np.array([math.pow(10000.0, -2 * i / d) for i in range(d // 2)])
    for p in (0, 5, 7, 8, 11):
        inv = (base64 / (short if p < orig else long)).astype(np.float32).astype(np.float64)
        np.testing.assert_allclose(t[p, 0::2], m * np.cos(p * inv), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(t[p, 1::2], m * np.sin(p * inv), rtol=1e-12, atol=1e-15)
    no_ext = dict(rope, scaling=dict(rope["scaling"], max_position=orig))
    assert ref.rope_mscale(no_ext, d) == 1.0


# ---------------------------------------------------------------------------------------------
# Projection and norm


def test_rms_norm():
    rng = np.random.default_rng(4)
    x = nonzero(rng, 3, 2, 8)
    g = nonzero(rng, 8)
    want = np.empty_like(x)
    for idx in np.ndindex(3, 2):
        row = x[idx]
        want[idx] = row / math.sqrt(sum(v * v for v in row) / 8 + 1e-5) * g
    np.testing.assert_allclose(ref.rms_norm(x, g, 1e-5), want, rtol=1e-13)


def test_qkv_projection_stacked_tuple_bias_clip():
    rng = np.random.default_rng(5)
    h, hkv, d, hidden, t = 4, 2, 4, 10, 3
    wq, wk, wv = (nonzero(rng, n * d, hidden) for n in (h, hkv, hkv))
    bq, bk, bv = (nonzero(rng, n * d) for n in (h, hkv, hkv))
    x = 20 * nonzero(rng, t, hidden)
    q, k, v = ref.qkv_projection(x, (wq, wk, wv), h, hkv, d, biases=(bq, bk, bv))
    np.testing.assert_allclose(q, (x @ wq.T + bq).reshape(t, h, d), rtol=1e-13)
    np.testing.assert_allclose(k, (x @ wk.T + bk).reshape(t, hkv, d), rtol=1e-13)
    np.testing.assert_allclose(v, (x @ wv.T + bv).reshape(t, hkv, d), rtol=1e-13)
    stacked = ref.qkv_projection(x, np.concatenate([wq, wk, wv]), h, hkv, d,
                                 biases=np.concatenate([bq, bk, bv]))
    for a, b in zip(stacked, (q, k, v)):
        np.testing.assert_array_equal(a, b)
    c = 0.8
    qc, kc, vc = ref.qkv_projection(x, (wq, wk, wv), h, hkv, d, clip=c)
    np.testing.assert_allclose(qc, (x @ np.clip(wq, -c, c).T).reshape(t, h, d), rtol=1e-13)
    np.testing.assert_allclose(vc, (x @ np.clip(wv, -c, c).T).reshape(t, hkv, d), rtol=1e-13)
    assert np.abs(qc).max() > c  # activations are not clamped


# ---------------------------------------------------------------------------------------------
# KV cache


def test_random_paged_cache_layout():
    rng = np.random.default_rng(6)
    c = ref.random_paged_cache(rng, 12, 2, 4, 2, 8, [5, 0, 8], [3, 2, 0])
    assert c["kv_blocks"].shape == (12, 2, 2, 4, 2, 8)
    assert np.all(c["kv_blocks"] != 0)
    np.testing.assert_array_equal(c["row_offsets"], [0, 3, 5, 5])
    lut = c["lookup_table"]
    assert lut.shape == (3, 2)
    used = lut[lut != 12]
    assert len(used) == 2 + 1 + 2 and len(set(used.tolist())) == len(used)
    with pytest.raises(ValueError):
        ref.random_paged_cache(rng, 3, 1, 4, 1, 4, [5, 5], [1, 1])
    assert ref.random_paged_cache(rng, 2, 1, 4, 1, 4, [3], [1], dtype="f16")["kv_blocks"].dtype \
        == np.float16
    bf = ref.random_paged_cache(rng, 2, 1, 4, 1, 4, [3], [1], dtype="bf16")["kv_blocks"]
    assert bf.dtype == np.float32 and np.all(bf.view(np.uint32) & 0xFFFF == 0)


def test_kv_cache_store_changes_exactly_written_slots():
    rng = np.random.default_rng(7)
    page, layer = 4, 1
    c = ref.random_paged_cache(rng, 10, 3, page, 2, 4, [3, 6, 0], [4, 0, 5])
    blocks, off, cache, lut = c["kv_blocks"], c["row_offsets"], c["cache_lengths"], c["lookup_table"]
    before = blocks.copy()
    k, v = nonzero(rng, 9, 2, 4), nonzero(rng, 9, 2, 4)
    new = ref.kv_cache_store(blocks, k, v, off, cache, lut, layer)
    np.testing.assert_array_equal(blocks, before)  # input untouched
    assert new.dtype == blocks.dtype
    expected = before.copy()
    written = np.zeros(before.shape, dtype=bool)
    rows = [(0, 3 + i) for i in range(4)] + [(2, i) for i in range(5)]
    for r, (b, pos) in enumerate(rows):
        pid, slot = lut[b, pos // page], pos % page
        expected[pid, 0, layer, slot] = k[r]
        expected[pid, 1, layer, slot] = v[r]
        written[pid, :, layer, slot] = True
    np.testing.assert_array_equal(new, expected)
    np.testing.assert_array_equal(new[~written], before[~written])
    assert written.sum() == 9 * 2 * 2 * 4


def test_kv_cache_store_two_steps_equal_one():
    rng = np.random.default_rng(8)
    c = ref.random_paged_cache(rng, 8, 1, 4, 1, 4, [2, 5], [6, 3], dtype="f64")
    blocks, lut = c["kv_blocks"], c["lookup_table"]
    k, v = nonzero(rng, 9, 1, 4), nonzero(rng, 9, 1, 4)
    one = ref.kv_cache_store(blocks, k, v, [0, 6, 9], [2, 5], lut, 0)
    first = [0, 1, 2, 6]  # rows of step one: 3 of seq 0, 1 of seq 1
    second = [3, 4, 5, 7, 8]
    step = ref.kv_cache_store(blocks, k[first], v[first], [0, 3, 4], [2, 5], lut, 0)
    step = ref.kv_cache_store(step, k[second], v[second], [0, 3, 5], [5, 6], lut, 0)
    np.testing.assert_array_equal(step, one)


# ---------------------------------------------------------------------------------------------
# Attention


@pytest.mark.parametrize("mask", MASKS, ids=lambda m: m["kind"])
def test_paged_attention_matches_naive(mask):
    rng = np.random.default_rng(9)
    h, hkv, d, page, layer = 4, 2, 8, 4, 1
    cached, new = [5, 0, 3], [3, 4, 1]
    c = ref.random_paged_cache(rng, 12, 2, page, hkv, d, cached, new)
    logical_k = [nonzero(rng, a + b, hkv, d) for a, b in zip(cached, new)]
    logical_v = [nonzero(rng, a + b, hkv, d) for a, b in zip(cached, new)]
    blocks = scatter_logical(logical_k, logical_v, c["kv_blocks"], c["lookup_table"], layer)
    q = nonzero(rng, sum(new), h, d)
    scale = 0.3
    o = ref.flash_attention_paged(q, blocks, c["cache_lengths"], c["lookup_table"],
                                  c["row_offsets"], layer, mask, scale)
    off = c["row_offsets"]
    for b in range(3):
        rows = slice(off[b], off[b + 1])
        q_pos = cached[b] + np.arange(new[b])
        want = naive_attention(q[rows], logical_k[b], logical_v[b], q_pos, mask, scale)
        np.testing.assert_allclose(o[rows], want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mask", MASKS, ids=lambda m: m["kind"])
def test_paged_equals_explicit_ragged(mask):
    rng = np.random.default_rng(10)
    h, hkv, d, page = 6, 3, 4, 2
    cached, new = [3, 0, 4], [2, 3, 0]
    c = ref.random_paged_cache(rng, 12, 1, page, hkv, d, cached, new)
    q = nonzero(rng, sum(new), h, d)
    o = ref.flash_attention_paged(q, c["kv_blocks"], c["cache_lengths"], c["lookup_table"],
                                  c["row_offsets"], 0, mask)
    ks, vs = [], []
    for b in range(3):
        kb, vb = ref.gather_kv(c["kv_blocks"], c["lookup_table"], 0, b, cached[b] + new[b])
        ks.append(kb)
        vs.append(vb)
    kv_off = np.concatenate([[0], np.cumsum([a + b for a, b in zip(cached, new)])])
    o2 = ref.flash_attention(q, np.concatenate(ks), np.concatenate(vs), c["row_offsets"],
                             kv_off, mask)
    np.testing.assert_allclose(o, o2, rtol=1e-14, atol=1e-15)


def test_gqa_equals_repeated_kv_heads():
    rng = np.random.default_rng(11)
    h, hkv, d = 6, 2, 4
    q = nonzero(rng, 5, h, d)
    k, v = nonzero(rng, 7, hkv, d), nonzero(rng, 7, hkv, d)
    qo, ko = [0, 2, 5], [0, 3, 7]
    gqa = ref.flash_attention(q, k, v, qo, ko, {"kind": "causal"})
    mha = ref.flash_attention(q, np.repeat(k, 3, axis=1), np.repeat(v, 3, axis=1), qo, ko,
                              {"kind": "causal"})
    np.testing.assert_allclose(gqa, mha, rtol=1e-14)
    # And query head 4 reads kv head 1 only: changing kv head 0 leaves it alone.
    k2 = k.copy()
    k2[:, 0] += nonzero(rng, 7, d)
    o2 = ref.flash_attention(q, k2, v, qo, ko, {"kind": "causal"})
    np.testing.assert_array_equal(o2[:, 3:], gqa[:, 3:])
    assert not np.allclose(o2[:, :3], gqa[:, :3])


def test_rows_without_visible_keys_give_zeros():
    rng = np.random.default_rng(12)
    q = nonzero(rng, 7, 2, 4)
    k, v = nonzero(rng, 2, 1, 4), nonzero(rng, 2, 1, 4)
    # seq 0: 4 queries over 2 keys -> rows 0, 1 sit at positions -2, -1; seq 1: no keys at all.
    with np.errstate(all="raise"):
        o = ref.flash_attention(q, k, v, [0, 4, 7], [0, 2, 2], {"kind": "causal"})
    assert np.all(np.isfinite(o))
    np.testing.assert_array_equal(o[:2], 0.0)
    np.testing.assert_array_equal(o[4:], 0.0)
    assert np.all(o[2:4] != 0)
    o0 = ref.flash_attention(q[:4], k, v, [0, 4], [0, 2], {"kind": "sliding_window", "window": 0})
    np.testing.assert_array_equal(o0, 0.0)


def test_sliding_window_one_sees_only_itself():
    rng = np.random.default_rng(13)
    q = nonzero(rng, 3, 1, 4)
    k, v = nonzero(rng, 5, 1, 4), nonzero(rng, 5, 1, 4)
    o = ref.flash_attention(q, k, v, [0, 3], [0, 5], {"kind": "sliding_window", "window": 1})
    np.testing.assert_allclose(o, v[2:5], rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# Whole layer


def make_layer(rng, h, hkv, d, hidden, bias=False, qk_norm=False):
    w = {
        "weights": (nonzero(rng, h * d, hidden) * 0.3, nonzero(rng, hkv * d, hidden) * 0.3,
                    nonzero(rng, hkv * d, hidden) * 0.3),
        "wo": nonzero(rng, hidden, h * d) * 0.3,
        "num_heads": h, "num_kv_heads": hkv, "head_dim": d,
    }
    if bias:
        w["biases"] = tuple(nonzero(rng, n * d) for n in (h, hkv, hkv))
    if qk_norm:
        w["q_norm"], w["k_norm"] = nonzero(rng, d), nonzero(rng, d)
    return w


def naive_prefill(x, p, rope, clip=None, eps=1e-6):
    """One sequence from an empty cache, built without the reference's helpers."""
    h, hkv, d = p["num_heads"], p["num_kv_heads"], p["head_dim"]
    t = x.shape[0]
    wq, wk, wv = (w if clip is None else np.clip(w, -clip, clip) for w in p["weights"])
    bq, bk, bv = p.get("biases", (0.0, 0.0, 0.0))
    q = (x @ wq.T + bq).reshape(t, h, d)
    k = (x @ wk.T + bk).reshape(t, hkv, d)
    v = (x @ wv.T + bv).reshape(t, hkv, d)
    if "q_norm" in p:
        q = q / np.sqrt((q**2).mean(-1, keepdims=True) + eps) * p["q_norm"]
        k = k / np.sqrt((k**2).mean(-1, keepdims=True) + eps) * p["k_norm"]
    inv = ref.rope_inv_freq(rope, d).astype(np.float64)
    m = ref.rope_mscale(rope, d)
    q = rope_complex(q, np.arange(t), inv, m, rope["interleaved"])
    k = rope_complex(k, np.arange(t), inv, m, rope["interleaved"])
    o = naive_attention(q, k, v, np.arange(t), {"kind": "causal"}, 1 / math.sqrt(d))
    return o.reshape(t, h * d) @ p["wo"].T


@pytest.mark.parametrize("variant", ["plain", "bias_clip", "qk_norm_yarn_interleaved"])
def test_layer_prefill_matches_naive(variant):
    rng = np.random.default_rng(14)
    bias = variant == "bias_clip"
    qk = variant.startswith("qk_norm")
    rope = dict(PLAIN)
    if qk:
        rope = {"theta": 1000.0, "interleaved": True,
                "scaling": {"kind": "yarn", "factor": 4.0, "beta_fast": 32, "beta_slow": 1,
                            "original_max_position": 64}}
    clip = 0.35 if bias else None
    p = make_layer(rng, 4, 2, 8, 12, bias=bias, qk_norm=qk)
    c = ref.random_paged_cache(rng, 6, 2, 4, 2, 8, [0], [7], dtype="f64")
    x = nonzero(rng, 7, 12)
    out, _ = ref.attention_with_rope(x, c["row_offsets"], c["kv_blocks"], c["cache_lengths"],
                                     c["lookup_table"], layer=1, rope=rope, clip=clip, **p)
    np.testing.assert_allclose(out, naive_prefill(x, p, rope, clip), rtol=1e-11, atol=1e-12)


def test_layer_two_steps_equal_one_step():
    rng = np.random.default_rng(15)
    h, hkv, d, hidden, page = 4, 2, 8, 16, 4
    p = make_layer(rng, h, hkv, d, hidden, bias=True, qk_norm=True)
    p["weights"] = np.concatenate(p["weights"])  # stacked form this time
    rope = {"theta": 10000.0, "interleaved": False,
            "scaling": {"kind": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position": 16}}
    # Two sequences of 7 and 5 tokens; step one takes 4 of each, step two 3 and one decode token.
    lens, split = np.array([7, 5]), np.array([4, 4])
    c = ref.random_paged_cache(rng, 8, 2, page, hkv, d, [0, 0], lens, dtype="f64")
    blocks, lut = c["kv_blocks"], c["lookup_table"]
    x = [nonzero(rng, n, hidden) for n in lens]
    kw = dict(layer=1, rope=rope, **p)

    def offsets(ns):
        return np.concatenate([[0], np.cumsum(ns)])

    full, full_blocks = ref.attention_with_rope(np.concatenate(x), offsets(lens), blocks,
                                                [0, 0], lut, **kw)
    x1 = np.concatenate([x[0][:4], x[1][:4]])
    o1, b1 = ref.attention_with_rope(x1, offsets(split), blocks, [0, 0], lut, **kw)
    x2 = np.concatenate([x[0][4:], x[1][4:]])
    o2, b2 = ref.attention_with_rope(x2, offsets(lens - split), b1, split, lut, **kw)
    np.testing.assert_allclose(np.concatenate([o1[:4], o2[:3]]), full[:7], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.concatenate([o1[4:], o2[3:]]), full[7:], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(b2, full_blocks, rtol=1e-13, atol=1e-14)


def test_layer_batch_with_empty_sequence_equals_separate_runs():
    rng = np.random.default_rng(16)
    h, hkv, d, hidden = 4, 4, 4, 8
    p = make_layer(rng, h, hkv, d, hidden)
    cached, new = [3, 6, 2], [2, 0, 1]
    c = ref.random_paged_cache(rng, 10, 1, 2, hkv, d, cached, new, dtype="f64")
    x = nonzero(rng, 3, hidden)
    mask = {"kind": "sliding_window", "window": 4}
    kw = dict(layer=0, rope=PLAIN, mask=mask, **p)
    out, blocks = ref.attention_with_rope(x, c["row_offsets"], c["kv_blocks"], c["cache_lengths"],
                                          c["lookup_table"], **kw)
    assert out.shape == (3, hidden) and np.all(np.isfinite(out))
    for b, rows in ((0, slice(0, 2)), (2, slice(2, 3))):
        o_b, _ = ref.attention_with_rope(x[rows], [0, new[b]], c["kv_blocks"], [cached[b]],
                                         c["lookup_table"][b : b + 1], **kw)
        np.testing.assert_allclose(out[rows], o_b, rtol=1e-13, atol=1e-14)
    # The empty sequence's pages are untouched.
    pages_1 = c["lookup_table"][1][c["lookup_table"][1] < 10]
    np.testing.assert_array_equal(blocks[pages_1], c["kv_blocks"][pages_1])
