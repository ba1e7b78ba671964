"""Numpy reference of the attention block.

Implements ``/work/shared/reference/attention-semantics.md`` ("the doc"): one layer step of MAX's
``AttentionWithRope`` over a ragged batch and a paged KV cache. Everything is computed in float64;
inputs may be float16/float32 (bf16 values arrive as float32 arrays already rounded, see ``cast_like``).
Results are float64 unless stated otherwise; ``cast_like`` models the output dtype of a kernel.

Conventions (the doc's symbols): T tokens, B sequences, H query heads, Hkv kv heads, D head dim,
P pages, L layers, ``page`` tokens per page. ``row_offsets`` is ``input_row_offsets`` ``[B+1]``.
"""

import math

import numpy as np

DEFAULT_MASK = {"kind": "causal"}


# ---------------------------------------------------------------------------------------------
# dtypes


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def _round_f64_to_f32_odd(x):
    """Round float64 to float32 with round-to-odd (truncate, then set the lsb if inexact).

    Round-to-odd to a format with >= 2 extra bits makes a following round-to-nearest-even exact,
    so f64 -> (odd) f32 -> (RNE) bf16 has no double-rounding error.
    """
    x = _f64(x)
    with np.errstate(over="ignore"):  # overflow to inf is expected; fixed up below
        y = x.astype(np.float32)
    bits = y.view(np.uint32).copy()
    finite = np.isfinite(x)
    # float32(x) rounded away from zero: step one ulp back towards zero to get the truncation.
    away = finite & (np.abs(y.astype(np.float64)) > np.abs(x))
    bits[away] -= np.uint32(1)
    inexact = finite & (y.astype(np.float64) != x)
    bits[inexact] |= np.uint32(1)
    return bits.view(np.float32)


def _round_f32_to_bf16(x32):
    """Round-to-nearest-even float32 -> bfloat16 (bit manipulation), returned as float32."""
    bits = np.asarray(x32, dtype=np.float32).view(np.uint32)
    lsb = (bits >> np.uint32(16)) & np.uint32(1)
    rounded = (bits + np.uint32(0x7FFF) + lsb) & np.uint32(0xFFFF0000)
    # NaN: keep it a (quiet) NaN instead of letting the carry turn it into inf or another value.
    nan = np.isnan(x32)
    rounded = np.where(nan, (bits | np.uint32(0x00400000)) & np.uint32(0xFFFF0000), rounded)
    return rounded.astype(np.uint32).view(np.float32)


def cast_like(x, dtype_name):
    """Round ``x`` to a kernel dtype: "f64", "f32", "f16" (float16 array) or "bf16" (float32 array).

    bf16 rounding is round-to-nearest-even; float64 inputs are rounded once (not via f32 RNE).
    """
    if dtype_name == "f64":
        return _f64(x).copy()
    if dtype_name in ("f32", "f16"):
        with np.errstate(over="ignore"):  # out-of-range values become inf, as on the device
            return np.asarray(x).astype(np.float32 if dtype_name == "f32" else np.float16)
    if dtype_name == "bf16":
        x = np.asarray(x)
        if x.dtype == np.float64:
            x32 = _round_f64_to_f32_odd(x)
        else:
            x32 = x.astype(np.float32)  # f16 -> f32 is exact
        return _round_f32_to_bf16(x32).reshape(np.shape(x))
    raise ValueError(f"unknown dtype name {dtype_name!r}")


# ---------------------------------------------------------------------------------------------
# Step 3: RoPE frequencies and tables


def _scaling(rope):
    return rope.get("scaling") or None


def _base_inv_freq(theta, head_dim):
    """``theta^(-2i/D)`` for ``i < D/2``, in float64."""
    if head_dim % 2:
        raise ValueError("RoPE needs an even head_dim")
    return 1.0 / float(theta) ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)


def _inv_freq_f64(rope, head_dim, position):
    """Scaled inv_freq in float64 (doc step 3, scaling variants), before the f32 store."""
    theta = float(rope["theta"])
    inv = _base_inv_freq(theta, head_dim)
    sc = _scaling(rope)
    if sc is None:
        return inv
    kind = sc["kind"]
    if kind == "linear":
        return inv / sc["factor"]
    if kind == "llama3":
        factor, low, high = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"]
        orig = sc["original_max_position"]
        wavelen = 2 * math.pi / inv
        s = (orig / wavelen - low) / (high - low)
        smooth = (1 - s) * inv / factor + s * inv
        out = np.where(wavelen > orig / low, inv / factor, smooth)
        return np.where(wavelen < orig / high, inv, out)
    if kind == "yarn":
        factor, orig = sc["factor"], sc["original_max_position"]

        def cd(n):
            return head_dim * math.log(orig / (2 * math.pi * n)) / (2 * math.log(theta))

        lo = max(math.floor(cd(sc["beta_fast"])), 0)
        hi = min(math.ceil(cd(sc["beta_slow"])), head_dim - 1)
        denom = (hi - lo) if hi != lo else 0.001  # the doc's (and HF's) hi == lo guard
        ramp = np.clip((np.arange(head_dim // 2) - lo) / denom, 0.0, 1.0)
        return (inv / factor) * ramp + inv * (1 - ramp)
    if kind == "longrope":
        use_long = position is not None and position >= sc["original_max_position"]
        factors = _f64(sc["long_factor"] if use_long else sc["short_factor"])
        if factors.shape != inv.shape:
            raise ValueError("longrope factors must have D/2 entries")
        return inv / factors
    raise ValueError(f"unknown rope scaling kind {kind!r}")


def rope_inv_freq(rope, head_dim, position=None):
    """Step 3: ``inv_freq[D/2]`` with scaling applied, computed in f64 and stored as float32.

    Only LongRoPE depends on ``position`` (short factors below ``original_max_position``, long
    factors from there on; ``None`` means the short factors). Other variants ignore it.
    """
    return _inv_freq_f64(rope, head_dim, position).astype(np.float32)


def rope_mscale(rope, head_dim, position=None):
    """Step 3: the factor multiplying cos and sin (YaRN and LongRoPE; 1 otherwise).

    YaRN: ``0.1 ln(factor) + 1`` (1 if factor <= 1). LongRoPE (Hugging Face form, the doc's
    **Project** choice): ``sqrt(1 + ln(max/orig) / ln(orig))`` (1 if max <= orig), for all positions.
    """
    sc = _scaling(rope)
    if sc is None:
        return 1.0
    if sc["kind"] == "yarn":
        f = sc["factor"]
        return 0.1 * math.log(f) + 1.0 if f > 1 else 1.0
    if sc["kind"] == "longrope":
        ratio = sc["max_position"] / sc["original_max_position"]
        if ratio <= 1:
            return 1.0
        return math.sqrt(1 + math.log(ratio) / math.log(sc["original_max_position"]))
    return 1.0


def rope_table(rope, head_dim, num_positions):
    """Step 3 table form ("freqs_cis") with the mscale folded in, float64 ``[num_positions, D]``.

    ``t[p, 2i] = m cos(p inv_freq[i])``, ``t[p, 2i+1] = m sin(p inv_freq[i])``, inv_freq as stored (f32).
    """
    pos = np.arange(num_positions, dtype=np.float64)
    inv = np.empty((num_positions, head_dim // 2), dtype=np.float64)
    sc = _scaling(rope)
    if sc is not None and sc["kind"] == "longrope":
        short = pos < sc["original_max_position"]
        inv[short] = rope_inv_freq(rope, head_dim, 0)
        inv[~short] = rope_inv_freq(rope, head_dim, sc["original_max_position"])
    else:
        inv[:] = rope_inv_freq(rope, head_dim)
    angle = pos[:, None] * inv
    m = rope_mscale(rope, head_dim)
    table = np.empty((num_positions, head_dim), dtype=np.float64)
    table[:, 0::2] = m * np.cos(angle)
    table[:, 1::2] = m * np.sin(angle)
    return table


def positions(row_offsets, cache_lengths):
    """Step 3: ``pos = cache_lengths[b] + (r - off[b])`` for every row r, int64 ``[T]``."""
    off = np.asarray(row_offsets, dtype=np.int64)
    cache = np.asarray(cache_lengths, dtype=np.int64)
    seq_lens = np.diff(off)
    if off[0] != 0 or np.any(seq_lens < 0) or len(cache) != len(seq_lens):
        raise ValueError("row_offsets must start at 0, be non-decreasing and have B+1 entries")
    owner = np.repeat(np.arange(len(seq_lens)), seq_lens)
    return cache[owner] + (np.arange(off[-1], dtype=np.int64) - off[owner])


def _rotate(x, cos, sin, interleaved):
    """Rotate the (xa, xb) pairs of the last dim; cos/sin broadcast against ``x[..., :D/2]``."""
    x = _f64(x)
    d = x.shape[-1]
    if interleaved:
        xa, xb = x[..., 0::2], x[..., 1::2]
    else:
        xa, xb = x[..., : d // 2], x[..., d // 2 :]
    ya = xa * cos - xb * sin
    yb = xa * sin + xb * cos
    out = np.empty_like(x)
    if interleaved:
        out[..., 0::2], out[..., 1::2] = ya, yb
    else:
        out[..., : d // 2], out[..., d // 2 :] = ya, yb
    return out


def apply_rope(x, row_offsets, cache_lengths, rope):
    """Step 3: rotate ``x [T, Hx, D]`` at each row's position, pairing by ``rope["interleaved"]``."""
    x = _f64(x)
    pos = positions(row_offsets, cache_lengths)
    if pos.size == 0:
        return x.copy()
    table = rope_table(rope, x.shape[-1], int(pos.max()) + 1)[pos]
    cos = table[:, None, 0::2]  # [T, 1, D/2]: same angle for every head
    sin = table[:, None, 1::2]
    return _rotate(x, cos, sin, bool(rope["interleaved"]))


# ---------------------------------------------------------------------------------------------
# Steps 1, 2 and 6: projections and norms


def linear(x, w, bias=None):
    """``x [T, K] @ w[N, K]^T (+ bias[N])`` (PyTorch nn.Linear layout), float64.

    ``w`` may be a quantised weight (``GPTQWeight``, ``Float8Weight``, ``GGUFWeight``): its own
    product.
    """
    y = w.apply(x) if isinstance(w, QuantizedWeight) else _f64(x) @ _f64(w).T
    if bias is not None:
        y = y + _f64(bias)
    return y


def rms_norm(x, gamma, eps=1e-6):
    """Step 2: ``x * rsqrt(mean(x^2) + eps) * gamma`` over the last dim."""
    x = _f64(x)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * _f64(gamma)


def _stack(parts):
    return np.concatenate([_f64(p) for p in parts], axis=0)


def qkv_projection(x, weights, num_heads, num_kv_heads, head_dim, biases=None, clip=None):
    """Step 1: fused QKV projection, split into ``q [T,H,D]``, ``k [T,Hkv,D]``, ``v [T,Hkv,D]``.

    ``weights``: stacked ``[(H+2Hkv)*D, hidden]`` or ``(wq, wk, wv)``; ``biases`` likewise or None.
    ``clip`` clamps the weights (not the activations) to ``[-clip, clip]``.
    """
    nq, nkv = num_heads * head_dim, num_kv_heads * head_dim
    b = None
    if biases is not None:
        b = _stack(biases) if isinstance(biases, (tuple, list)) else _f64(biases)
    parts = weights if isinstance(weights, (tuple, list)) else [weights]
    if any(isinstance(w, QuantizedWeight) for w in parts):
        # Each quantised weight has its own product (own scales, perm, input scale).
        if clip is not None:
            raise ValueError("clip with quantised weights")
        qkv = np.concatenate([linear(x, w) for w in parts], axis=1)
        if b is not None:
            qkv = qkv + b
    else:
        w = _stack(parts)
        if w.shape[0] != nq + 2 * nkv:
            raise ValueError(f"stacked qkv weight has {w.shape[0]} rows, expected {nq + 2 * nkv}")
        if clip is not None:
            w = np.clip(w, -clip, clip)
        qkv = linear(x, w, b)
    if qkv.shape[1] != nq + 2 * nkv:
        raise ValueError(f"qkv weights have {qkv.shape[1]} rows, expected {nq + 2 * nkv}")
    t = qkv.shape[0]
    q = qkv[:, :nq].reshape(t, num_heads, head_dim)
    k = qkv[:, nq : nq + nkv].reshape(t, num_kv_heads, head_dim)
    v = qkv[:, nq + nkv :].reshape(t, num_kv_heads, head_dim)
    return q, k, v


# ---------------------------------------------------------------------------------------------
# Quantised weights (/work/shared/reference/quantization.md): exact decoding, then the float64
# product. A kernel accumulating the decoded values in f32 differs from it by f32 rounding only.


class QuantizedWeight:
    """A projection weight ``W [N, K]`` in an encoding; ``apply(x)`` is ``x @ W^T`` in float64."""

    def apply(self, x):
        raise NotImplementedError


def unpack_int4(qweight):
    """``q[k, n] = (qweight[k // 8, n] >> (4 * (k % 8))) & 0xF`` of int32 words ``[K/8, N]``."""
    words = np.asarray(qweight).astype(np.int64) & 0xFFFFFFFF
    shifts = 4 * np.arange(8, dtype=np.int64)
    nibbles = (words[:, None, :] >> shifts[None, :, None]) & 0xF  # [K/8, 8, N]
    return nibbles.reshape(-1, words.shape[1])


def pack_int4(q):
    """Inverse of ``unpack_int4``: values ``q [K, N]`` in [0, 16) -> int32 words ``[K/8, N]``."""
    q = np.asarray(q, dtype=np.int64).reshape(-1, 8, np.shape(q)[1])
    words = np.sum(q << (4 * np.arange(8, dtype=np.int64))[None, :, None], axis=1)
    return words.astype(np.uint32).view(np.int32)


def gptq_perm_from_g_idx(g_idx):
    """MAX's desc_act permutation of a ``g_idx`` checkpoint: ``k`` stably sorted by group."""
    return np.argsort(np.asarray(g_idx), kind="stable").astype(np.int32)


def gptq_from_checkpoint(qweight, scales, qzeros, group_size, g_idx=None):
    """MAX's form (``GPTQWeight``) of an AutoGPTQ / Hugging Face checkpoint.

    ``qzeros`` int32 ``[K/g, N/8]`` (packed along N, low nibble first) must hold the symmetric
    zero point, stored as 7 (AutoGPTQ stores zero - 1): MAX decodes with 8 and never reads it.
    With ``g_idx`` (desc_act), ``perm`` is the stable sort of ``k`` by group and the rows of
    ``qweight`` are repacked in that order, so each group's rows are contiguous.
    """
    qzeros = np.asarray(qzeros)
    zeros = unpack_int4(qzeros.T).T  # nibbles along N: [K/g, N]
    if not np.all(zeros == 7):
        raise ValueError("qzeros is not the symmetric zero point (7 = 8 - 1): asymmetric GPTQ")
    if g_idx is None:
        return GPTQWeight(qweight, scales, group_size)
    perm = gptq_perm_from_g_idx(g_idx)
    k = np.asarray(qweight).shape[0] * 8
    if not np.array_equal(np.asarray(g_idx)[perm], np.arange(k) // group_size):
        raise ValueError("g_idx must put group_size rows in each group")
    return GPTQWeight(pack_int4(unpack_int4(qweight)[perm]), scales, group_size, perm)


GPTQ_BLOCK_COLUMNS = 32


def _swap_outer(array):
    """``array`` 3-D with its first two axes swapped: numpy's ``transpose`` or torch's
    ``permute``, a view either way."""
    return array.permute(1, 0, 2) if hasattr(array, "permute") else array.transpose(1, 0, 2)


def gptq_column_blocks(part):
    """The one-time repack of ``#attn.gptq<..., layout = column_blocks>``, for ``qweight`` and
    ``scales`` alike: ``[R, N]`` (R = K/8 words, K/g scales) -> ``[N/32, R, 32]``, element
    ``[r, n]`` at ``[n // 32, r, n % 32]``, so each 32 output columns' words (scales) are
    contiguous. A view: make it contiguous (numpy's ``ascontiguousarray``, or torch's
    ``.contiguous()`` for a tensor, on the GPU too) before passing it."""
    rows, n = part.shape
    if n % GPTQ_BLOCK_COLUMNS:
        raise ValueError(f"column blocks need N ({n}) a multiple of {GPTQ_BLOCK_COLUMNS}")
    return _swap_outer(part.reshape(rows, n // GPTQ_BLOCK_COLUMNS, GPTQ_BLOCK_COLUMNS))


def gptq_checkpoint_order(blocks):
    """Inverse of ``gptq_column_blocks``: ``[N/32, R, 32]`` -> ``[R, N]``."""
    nb, rows, width = blocks.shape
    if width != GPTQ_BLOCK_COLUMNS:
        raise ValueError(f"column blocks are {GPTQ_BLOCK_COLUMNS} wide, got {width}")
    return _swap_outer(blocks).reshape(rows, nb * width)


class GPTQWeight(QuantizedWeight):
    """GPTQ int4, symmetric: ``qweight`` int32 ``[K/8, N]``, ``scales`` f16/bf16 ``[K/g, N]``
    (``layout="column_blocks"``: ``[N/32, K/8, 32]`` and ``[N/32, K/g, 32]``,
    ``gptq_column_blocks``), optional ``perm`` int32 ``[K]`` (desc_act: stored row ``r``
    multiplies ``x[perm[r]]``)."""

    def __init__(self, qweight, scales, group_size, perm=None, layout="checkpoint"):
        if layout == "column_blocks":
            qweight = gptq_checkpoint_order(np.asarray(qweight))
            scales = gptq_checkpoint_order(np.asarray(scales))
        elif layout != "checkpoint":
            raise ValueError(f"unknown GPTQ layout {layout!r}")
        self.qweight = np.asarray(qweight, dtype=np.int32)
        self.scales = np.asarray(scales)
        self.group_size = group_size
        self.perm = None if perm is None else np.asarray(perm, dtype=np.int64)
        k = self.qweight.shape[0] * 8
        if k % group_size or self.scales.shape != (k // group_size, self.qweight.shape[1]):
            raise ValueError("scales must be [K / group_size, N] with K a multiple of the group")
        if self.perm is not None and sorted(self.perm.tolist()) != list(range(k)):
            raise ValueError("perm must be a permutation of range(K)")

    def decode(self):
        """``W[n, r] = (q[r, n] - 8) * scales[r // g, n]`` in stored row order, float64 ``[N, K]``."""
        q = unpack_int4(self.qweight) - 8
        s = np.repeat(_f64(self.scales), self.group_size, axis=0)
        return (q * s).T

    def apply(self, x):
        x = _f64(x)
        if self.perm is not None:
            x = x[:, self.perm]
        return x @ self.decode().T


FP8_E4M3_MAX = 448.0
FLOAT8_BLOCK = 128


def decode_fp8_e4m3(bytes_):
    """E4M3FN bytes -> float64: bias 7, subnormals ``m/8 * 2^-6``, ``0x7F``/``0xFF`` NaN."""
    b = np.asarray(bytes_, dtype=np.uint8).astype(np.int64)
    sign = np.where(b & 0x80, -1.0, 1.0)
    e, m = (b >> 3) & 0xF, b & 0x7
    value = np.where(e == 0, m / 8.0 * 2.0**-6, (1 + m / 8.0) * 2.0 ** (e - 7))
    return np.where((e == 15) & (m == 7), np.nan, sign * value)


def round_to_fp8_e4m3(x):
    """Round to the nearest E4M3 value (ties to even) after clamping to ``[-448, 448]``."""
    x = np.clip(_f64(x), -FP8_E4M3_MAX, FP8_E4M3_MAX)
    _, e = np.frexp(x)  # |x| = f * 2^e, f in [0.5, 1): floor(log2 |x|) = e - 1
    exponent = np.maximum(e - 1, -6)
    quantum = 2.0 ** (exponent - 3)  # 3 mantissa bits; the subnormal quantum is 2^-9
    return np.rint(x / quantum) * quantum


def quantize_fp8_input(x, input_scale=None, upper_bound=None):
    """``(x8, s_x)``: the activations on the E4M3 grid and their per-token f32 scale ``[T]``.

    Static: ``s_x = input_scale``. Dynamic: ``s_x[t] = min(max_k |x[t, k]|, upper_bound) / 448``
    in f32. ``x / s_x`` is divided in f32 (as a kernel does) before rounding to E4M3; a row of
    zeros has ``s_x = 0`` and ``x8 = 0``.
    """
    x32 = np.asarray(x, dtype=np.float32)
    if input_scale is not None:
        s = np.full(x32.shape[0], np.float32(np.asarray(input_scale).reshape(-1)[0]))
    else:
        amax = np.max(np.abs(x32), axis=1)
        if upper_bound is not None:
            amax = np.minimum(amax, np.float32(upper_bound))
        s = (amax / np.float32(FP8_E4M3_MAX)).astype(np.float32)
    safe = np.where(s > 0, s, np.float32(1))
    x8 = round_to_fp8_e4m3((x32 / safe[:, None]).astype(np.float32))
    return np.where(s[:, None] > 0, x8, 0.0), s.astype(np.float64)


class Float8Weight(QuantizedWeight):
    """float8 E4M3: ``weight`` bytes ``[N, K]`` (uint8), f32 ``weight_scale`` by ``granularity``
    (``"tensor"`` ``[1]``, ``"row"`` ``[N]``, ``"block"`` ``[ceil(N/128), K/128]``), and a static
    ``input_scale`` ``[1]`` or a dynamic one (``upper_bound`` optional)."""

    def __init__(self, weight, weight_scale, granularity, input_scale=None, upper_bound=None):
        self.weight = np.asarray(weight, dtype=np.uint8)
        self.weight_scale = np.asarray(weight_scale, dtype=np.float32)
        self.granularity = granularity
        self.input_scale = input_scale
        self.upper_bound = upper_bound

    def scale_matrix(self):
        """``s_w`` broadcast to ``[N, K]``."""
        n, k = self.weight.shape
        s = _f64(self.weight_scale)
        if self.granularity == "tensor":
            return np.full((n, k), s.reshape(-1)[0])
        if self.granularity == "row":
            return np.repeat(s.reshape(n, 1), k, axis=1)
        if self.granularity == "block":
            b = FLOAT8_BLOCK
            return np.repeat(np.repeat(s, b, axis=0)[:n], b, axis=1)[:, :k]
        raise ValueError(f"unknown granularity {self.granularity!r}")

    def decode(self):
        """``W[n, k] = w8[n, k] * s_w[...]``, float64 ``[N, K]``."""
        return decode_fp8_e4m3(self.weight) * self.scale_matrix()

    def apply(self, x):
        """``y[t, n] = (sum_k x8[t, k] w8[n, k] s_w[...]) * s_x[t]``."""
        x8, s_x = quantize_fp8_input(x, self.input_scale, self.upper_bound)
        return (x8 @ self.decode().T) * s_x[:, None]


# GGUF blocks: each row of W is K / elements consecutive blocks (type: (elements, bytes)).
GGUF_BLOCKS = {"q4_0": (32, 18), "q8_0": (32, 34), "q4_k": (256, 144), "q6_k": (256, 210)}


def _f16_at(blocks, offset):
    """The f16 at byte ``offset`` of each block ``[..., bytes]`` as float32 ``[..., 1]``."""
    pair = np.ascontiguousarray(blocks[..., offset : offset + 2])
    return pair.view(np.float16).astype(np.float32)


def _q4_k_scale_min(scales):
    """The 6-bit ``(sc, m)`` of the 8 sub-blocks, ``[..., 8]`` each, from ``scales [..., 12]``."""
    s = scales.astype(np.int32)
    sc = np.concatenate([s[..., 0:4] & 63, (s[..., 8:12] & 0xF) | ((s[..., 0:4] >> 6) << 4)], -1)
    m = np.concatenate([s[..., 4:8] & 63, (s[..., 8:12] >> 4) | ((s[..., 4:8] >> 6) << 4)], -1)
    return sc.astype(np.float32), m.astype(np.float32)


def _q4_0_quants(b):
    """The quants minus 8 ``[..., 32]`` (int32) of Q4_0 blocks ``b``."""
    qs = b[..., 2:18].astype(np.int32)
    return np.concatenate([qs & 0xF, qs >> 4], -1) - 8


def _q8_0_quants(b):
    return b[..., 2:34].view(np.int8).astype(np.int32)


def _decode_q4_0(b):
    return _q4_0_quants(b).astype(np.float32) * _f16_at(b, 0)


def _decode_q8_0(b):
    return _q8_0_quants(b).astype(np.float32) * _f16_at(b, 0)


def _q4_k_quants(b):
    """The 4-bit quants ``[..., 8 sub-blocks, 32]`` (int32) of Q4_K blocks ``b``."""
    qs = b[..., 16:144].astype(np.int32).reshape(b.shape[:-1] + (4, 32))
    # Sub-block 2c: low nibbles of chunk c; 2c + 1: its high nibbles.
    return np.stack([qs & 0xF, qs >> 4], -2).reshape(b.shape[:-1] + (8, 32))


def _decode_q4_k(b):
    d, dmin = _f16_at(b, 0), _f16_at(b, 2)
    sc, m = _q4_k_scale_min(b[..., 4:16])
    q = _q4_k_quants(b).astype(np.float32)
    factor, offset = (d * sc)[..., None], (dmin * m)[..., None]
    return (factor * q - offset).reshape(b.shape[:-1] + (256,))


def _q6_k_quants(b):
    """The quants minus 32 ``[..., 2 halves, 4 quarters, 32]`` (int32) and the int8 scales
    ``[..., 2 halves, 4 quarters, 2]`` (scale ``2 quarter + l // 16`` of the half) of Q6_K
    blocks ``b``."""
    ql = b[..., 0:128].astype(np.int32).reshape(b.shape[:-1] + (2, 64))
    qh = b[..., 128:192].astype(np.int32).reshape(b.shape[:-1] + (2, 32))
    lo, hi = ql[..., :32], ql[..., 32:]
    # Quarters of a half: ql[l] low / ql[l + 32] low / ql[l] high / ql[l + 32] high nibbles with
    # qh bits 0-1 / 2-3 / 4-5 / 6-7 as the top two bits.
    q = np.stack(
        [
            (lo & 0xF) | ((qh & 3) << 4),
            (hi & 0xF) | (((qh >> 2) & 3) << 4),
            (lo >> 4) | (((qh >> 4) & 3) << 4),
            (hi >> 4) | (((qh >> 6) & 3) << 4),
        ],
        -2,
    ) - 32
    scales = b[..., 192:208].view(np.int8).astype(np.int32).reshape(b.shape[:-1] + (2, 4, 2))
    return q, scales


def _decode_q6_k(b):
    q, sc = _q6_k_quants(b)
    d = _f16_at(b, 208)[..., None, None]
    factor = np.repeat(d * sc.astype(np.float32), 16, axis=-1)  # (d * scales[..]) first, as ggml
    return (factor * q.astype(np.float32)).reshape(b.shape[:-1] + (256,))


_GGUF_DECODERS = {
    "q4_0": _decode_q4_0, "q8_0": _decode_q8_0, "q4_k": _decode_q4_k, "q6_k": _decode_q6_k}


# GGUF types whose products with few rows quantise the activations (the int8 kernel), to Q8_K or
# to Q8_0 by type, and the compiler's default row count for it (attn-compile --int8-max-rows).
GGUF_Q8_K_TYPES = ("q4_k", "q6_k")
GGUF_Q8_0_TYPES = ("q4_0", "q8_0")
GGUF_Q8_K_MAX_ROWS = 64
# Q4_0 / Q8_0 take the int8 kernel up to at most this many rows (the packed f32 GEMM beyond).
GGUF_Q8_0_MAX_ROWS = 16
Q8_K_BLOCK = 256
Q8_0_BLOCK = 32


def _quantize_blocks(x, block, name):
    """``x [T, K]`` float32 as ``[T, K / block, block]``, its per-block ``max|x|`` and ``127 /
    max|x|`` (0 for an all-zero block)."""
    x = np.asarray(x, dtype=np.float32)
    t, k = x.shape
    if k % block:
        raise ValueError(f"{name} rows of {k} elements: not a multiple of {block}")
    blocks = x.reshape(t, k // block, block)
    amax = np.max(np.abs(blocks), axis=-1)
    with np.errstate(divide="ignore"):
        iscale = np.where(amax > 0, np.float32(127) / amax, np.float32(0))
    return blocks, amax, iscale


def quantize_q8_k(x):
    """llama.cpp's ``quantize_row_q8_K`` of each row of ``x [T, K]`` (K a multiple of 256), in
    f32 arithmetic: per block of 256, ``iscale = 127 / max|x|``, ``q = round-half-even(iscale
    x)`` (in [-127, 127]) and ``d = 1 / iscale`` (an all-zero block: ``d = 0``, ``q = 0``).
    llama.cpp divides by the signed maximum (``-127 / max``), which negates ``q`` and ``d``
    together: every ``d q`` is the same. Returns ``(q int8 [T, K], d float32 [T, K / 256])``."""
    blocks, amax, iscale = _quantize_blocks(x, Q8_K_BLOCK, "Q8_K")
    with np.errstate(divide="ignore"):
        d = np.where(amax > 0, np.float32(1) / iscale, np.float32(0))
    q = np.rint(blocks * iscale[..., None]).astype(np.int8)
    return q.reshape(q.shape[0], -1), d.astype(np.float32)


def quantize_q8_0(x):
    """llama.cpp's x86 ``quantize_row_q8_0`` (AVX2) of each row of ``x [T, K]`` (K a multiple of
    32), in f32 arithmetic: per block of 32, ``q = round-half-even(x 127 / max|x|)`` (in [-127,
    127]) and ``d = f16(max|x| / 127)`` (round to nearest even; an all-zero block: ``d = 0``,
    ``q = 0``). Returns ``(q int8 [T, K], d float32 [T, K / 32])``, d the f32 value of the f16."""
    blocks, amax, iscale = _quantize_blocks(x, Q8_0_BLOCK, "Q8_0")
    d = (amax / np.float32(127)).astype(np.float16).astype(np.float32)
    q = np.rint(blocks * iscale[..., None]).astype(np.int8)
    return q.reshape(q.shape[0], -1), d


def _q8_k_sums(gguf_type, b, q8, magnitudes=False):
    """The exact integer sums of the int8 kernels per super-block, ``(I, M)`` int64 ``[T, N,
    nb]``, and their f32 factors ``(d, dmin)`` ``[N, nb]``: ``x W^T = sum_b d8_b (d_b I_b -
    dmin_b M_b)``. ``b``: blocks ``[N, nb, bytes]``; ``q8``: the Q8_K quants ``[T, nb, 256]``.
    Q4_K: I sums ``sc_j q q8`` over the sub-blocks j, M sums ``m_j`` times the activations of
    sub-block j; Q6_K: I sums ``sc_j (q - 32) q8`` (M = 0). ``magnitudes``: ``q8`` is already
    ``|q8|``; the products and the sub-block sums are taken in magnitude too."""
    q8 = q8.astype(np.int64)
    n, nb = b.shape[:2]
    size = np.abs if magnitudes else (lambda v: v)
    if gguf_type == "q4_k":
        sc, m = (v.astype(np.int64) for v in _q4_k_scale_min(b[..., 4:16]))
        scaled = _q4_k_quants(b) * sc[..., None]
        sub_sums = size(q8.reshape(q8.shape[0], nb, 8, 32).sum(-1))
        mins = np.einsum("tbj,nbj->tnb", sub_sums, m)
        factors = _f16_at(b, 0)[..., 0], _f16_at(b, 2)[..., 0]
    else:
        q, sc = _q6_k_quants(b)
        scaled = size(q.astype(np.int64) * np.repeat(sc, 16, axis=-1))
        mins = np.zeros((q8.shape[0], n, nb), np.int64)
        factors = _f16_at(b, 208)[..., 0], np.zeros((n, nb), np.float32)
    sums = np.einsum("tbe,nbe->tnb", q8, scaled.reshape(n, nb, 256).astype(np.int64))
    return sums, mins, *factors


def _q8_0_sums(gguf_type, b, q8, magnitudes=False):
    """The exact integer dot products ``I [T, N, nb]`` (int64) of each Q4_0 / Q8_0 block of ``b``
    ``[N, nb, bytes]`` with the Q8_0 quants ``q8 [T, nb, 32]``, and the blocks' f16 ``d`` as
    float32 ``[N, nb]``. ``magnitudes``: the sums of the products' magnitudes."""
    q = (_q4_0_quants if gguf_type == "q4_0" else _q8_0_quants)(b).astype(np.int64)
    if magnitudes:
        q = np.abs(q)
    return np.einsum("tbe,nbe->tnb", q8.astype(np.int64), q), _f16_at(b, 0)[..., 0]


class GGUFWeight(QuantizedWeight):
    """GGUF blocks: ``blocks`` uint8 ``[N, K / elements * bytes]`` of ``gguf_type`` (``"q4_0"``,
    ``"q8_0"``, ``"q4_k"``, ``"q6_k"``); decoded in f32 as ggml's ``dequantize_row_*``.

    Two modes of the product, as the CPU kernels compute it: weights decoded to f32 times the
    f32 activations, or (at most ``q8_row_limit`` rows: the int8 kernel, ``attn-compile
    --int8-max-rows``, 0 for never; Q4_0 / Q8_0 at most 16) the activations quantised (Q4_K,
    Q6_K: to Q8_K; Q4_0, Q8_0: to Q8_0) and exact integer dot products per block times the f32
    factors (``apply_q8``)."""

    def __init__(self, gguf_type, blocks, q8_max_rows=GGUF_Q8_K_MAX_ROWS):
        if gguf_type not in GGUF_BLOCKS:
            raise ValueError(f"unknown GGUF type {gguf_type!r}")
        self.gguf_type = gguf_type
        self.q8_max_rows = q8_max_rows
        self.blocks = np.asarray(blocks).view(np.uint8)
        elements, nbytes = GGUF_BLOCKS[gguf_type]
        if self.blocks.ndim != 2 or self.blocks.shape[1] % nbytes:
            raise ValueError(f"{gguf_type} blocks must be [N, K / {elements} * {nbytes}] bytes")
        self.shape = (self.blocks.shape[0], self.blocks.shape[1] // nbytes * elements)

    def decode(self):
        """``W [N, K]`` float32 (the exact f32 values of the decode)."""
        elements, nbytes = GGUF_BLOCKS[self.gguf_type]
        n = self.blocks.shape[0]
        b = self.blocks.reshape(n, -1, nbytes)
        return _GGUF_DECODERS[self.gguf_type](b).reshape(self.shape)

    def uses_q8(self, rows):
        """Whether a product with ``rows`` rows quantises them (the int8 kernel)."""
        return rows <= self.q8_row_limit

    @property
    def q8_row_limit(self):
        """The most rows of the int8 kernel: ``q8_max_rows``, for Q4_0 / Q8_0 at most
        ``GGUF_Q8_0_MAX_ROWS``."""
        if self.gguf_type in GGUF_Q8_0_TYPES:
            return min(self.q8_max_rows, GGUF_Q8_0_MAX_ROWS)
        return self.q8_max_rows

    @property
    def q8_block(self):
        """Elements per block of the quantised activations (Q8_K 256, Q8_0 32)."""
        return Q8_K_BLOCK if self.gguf_type in GGUF_Q8_K_TYPES else Q8_0_BLOCK

    def quantize_activations(self, x):
        """``(q, d)`` of ``x`` as the int8 kernel rounds it: ``quantize_q8_k`` or
        ``quantize_q8_0``."""
        return (quantize_q8_k if self.gguf_type in GGUF_Q8_K_TYPES else quantize_q8_0)(x)

    def apply(self, x):
        if self.uses_q8(np.shape(x)[0]):
            return self.apply_q8(x)
        return _f64(x) @ _f64(self.decode()).T

    def _q8_terms(self, x, magnitudes=False):
        """The f64 factors (broadcast to ``[T, N, nb]``) and the terms ``[T, N, nb]`` they
        multiply in ``apply_q8`` (with ``magnitudes``, in ``q8_abs_terms``)."""
        q8, d8 = self.quantize_activations(x)
        n, nb = self.shape[0], self.shape[1] // self.q8_block
        b = self.blocks.reshape(n, nb, -1)
        q8 = q8.reshape(q8.shape[0], nb, self.q8_block)
        size = np.abs if magnitudes else (lambda v: v)
        if self.gguf_type in GGUF_Q8_0_TYPES:
            sums, d = _q8_0_sums(self.gguf_type, b, size(q8.astype(np.int64)), magnitudes)
            # The kernel's factor: the f32 product of the two f16 scales.
            factor = (d[None] * d8[:, None, :]).astype(np.float32)
            return size(_f64(factor)), sums
        sums, mins, d, dmin = _q8_k_sums(self.gguf_type, b, size(q8.astype(np.int64)),
                                         magnitudes=magnitudes)
        sign = 1 if magnitudes else -1
        terms = size(_f64(d))[None] * sums + sign * size(_f64(dmin))[None] * mins
        return size(_f64(d8))[:, None, :], terms

    def apply_q8(self, x):
        """``x @ W^T`` of the int8 kernel, float64: ``x`` rounded (``quantize_activations``),
        then Q4_K / Q6_K ``sum_b d8_b (d_b I_b - dmin_b M_b)`` with the exact integer sums I, M;
        Q4_0 / Q8_0 ``sum_b f32(d_b d8_b) I_b`` with I_b the exact block dot product."""
        factors, sums = self._q8_terms(x)
        return np.sum(factors * sums, axis=-1)

    def q8_abs_terms(self, x):
        """``apply_q8`` over the absolute values of every factor and integer product, ``[T,
        N]`` (the scale of the kernel's f32 rounding errors)."""
        factors, sums = self._q8_terms(x, magnitudes=True)
        return np.sum(factors * sums, axis=-1)

    def q8_bound(self, x):
        """The kernel's distance from ``apply_q8``, per element: the quantisation and the integer
        sums are exact, so only f32 roundings differ: of the lane sums converted to f32 (exact
        below 2^24), of one (Q4_0, Q8_0) or two (the K-quants: ``d d8`` and ``dmin d8``) fused
        multiply-adds per block into each of 8 lanes and of the factors, and of the final sum of
        the lanes: ``(fmas K / block + 8) 2^-24 q8_abs_terms``."""
        fmas = 2 if self.gguf_type in GGUF_Q8_K_TYPES else 1
        return (fmas * self.shape[1] / self.q8_block + 8) * 2.0**-24 * self.q8_abs_terms(x)


def random_gguf_weight(rng, gguf_type, n, k, spread=1.0):
    """A ``GGUFWeight [n, k]`` of random bytes whose f16 ``d`` (and ``dmin``) make the largest
    decoded magnitudes about ``spread``."""
    elements, nbytes = GGUF_BLOCKS[gguf_type]
    blocks = rng.integers(0, 256, size=(n, k // elements, nbytes), dtype=np.uint8)
    # Byte offset of each f16 factor and the largest quant (times scale) it multiplies.
    factors = {"q4_0": {0: 8}, "q8_0": {0: 128}, "q4_k": {0: 63 * 15, 2: 63},
               "q6_k": {208: 128 * 32}}[gguf_type]
    for offset, largest in factors.items():
        d = rng.uniform(0.5, 1.5, size=(n, k // elements)) * spread / largest
        blocks[..., offset : offset + 2] = d.astype(np.float16)[..., None].view(np.uint8)
    return GGUFWeight(gguf_type, blocks.reshape(n, -1))


# ---------------------------------------------------------------------------------------------
# Step 4: paged KV cache write


def _page_slots(row_offsets, cache_lengths, lookup_table, num_pages, page_size):
    """(page_id, slot) of every new row; refuses unused (== P) or out-of-range page ids."""
    pos = positions(row_offsets, cache_lengths)
    owner = np.repeat(np.arange(len(cache_lengths)), np.diff(np.asarray(row_offsets)))
    table = np.asarray(lookup_table, dtype=np.int64)
    page_ids = table[owner, pos // page_size]
    if np.any((page_ids < 0) | (page_ids >= num_pages)):
        raise ValueError("lookup_table has no page for some written position")
    return page_ids, pos % page_size


def kv_cache_store(kv_blocks, k, v, row_offsets, cache_lengths, lookup_table, layer):
    """Step 4: a copy of ``kv_blocks [P,2,L,page,Hkv,D]`` with each new row's k and v written.

    The copy keeps ``kv_blocks``'s dtype, so written values are rounded to it, as on the device.
    ``cache_lengths`` is not advanced (the caller owns it).
    """
    out = np.array(kv_blocks, copy=True)
    num_pages, page_size = out.shape[0], out.shape[3]
    page_ids, slots = _page_slots(row_offsets, cache_lengths, lookup_table, num_pages, page_size)
    out[page_ids, 0, layer, slots] = np.asarray(k)
    out[page_ids, 1, layer, slots] = np.asarray(v)
    return out


# ---------------------------------------------------------------------------------------------
# Step 5: attention


def _visible(q_pos, k_pos, mask):
    """Boolean ``[n_q, n_k]``: which keys each query row may see."""
    kind = mask.get("kind", "causal")
    qp, kp = q_pos[:, None], k_pos[None, :]
    if kind == "none":
        return np.ones((len(q_pos), len(k_pos)), dtype=bool)
    if kind == "causal":
        return kp <= qp
    if kind == "sliding_window":
        return (kp <= qp) & (qp - kp < mask["window"])
    raise ValueError(f"unknown mask kind {kind!r}")


def _attend(q, k, v, q_pos, mask, scale):
    """Masked softmax attention of one sequence: ``q [n,H,D]``, ``k, v [S,Hkv,D]`` -> ``[n,H,D]``.

    Masked keys are excluded exactly; a row with no visible key gives zeros (doc's **Project**).
    """
    n, h, d = q.shape
    hkv = k.shape[1]
    if h % hkv:
        raise ValueError("H must be a multiple of Hkv")
    group = h // hkv
    # GQA: query head hq reads kv head hq // group (contiguous groups).
    kh = np.repeat(_f64(k), group, axis=1)  # [S, H, D]
    vh = np.repeat(_f64(v), group, axis=1)
    s = scale * np.einsum("nhd,shd->hns", _f64(q), kh)  # [H, n, S]
    vis = _visible(q_pos, np.arange(k.shape[0]), mask)[None]  # [1, n, S]
    s = np.where(vis, s, -np.inf)
    row_max = np.max(s, axis=-1, keepdims=True, initial=-np.inf)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    p = np.where(vis, np.exp(s - row_max), 0.0)
    denom = p.sum(axis=-1, keepdims=True)
    o = np.einsum("hns,shd->nhd", p / np.where(denom > 0, denom, 1.0), vh)
    return o


def _default_scale(scale, head_dim):
    return 1.0 / math.sqrt(head_dim) if scale is None else float(scale)


def flash_attention(q, k, v, q_row_offsets, kv_row_offsets, mask=DEFAULT_MASK, scale=None):
    """Step 5 with explicit ragged K/V: ``q [T,H,D]``, ``k, v [S,Hkv,D]`` -> ``o [T,H,D]``.

    Query row i of sequence b sits at ``(kv_len_b - q_len_b) + i`` (bottom-right aligned), key j at j.
    """
    q, k, v = _f64(q), np.asarray(k), np.asarray(v)
    scale = _default_scale(scale, q.shape[-1])
    qo, ko = np.asarray(q_row_offsets), np.asarray(kv_row_offsets)
    out = np.zeros_like(q)
    for b in range(len(qo) - 1):
        q_len, kv_len = qo[b + 1] - qo[b], ko[b + 1] - ko[b]
        q_pos = (kv_len - q_len) + np.arange(q_len)
        out[qo[b] : qo[b + 1]] = _attend(
            q[qo[b] : qo[b + 1]], k[ko[b] : ko[b + 1]], v[ko[b] : ko[b + 1]], q_pos, mask, scale
        )
    return out


def gather_kv(kv_blocks, lookup_table, layer, b, length):
    """Keys and values ``[length, Hkv, D]`` of sequence b's first ``length`` positions in the cache."""
    page_size = kv_blocks.shape[3]
    j = np.arange(length)
    pages = np.asarray(lookup_table)[b, j // page_size]
    blocks = np.asarray(kv_blocks)
    return _f64(blocks[pages, 0, layer, j % page_size]), _f64(blocks[pages, 1, layer, j % page_size])


def flash_attention_paged(
    q, kv_blocks, cache_lengths, lookup_table, row_offsets, layer, mask=DEFAULT_MASK, scale=None
):
    """Step 5 over the paged cache: keys ``j in [0, cache_len + seq_len)`` read from the cache.

    Query row i of sequence b sits at ``cache_lengths[b] + i``. Returns float64 ``o [T,H,D]``.
    """
    q = _f64(q)
    scale = _default_scale(scale, q.shape[-1])
    off = np.asarray(row_offsets)
    out = np.zeros_like(q)
    for b in range(len(off) - 1):
        n, c = off[b + 1] - off[b], int(cache_lengths[b])
        if n == 0:
            continue
        k, v = gather_kv(kv_blocks, lookup_table, layer, b, c + n)
        out[off[b] : off[b + 1]] = _attend(q[off[b] : off[b + 1]], k, v, c + np.arange(n), mask, scale)
    return out


# ---------------------------------------------------------------------------------------------
# Steps 1-6 together


def attention_with_rope(
    x,
    row_offsets,
    kv_blocks,
    cache_lengths,
    lookup_table,
    *,
    num_heads,
    num_kv_heads,
    head_dim,
    layer,
    rope,
    weights,
    wo=None,
    biases=None,
    clip=None,
    q_norm=None,
    k_norm=None,
    rms_norm_eps=1e-6,
    mask=DEFAULT_MASK,
    scale=None,
):
    """One layer step, doc steps 1-6: returns ``(out [T, hidden], new_kv_blocks)``; without
    ``wo``, ``(o [T, H*D], new_kv_blocks)``: the input of o_proj.

    QK norm (if gammas are given) precedes RoPE; k is stored after RoPE; attention reads the
    updated cache. ``kv_blocks`` itself is not modified.
    """
    q, k, v = qkv_projection(x, weights, num_heads, num_kv_heads, head_dim, biases, clip)
    if q_norm is not None:
        q = rms_norm(q, q_norm, rms_norm_eps)
    if k_norm is not None:
        k = rms_norm(k, k_norm, rms_norm_eps)
    q = apply_rope(q, row_offsets, cache_lengths, rope)
    k = apply_rope(k, row_offsets, cache_lengths, rope)
    new_blocks = kv_cache_store(kv_blocks, k, v, row_offsets, cache_lengths, lookup_table, layer)
    o = flash_attention_paged(
        q, new_blocks, cache_lengths, lookup_table, row_offsets, layer, mask, scale
    )
    o = o.reshape(o.shape[0], num_heads * head_dim)
    return (o if wo is None else linear(o, wo)), new_blocks


# ---------------------------------------------------------------------------------------------
# Test helpers


def random_paged_cache(
    rng, num_pages, num_layers, page, kv_heads, head_dim, seq_lens_cached, seq_lens_new, dtype="f32"
):
    """Random paged cache for ``B = len(seq_lens_cached)`` sequences.

    Returns a dict with ``kv_blocks [P,2,L,page,Hkv,D]`` (random values, never zero, rounded to
    ``dtype``; "f16" gives a float16 array, "bf16" a float32 one), ``cache_lengths [B]``,
    ``lookup_table [B, max_pages]`` (distinct shuffled page ids, enough to hold cached + new tokens;
    unused entries hold P) and ``row_offsets [B+1]`` of the new tokens.
    """
    cached = np.asarray(seq_lens_cached, dtype=np.int64)
    new = np.asarray(seq_lens_new, dtype=np.int64)
    if cached.shape != new.shape:
        raise ValueError("seq_lens_cached and seq_lens_new must have the same length")
    pages_needed = -(-(cached + new) // page)  # ceil division
    if pages_needed.sum() > num_pages:
        raise ValueError(f"need {pages_needed.sum()} pages, have {num_pages}")
    max_pages = max(int(pages_needed.max(initial=0)), 1)
    lookup = np.full((len(cached), max_pages), num_pages, dtype=np.int64)
    ids = rng.permutation(num_pages)
    start = 0
    for b, n in enumerate(pages_needed):
        lookup[b, :n] = ids[start : start + n]
        start += n
    shape = (num_pages, 2, num_layers, page, kv_heads, head_dim)
    # Magnitudes in [0.5, 1.5) with random signs: never zero, so stale reads are visible.
    values = rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return {
        "kv_blocks": cast_like(values, dtype),
        "cache_lengths": cached,
        "lookup_table": lookup,
        "row_offsets": np.concatenate([[0], np.cumsum(new)]).astype(np.int64),
    }
