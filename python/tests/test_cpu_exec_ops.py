"""Execution tests of the CPU path, one primitive op at a time: each ``ir.*_function`` builder
compiled by ``attn-compile --target=cpu``, run through ``attn.runtime`` and compared with
``attn.reference`` on random inputs (fixed seeds, never zero).

Tolerances: ``max|got - expected| <= tol * max|expected|`` with ``OUT_TOL`` = 1.5e-6 (f32), 8e-3
(bf16), 1e-3 (f16): one rounding to the storage type, about twice the measured worst (6e-7, 3.6e-3,
4.5e-4; a correctly rounded result is within 2^-8 = 3.9e-3 and 2^-11 = 4.9e-4); the cos/sin
table (always f32) within 1e-5 absolute (observed 6e-8: folded in f64; 1e-5 also admits angles
``pos * inv_freq`` evaluated in f32). The cache
store copies values, so it must be bit-exact, and every slot it does not write must stay
bit-for-bit unchanged. Out-parameters are prefilled with NaN, so unwritten elements fail.

Covered: qkv_projection (separate weights with bias and clip, stacked with and without bias);
rms_norm on q heads and kv heads; rope with the table from the attribute (every scaling, both
pairings; LongRoPE positions on both sides of original_max_position) and with the table passed as
an argument (arbitrary values); rope_freqs of every scaling; kv_cache_store (rows crossing
pages, empty sequences); paged_flash_attention (MHA / GQA / MQA, every mask, custom scale, >1 page
and >1 query tile, decode rows); flash_attention with explicit ragged K/V (kv_len > q_len, over
several 64-key tiles, kv_len < q_len so that some queries see no key -> zeros, empty K/V, empty
queries); linear with and without bias; rounding to nearest bf16 / f16, element by element, of
rope and rms_norm (truncation fails it; the max-relative tolerances cannot tell); attention
numerics (docs/ABI.md, "Numerics"): scores of +-1e4, NaN / Inf in q and k (the rows that see it are
NaN, every other row bit-for-bit unchanged), NaN in unused cache slots (no effect).
"""

import dataclasses
import zlib

import numpy as np
import pytest

from cpu_exec_support import (
    scaling,
    CACHE_TOL,
    DTYPES,
    OUT_TOL,
    Build,
    assert_close,
    check_cache,
    nan_filled,
    needs_attn_compile,
    nonzero,
    values,
    written_slots,
)

from attn import ir  # noqa: E402
from attn import reference as ref  # noqa: E402
from attn import runtime as rt  # noqa: E402

pytestmark = needs_attn_compile

TABLE_ATOL = 1e-5
SCALINGS = (None, "linear", "llama3", "yarn", "longrope")




def rope(kind, interleaved, head_dim=64):
    theta = 500000.0 if kind == "llama3" else 10000.0
    return {"theta": theta, "interleaved": interleaved, "scaling": scaling(kind, head_dim)}


def seeded(*parts):
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


def i32(a):
    return rt.to_abi(a, "i32")


def offsets_of(lengths):
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# The cheap ops of one dtype, in one module


def ops_cfg(dtype, **kw):
    kw.setdefault("rope", rope(None, False))
    return ir.LayerConfig(hidden=96, num_heads=4, num_kv_heads=2, head_dim=64, dtype=dtype,
                          page_size=16, num_layers=2, layer_idx=1, max_seq_len=128, **kw)


QKV_VARIANTS = {
    "qkv_sep_bias_clip": dict(bias=True, clip=0.05),
    "qkv_sep": dict(),
    "qkv_stacked": dict(stacked=True),
    "qkv_stacked_bias_clip": dict(stacked=True, bias=True, clip=0.07),
}


def rope_variants(dtype):
    """name -> (rope dict, table passed as argument)."""
    kinds = SCALINGS if dtype == "f32" else (None, "longrope")
    out = {}
    for kind in kinds:
        for inter in (False, True):
            name = f"rope_{kind or 'none'}_{'inter' if inter else 'half'}"
            out[name] = (rope(kind, inter), False)
    for inter in (False, True):
        out[f"rope_table_arg_{'inter' if inter else 'half'}"] = (rope(None, inter), True)
    return out


def ops_module(dtype):
    fns = []
    for name, kw in QKV_VARIANTS.items():
        fns.append(ir.qkv_projection_function(name, ops_cfg(dtype, **kw)))
    norm = ops_cfg(dtype, rms_norm_eps=1e-5)
    fns.append(ir.rms_norm_function("rms_q", norm))
    fns.append(ir.rms_norm_function("rms_k", norm, heads=norm.num_kv_heads))
    for name, (r, table_arg) in rope_variants(dtype).items():
        cfg = ops_cfg(dtype, rope=r)
        fns.append(ir.rope_function(name, cfg, freqs_arg=table_arg))
    if dtype == "f32":
        for kind in SCALINGS:
            fns.append(ir.rope_freqs_function(f"freqs_{kind or 'none'}",
                                              ops_cfg(dtype, rope=rope(kind, False))))
    fns.append(ir.kv_cache_store_function("store", ops_cfg(dtype)))
    for inter in (False, True):
        fns.append(ir.rope_store_function(f"rope_store_{'inter' if inter else 'half'}",
                                          ops_cfg(dtype, rope=rope("llama3", inter))))
    fns.append(ir.linear_function("o_proj", ops_cfg(dtype)))
    fns.append(ir.linear_function("linear_bias", ops_cfg(dtype), in_features=24, out_features=40,
                                  bias=True))
    return ir.module_text(*fns)


OPS = {d: Build(f"ops-{d}", lambda d=d: ops_module(d)) for d in DTYPES}


@dataclasses.dataclass
class OpRun:
    dtype: str
    variant: str

    def prebuild(self):
        OPS[self.dtype].prebuild()

    def __str__(self):
        return f"{self.dtype}-{self.variant}"


def runs(variants_of):
    out = [OpRun(d, v) for d in DTYPES for v in variants_of(d)]
    return pytest.mark.parametrize("run", out, ids=[str(r) for r in out])


def where(run):
    return f"\n  function {run.variant}, module {OPS[run.dtype].where()}"


@runs(lambda d: list(QKV_VARIANTS))
def test_qkv_projection(run):
    cfg = ops_cfg(run.dtype, **QKV_VARIANTS[run.variant])
    rng = seeded("qkv", run)
    tokens, shapes = 37, cfg.weight_shapes()
    names = [n for n in cfg.weight_names() if n not in ("q_norm", "k_norm", "wo")]
    args = [rt.to_abi(rng.standard_normal((tokens, cfg.hidden)), cfg.dtype)]
    for n in names:
        shape = shapes[n]
        raw = rng.standard_normal(shape) / np.sqrt(cfg.hidden) if n.startswith("w") \
            else 0.5 * rng.standard_normal(shape)
        args.append(rt.to_abi(raw, cfg.dtype))
    vals = {n: values(a, cfg.dtype) for n, a in zip(names, args[1:])}
    w = vals["wqkv"] if cfg.stacked else (vals["wq"], vals["wk"], vals["wv"])
    b = None
    if cfg.bias:
        b = vals["bqkv"] if cfg.stacked else (vals["bq"], vals["bk"], vals["bv"])
    if cfg.clip is not None:  # the clip must matter
        assert np.abs(np.concatenate([v.ravel() for n, v in vals.items() if n[0] == "w"])
                      ).max() > 2 * cfg.clip
    want = ref.qkv_projection(values(args[0], cfg.dtype), w, cfg.num_heads, cfg.num_kv_heads,
                              cfg.head_dim, b, cfg.clip)
    outs = [nan_filled((tokens, h, cfg.head_dim), cfg.dtype)
            for h in (cfg.num_heads, cfg.num_kv_heads, cfg.num_kv_heads)]
    OPS[run.dtype].library().call(run.variant, args, outs)
    for label, got, exp in zip("qkv", outs, want):
        assert_close(values(got, cfg.dtype), exp, OUT_TOL[cfg.dtype], label, where(run))


@runs(lambda d: ["rms_q", "rms_k"])
def test_rms_norm(run):
    cfg = ops_cfg(run.dtype, rms_norm_eps=1e-5)
    heads = cfg.num_heads if run.variant == "rms_q" else cfg.num_kv_heads
    rng = seeded("rms", run)
    # Rows of very different magnitudes (the norm must remove them), some tiny (eps matters).
    raw = nonzero(rng, (21, heads, cfg.head_dim)) * np.exp(rng.uniform(-4, 3, (21, heads, 1)))
    raw[3] *= 1e-3
    x = rt.to_abi(raw, cfg.dtype)
    gamma = rt.to_abi(rng.uniform(0.5, 1.5, cfg.head_dim), cfg.dtype)
    want = ref.rms_norm(values(x, cfg.dtype), values(gamma, cfg.dtype), cfg.rms_norm_eps)
    out = nan_filled(x.shape, cfg.dtype)
    OPS[run.dtype].library().call(run.variant, [x, gamma], [out])
    assert_close(values(out, cfg.dtype), want, OUT_TOL[cfg.dtype], "rms_norm", where(run))


# Positions: sequence 1 crosses LongRoPE's original_max_position (48), sequence 3 is empty.
ROPE_CACHED, ROPE_NEW = [0, 45, 100, 7, 126], [20, 5, 1, 0, 2]


@runs(lambda d: list(rope_variants(d)))
def test_rope(run):
    r, table_arg = rope_variants(run.dtype)[run.variant]
    cfg = ops_cfg(run.dtype, rope=r)
    rng = seeded("rope", run)
    heads = cfg.num_heads
    offsets, cached = offsets_of(ROPE_NEW), np.array(ROPE_CACHED)
    x = rt.to_abi(nonzero(rng, (offsets[-1], heads, cfg.head_dim)), cfg.dtype)
    xv = values(x, cfg.dtype)
    args = [x, i32(offsets), i32(cached)]
    if table_arg:
        # Any table: the op reads cos at [pos, 2i] and sin at [pos, 2i+1].
        table = rt.to_abi(nonzero(rng, (cfg.max_seq_len, cfg.head_dim)), "f32")
        args.append(table)
        pos = ref.positions(offsets, cached)
        t = table.astype(np.float64)[pos]
        d = cfg.head_dim
        if r["interleaved"]:
            xa, xb = xv[..., 0::2], xv[..., 1::2]
        else:
            xa, xb = xv[..., : d // 2], xv[..., d // 2:]
        cos, sin = t[:, None, 0::2], t[:, None, 1::2]
        ya, yb = xa * cos - xb * sin, xa * sin + xb * cos
        want = np.empty_like(xv)
        if r["interleaved"]:
            want[..., 0::2], want[..., 1::2] = ya, yb
        else:
            want[..., : d // 2], want[..., d // 2:] = ya, yb
    else:
        want = ref.apply_rope(xv, offsets, cached, r)
    out = nan_filled(x.shape, cfg.dtype)
    OPS[run.dtype].library().call(run.variant, args, [out])
    assert_close(values(out, cfg.dtype), want, OUT_TOL[cfg.dtype], "rope", where(run))


FREQS = [OpRun("f32", f"freqs_{kind or 'none'}") for kind in SCALINGS]


@pytest.mark.parametrize("run", FREQS, ids=[str(r) for r in FREQS])
def test_rope_freqs(run):
    kind = SCALINGS[FREQS.index(run)]
    cfg = ops_cfg("f32", rope=rope(kind, False))
    out = nan_filled((cfg.max_seq_len, cfg.head_dim), "f32")
    OPS["f32"].library().call(run.variant, [], [out])
    want = ref.rope_table(cfg.rope, cfg.head_dim, cfg.max_seq_len)
    err = np.abs(out.astype(np.float64) - want)
    assert np.all(np.isfinite(out)), where(run)
    worst = np.unravel_index(int(np.argmax(err)), err.shape)
    assert err.max() <= TABLE_ATOL, (
        f"cos/sin table: max error {err.max():.3e} at [pos, col] = {list(map(int, worst))}: "
        f"got {out[worst]!r}, expected {want[worst]!r}{where(run)}")


# The store tests' batch: cached / new rows per sequence (an empty one, page boundaries crossed).
STORE_CACHED, STORE_NEW = [0, 30, 15, 100, 4, 0], [40, 3, 1, 0, 13, 0]


def store_step(rng, cfg):
    """A random paged cache and new k, v rows of the store tests' batch, in ABI form:
    ``(blocks, k, v, row_offsets, cache_lengths, lookup_table)``."""
    cache = ref.random_paged_cache(rng, 22, cfg.num_layers, cfg.page_size, cfg.num_kv_heads,
                                   cfg.head_dim, STORE_CACHED, STORE_NEW, dtype=cfg.dtype)
    blocks = rt.to_abi(cache["kv_blocks"], cfg.dtype)
    k, v = (rt.to_abi(nonzero(rng, (sum(STORE_NEW), cfg.num_kv_heads, cfg.head_dim)),
                      cfg.dtype) for _ in range(2))
    return (blocks, k, v,
            *(i32(cache[n]) for n in ("row_offsets", "cache_lengths", "lookup_table")))


@runs(lambda d: ["store"])
def test_kv_cache_store(run):
    cfg = ops_cfg(run.dtype)
    blocks, k, v, offsets, lengths, lookup = store_step(seeded("store", run), cfg)
    tokens = sum(STORE_NEW)
    want = ref.kv_cache_store(values(blocks, cfg.dtype), values(k, cfg.dtype),
                              values(v, cfg.dtype), offsets, lengths, lookup, cfg.layer_idx)
    before = blocks.copy()
    OPS[run.dtype].library().call("store", [k, v, offsets, blocks, lengths, lookup])
    mask, _, _ = written_slots(offsets, lengths, lookup, blocks.shape[0], cfg.page_size,
                               cfg.num_layers, cfg.layer_idx)
    assert mask.sum() == 2 * tokens
    check_cache(blocks, before, want, mask, cfg.dtype, tol=0, where=where(run))


@runs(lambda d: ["rope_store_half", "rope_store_inter"])
def test_rope_store(run):
    """rope + kv_cache_store on the caller's q, k, v, which attn-fuse-rope-store makes one
    attn.rope_store: q rotated into its result, k rotated and v copied into the cache slots."""
    cfg = ops_cfg(run.dtype, rope=rope("llama3", run.variant.endswith("inter")))
    rng = seeded("rope_store", run)
    blocks, k, v, offsets, lengths, lookup = store_step(rng, cfg)
    q = rt.to_abi(nonzero(rng, (sum(STORE_NEW), cfg.num_heads, cfg.head_dim)), cfg.dtype)
    want_q = ref.apply_rope(values(q, cfg.dtype), offsets, lengths, cfg.rope)
    want_k = ref.apply_rope(values(k, cfg.dtype), offsets, lengths, cfg.rope)
    want_blocks = ref.kv_cache_store(values(blocks, cfg.dtype), want_k, values(v, cfg.dtype),
                                     offsets, lengths, lookup, cfg.layer_idx)
    before = blocks.copy()
    out = nan_filled(q.shape, cfg.dtype)
    OPS[run.dtype].library().call(run.variant, [q, k, v, offsets, blocks, lengths, lookup],
                                  [out])
    assert_close(values(out, cfg.dtype), want_q, OUT_TOL[cfg.dtype], "q", where(run))
    mask, _, _ = written_slots(offsets, lengths, lookup, blocks.shape[0], cfg.page_size,
                               cfg.num_layers, cfg.layer_idx)
    check_cache(blocks, before, want_blocks, mask, cfg.dtype, tol=CACHE_TOL[cfg.dtype],
                where=where(run))


@runs(lambda d: ["o_proj", "linear_bias"])
def test_linear(run):
    cfg = ops_cfg(run.dtype)
    rng = seeded("linear", run)
    k, n = (cfg.q_rows, cfg.hidden) if run.variant == "o_proj" else (24, 40)
    x = rt.to_abi(nonzero(rng, (19, k)), cfg.dtype)
    w = rt.to_abi(rng.standard_normal((n, k)) / np.sqrt(k), cfg.dtype)
    args = [x, w]
    b = None
    if run.variant == "linear_bias":
        b = rt.to_abi(nonzero(rng, (n,)), cfg.dtype)
        args.append(b)
    want = ref.linear(values(x, cfg.dtype), values(w, cfg.dtype),
                      None if b is None else values(b, cfg.dtype))
    out = nan_filled((19, n), cfg.dtype)
    OPS[run.dtype].library().call(run.variant, args, [out])
    assert_close(values(out, cfg.dtype), want, OUT_TOL[cfg.dtype], "linear", where(run))


# ---------------------------------------------------------------------------------------------
# Attention: one module each (they dominate compile time)


@dataclasses.dataclass
class AttentionCase:
    id: str
    cfg: ir.LayerConfig
    paged: bool

    def __post_init__(self):
        fn = ir.paged_flash_attention_function if self.paged else ir.flash_attention_function
        self.build = Build(f"{'paged' if self.paged else 'flash'}-{self.id}",
                           lambda: ir.module_text(fn("attention", self.cfg)))

    def prebuild(self):
        self.build.prebuild()


def attention_case(id, paged, dtype, heads, head_dim, page=16, **kw):
    cfg = ir.LayerConfig(hidden=64, num_heads=heads[0], num_kv_heads=heads[1],
                         head_dim=head_dim, dtype=dtype, page_size=page, num_layers=3,
                         layer_idx=1, **kw)
    return AttentionCase(id, cfg, paged)


PAGED = [
    attention_case("f32-mha-d64-p16-causal", True, "f32", (4, 4), 64),
    attention_case("f32-gqa2-d128-p128-window40", True, "f32", (4, 2), 128, page=128,
                   mask={"kind": "sliding_window", "window": 40}),
    attention_case("bf16-gqa4-d128-p16-window20", True, "bf16", (8, 2), 128,
                   mask={"kind": "sliding_window", "window": 20}),
    attention_case("f16-mqa-d96-p128-none-scale", True, "f16", (4, 1), 96, page=128,
                   mask={"kind": "none"}, scale=0.15),
]
# (cache lengths, new tokens) by page size: prefill over several query tiles and pages, decode
# rows over long caches, an empty sequence, a first token.
PAGED_SCENARIO = {16: ([0, 40, 100, 5, 0, 15], [37, 1, 1, 0, 20, 1]),
                  128: ([0, 300, 120, 5, 127], [150, 1, 20, 0, 1])}


# Decode-only batches (no sequence with more than one query row) take the split decode: key
# chunks over all kv heads, combined afterwards. Long caches in several chunks (page 16: 16 tiles
# in 8 chunks of 2), a sequence without a query row, a first token.
PAGED_DECODE_SCENARIO = {16: ([250, 0, 37, 15, 90], [1, 1, 0, 1, 1]),
                         128: ([700, 127, 0, 5], [1, 1, 1, 0])}


@pytest.mark.parametrize("case", PAGED, ids=[c.id for c in PAGED])
def test_paged_flash_attention(case):
    check_paged_attention(case, "mixed", *PAGED_SCENARIO[case.cfg.page_size])


@pytest.mark.parametrize("case", PAGED, ids=[c.id for c in PAGED])
def test_paged_flash_attention_decode(case):
    check_paged_attention(case, "decode", *PAGED_DECODE_SCENARIO[case.cfg.page_size])


def check_paged_attention(case, scenario, cached, new):
    cfg = case.cfg
    rng = seeded("paged", case.id, scenario)
    pages = int(np.sum(-(-(np.array(cached) + new) // cfg.page_size))) + 3
    cache = ref.random_paged_cache(rng, pages, cfg.num_layers, cfg.page_size, cfg.num_kv_heads,
                                   cfg.head_dim, cached, new, dtype=cfg.dtype)
    blocks = rt.to_abi(cache["kv_blocks"], cfg.dtype)
    offsets, lengths, lookup = (i32(cache[n]) for n in ("row_offsets", "cache_lengths",
                                                        "lookup_table"))
    q = rt.to_abi(nonzero(rng, (sum(new), cfg.num_heads, cfg.head_dim)), cfg.dtype)
    want = ref.flash_attention_paged(values(q, cfg.dtype), values(blocks, cfg.dtype), lengths,
                                     lookup, offsets, cfg.layer_idx, cfg.mask, cfg.scale)
    before = blocks.copy()
    out = nan_filled(q.shape, cfg.dtype)
    case.build.library().call("attention", [q, offsets, blocks, lengths, lookup], [out])
    assert_close(values(out, cfg.dtype), want, OUT_TOL[cfg.dtype], "paged attention",
                 f"\n  case {case.id}, {scenario}, module {case.build.where()}")
    assert np.array_equal(blocks, before), "paged attention modified the cache"


FLASH = [
    attention_case("f32-gqa2-d64-causal", False, "f32", (4, 2), 64),
    attention_case("f32-mha-d128-window10", False, "f32", (2, 2), 128,
                   mask={"kind": "sliding_window", "window": 10}),
    attention_case("bf16-mqa-d96-none-scale", False, "bf16", (4, 1), 96,
                   mask={"kind": "none"}, scale=0.2),
    attention_case("f16-gqa3-d80-causal", False, "f16", (6, 2), 80),
]
# Per sequence: kv_len > q_len over several 64-key tiles and query tiles; decode; kv_len < q_len
# (the first 3 rows see no key under a causal mask); empty queries; empty K/V (no key at all);
# a square 70 x 70 one.
FLASH_Q = [40, 3, 1, 5, 0, 2, 70]
FLASH_KV = [70, 130, 1, 2, 4, 0, 70]


# Decode only (the split decode): 130 keys in three 64-key tiles, a sequence without a query
# row, one key, no key at all (its row is zero).
FLASH_DECODE_Q = [1, 0, 1, 1, 1]
FLASH_DECODE_KV = [130, 4, 1, 0, 70]


@pytest.mark.parametrize("case", FLASH, ids=[c.id for c in FLASH])
def test_flash_attention_explicit_kv(case):
    check_flash_attention(case, FLASH_Q, FLASH_KV, 2 + (3 if case.cfg.mask["kind"] != "none"
                                                        else 0))


@pytest.mark.parametrize("case", FLASH, ids=[c.id for c in FLASH])
def test_flash_attention_explicit_kv_decode(case):
    check_flash_attention(case, FLASH_DECODE_Q, FLASH_DECODE_KV, 1)


def check_flash_attention(case, q_lens, kv_lens, min_blind):
    cfg = case.cfg
    rng = seeded("flash", case.id, len(q_lens))
    qo, ko = offsets_of(q_lens), offsets_of(kv_lens)
    q = rt.to_abi(nonzero(rng, (qo[-1], cfg.num_heads, cfg.head_dim)), cfg.dtype)
    k = rt.to_abi(nonzero(rng, (ko[-1], cfg.num_kv_heads, cfg.head_dim)), cfg.dtype)
    v = rt.to_abi(nonzero(rng, (ko[-1], cfg.num_kv_heads, cfg.head_dim)), cfg.dtype)
    want = ref.flash_attention(values(q, cfg.dtype), values(k, cfg.dtype), values(v, cfg.dtype),
                               qo, ko, cfg.mask, cfg.scale)
    out = nan_filled(q.shape, cfg.dtype)
    case.build.library().call("attention", [q, k, v, i32(qo), i32(ko)], [out])
    got = values(out, cfg.dtype)
    msg = f"\n  case {case.id}, module {case.build.where()}"
    # Rows that see no key (bottom-right aligned positions < 0, or no keys): exactly zero.
    blind = np.zeros(qo[-1], dtype=bool)
    for b, (ql, kl) in enumerate(zip(q_lens, kv_lens)):
        pos = kl - ql + np.arange(ql)
        blind[qo[b]:qo[b + 1]] = (kl == 0) | ((pos < 0) & (cfg.mask["kind"] != "none"))
    assert blind.sum() >= min_blind
    nan_rows = np.unique(np.argwhere(np.isnan(got))[:, 0])
    assert nan_rows.size == 0, f"NaN in rows {nan_rows.tolist()}{msg}"
    assert np.all(got[blind] == 0), f"rows without visible keys are not zero{msg}"
    assert np.all(want[blind] == 0)
    assert_close(got, want, OUT_TOL[cfg.dtype], "flash attention", msg)


# ---------------------------------------------------------------------------------------------
# Rounding: the f32 result of an op is rounded to nearest into bf16 / f16, not truncated.
#
# The max-relative tolerances above admit truncation (at most 1 ulp, 2^-7 = 7.8e-3 in bf16, of an
# element smaller than max |expected|). Here every element is checked on its own:
# |got - want| <= ulp(want) / 2 + slack, where slack bounds the f32 computation's own error
# (2^-20 of the magnitude of its terms, 8 f32 ulps). Truncation misses this on about half of the
# elements (test_rounding_check_catches_truncation shows the check itself does).

MANTISSA_BITS = {"bf16": 7, "f16": 10}
MIN_EXPONENT = {"bf16": -126, "f16": -14}
F32_SLACK = 2.0**-20


def rounding_violations(got, want, terms, dtype):
    """Boolean mask of the elements of ``got`` farther than half an ulp of ``dtype`` (plus the
    f32 slack, relative to ``terms``, the magnitude of the computation) from ``want``."""
    exponent = np.floor(np.log2(np.maximum(np.abs(want), np.finfo(np.float64).tiny)))
    ulp = np.exp2(np.maximum(exponent, MIN_EXPONENT[dtype]) - MANTISSA_BITS[dtype])
    return np.abs(got - want) > 0.5 * ulp + F32_SLACK * terms


def truncated(values64, dtype):
    """``values64`` rounded to f32, then truncated (toward zero) to ``dtype``: the wrong result."""
    bits32 = np.asarray(values64, dtype=np.float32).view(np.uint32)
    drop = 23 - MANTISSA_BITS[dtype]
    return (bits32 & np.uint32((0xFFFFFFFF >> drop) << drop)).view(np.float32).astype(np.float64)


def assert_rounded_to_nearest(got, want, terms, dtype, what, where=""):
    bad = rounding_violations(got, want, terms, dtype)
    assert np.all(np.isfinite(got)), f"{what}: non-finite values{where}"
    at = np.argwhere(bad)
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} elements are not rounded to nearest {dtype} (more "
        f"than half an ulp from the exact value); first at {at[0].tolist()}: got "
        f"{got[tuple(at[0])]!r}, exact {want[tuple(at[0])]!r}{where}")


ROUNDING = [OpRun(d, v) for d in ("bf16", "f16")
            for v in ("rope_table_arg_half", "rope_table_arg_inter", "rms_q")]


@pytest.mark.parametrize("run", ROUNDING, ids=[str(r) for r in ROUNDING])
def test_rounded_to_nearest(run):
    rng = seeded("rounding", run)
    if run.variant == "rms_q":
        cfg = ops_cfg(run.dtype, rms_norm_eps=1e-5)
        raw = rng.standard_normal((160, cfg.num_heads, cfg.head_dim))
        x = rt.to_abi(raw * np.exp(rng.uniform(-3, 3, (160, cfg.num_heads, 1))), cfg.dtype)
        gamma = rt.to_abi(rng.uniform(0.5, 1.5, cfg.head_dim), cfg.dtype)
        xv, gv = values(x, cfg.dtype), values(gamma, cfg.dtype)
        want = ref.rms_norm(xv, gv, cfg.rms_norm_eps)
        terms = np.abs(want)
        args = [x, gamma]
    else:
        r, table_arg = rope_variants(run.dtype)[run.variant]
        assert table_arg
        cfg = ops_cfg(run.dtype, rope=r)
        offsets, cached = offsets_of([64, 50, 1]), np.array([0, 70, 127])
        x = rt.to_abi(rng.standard_normal((offsets[-1], cfg.num_heads, cfg.head_dim)), cfg.dtype)
        # A table of exact f32 values, so that the f64 result below is the exact one.
        table = rt.to_abi(rng.uniform(-1.0, 1.0, (cfg.max_seq_len, cfg.head_dim)), "f32")
        t = table.astype(np.float64)[ref.positions(offsets, cached)]
        xv, d = values(x, cfg.dtype), cfg.head_dim
        if r["interleaved"]:
            xa, xb = xv[..., 0::2], xv[..., 1::2]
        else:
            xa, xb = xv[..., : d // 2], xv[..., d // 2:]
        cos, sin = t[:, None, 0::2], t[:, None, 1::2]
        ya, yb = xa * cos - xb * sin, xa * sin + xb * cos
        ta = tb = np.abs(xa * cos) + np.abs(xb * sin)
        want, terms = np.empty_like(xv), np.empty_like(xv)
        if r["interleaved"]:
            want[..., 0::2], want[..., 1::2], terms[..., 0::2], terms[..., 1::2] = ya, yb, ta, tb
        else:
            want[..., : d // 2], want[..., d // 2:] = ya, yb
            terms[..., : d // 2], terms[..., d // 2:] = ta, tb
        args = [x, i32(offsets), i32(cached), table]
    out = nan_filled(x.shape, cfg.dtype)
    OPS[run.dtype].library().call(run.variant, args, [out])
    # The test data must be able to tell: truncating the exact values fails on many elements.
    assert rounding_violations(truncated(want, run.dtype), want, terms, run.dtype).mean() > 0.2
    assert_rounded_to_nearest(values(out, cfg.dtype), want, terms, run.dtype, run.variant,
                              where(run))


@pytest.mark.parametrize("dtype", ["bf16", "f16"])
def test_rounding_check_catches_truncation(dtype):
    """The check of test_rounded_to_nearest, on numpy data: round to nearest (``rt.to_abi``)
    passes, truncation fails."""
    want = seeded("rounding-check", dtype).standard_normal(4096)
    nearest = values(rt.to_abi(want, dtype), dtype)
    assert_rounded_to_nearest(nearest, want, np.abs(want), dtype, "round to nearest")
    with pytest.raises(AssertionError, match="not rounded to nearest"):
        assert_rounded_to_nearest(truncated(want, dtype), want, np.abs(want), dtype, "truncated")


# ---------------------------------------------------------------------------------------------
# Numerics of attention: huge logits, NaN / Inf in the inputs (docs/ABI.md, "Numerics")


def quarters(rng, shape):
    """Random multiples of 1/4 in +-[0.25, 1.5]: exact in every dtype, and their products and
    sums (< 2^21 quarters) exact in f32."""
    return rng.integers(1, 7, size=shape) / 4.0 * rng.choice([-1.0, 1.0], size=shape)


@pytest.mark.parametrize("case", FLASH, ids=[c.id for c in FLASH])
@pytest.mark.parametrize("sign", [1, -1], ids=["plus", "minus"])
def test_flash_attention_huge_logits(case, sign):
    """Scores around +-1e4 (q[0] = 300, k[0] = +-300: a shared offset; the other components
    make a softmax that is not one-hot). exp(1e4) overflows and exp(-1e4) underflows to 0, so
    this needs the running max subtracted: outputs finite and equal to the reference. Scores
    accumulated in f32 are off by a few ulps of |s| ~ 1e4 (2^-24 |s| ~ 6e-4), and the
    probabilities by as much: measured up to 5 * 2^-24 |s| (2.4e-3 in f32), the tolerance adds
    10 * 2^-24 |s|. Prefill, decode rows and the split decode."""
    cfg = case.cfg
    for q_lens, kv_lens in ((FLASH_Q, FLASH_KV), (FLASH_DECODE_Q, FLASH_DECODE_KV)):
        rng = seeded("huge", case.id, sign, len(q_lens))
        qo, ko = offsets_of(q_lens), offsets_of(kv_lens)
        qv = quarters(rng, (qo[-1], cfg.num_heads, cfg.head_dim))
        kv = quarters(rng, (ko[-1], cfg.num_kv_heads, cfg.head_dim))
        qv[..., 0], kv[..., 0] = 300.0, 300.0 * sign
        q, k = rt.to_abi(qv, cfg.dtype), rt.to_abi(kv, cfg.dtype)
        v = rt.to_abi(nonzero(rng, (ko[-1], cfg.num_kv_heads, cfg.head_dim)), cfg.dtype)
        scale = cfg.scale if cfg.scale is not None else cfg.head_dim**-0.5
        assert 5e3 < scale * 300 * 300 < 2e4
        want = ref.flash_attention(qv, kv, values(v, cfg.dtype), qo, ko, cfg.mask, cfg.scale)
        out = nan_filled(q.shape, cfg.dtype)
        case.build.library().call("attention", [q, k, v, i32(qo), i32(ko)], [out])
        tol = OUT_TOL[cfg.dtype] + 10 * 2.0**-24 * scale * 300 * 300 * 1.01
        assert_close(values(out, cfg.dtype), want, tol, f"huge logits ({sign:+d}e4)",
                     f"\n  case {case.id}, q lengths {q_lens}, module {case.build.where()}")


def nan_pattern(case, q_lens, kv_lens, where_nan):
    """Runs the case on clean inputs and with one NaN put by ``where_nan(q, k, v)``; returns
    (clean output, output with the NaN, reference with the NaN) as float64."""
    cfg = case.cfg
    rng = seeded("nan", case.id, len(q_lens))
    qo, ko = offsets_of(q_lens), offsets_of(kv_lens)
    clean = [nonzero(rng, (qo[-1], cfg.num_heads, cfg.head_dim)),
             nonzero(rng, (ko[-1], cfg.num_kv_heads, cfg.head_dim)),
             nonzero(rng, (ko[-1], cfg.num_kv_heads, cfg.head_dim))]
    clean = [values(rt.to_abi(a, cfg.dtype), cfg.dtype) for a in clean]
    poisoned = [a.copy() for a in clean]
    where_nan(*poisoned)
    outs = []
    for q, k, v in (clean, poisoned):
        out = nan_filled(q.shape, cfg.dtype)
        case.build.library().call("attention", [rt.to_abi(q, cfg.dtype), rt.to_abi(k, cfg.dtype),
                                                rt.to_abi(v, cfg.dtype), i32(qo), i32(ko)], [out])
        outs.append(values(out, cfg.dtype))
    with np.errstate(invalid="ignore"):
        want = ref.flash_attention(*poisoned, qo, ko, cfg.mask, cfg.scale)
    return outs[0], outs[1], want


# (q lengths, kv lengths, sequence, key): prefill (sequence 0: 40 rows at positions 30..69; key 60
# is visible to rows 60..69 under the causal and window-10 masks, to all under none) and the
# split decode (one row at position 129: key 125 is within every window).
NAN_SCENARIOS = {"prefill": (FLASH_Q, FLASH_KV, 0, 60),
                 "decode": (FLASH_DECODE_Q, FLASH_DECODE_KV, 0, 125)}


@pytest.mark.parametrize("case", FLASH, ids=[c.id for c in FLASH])
@pytest.mark.parametrize("scenario", list(NAN_SCENARIOS))
@pytest.mark.parametrize("what", ["q", "k", "k_inf"])
def test_flash_attention_nan_inputs(case, scenario, what):
    """A NaN in a query row makes that row (in that head) NaN; a NaN in a key makes exactly the
    rows that see it NaN (in the heads that read its kv head), never a silent zero or finite
    row; a key a row does not see (masked, or in another sequence) never changes it: every
    other element is bit-for-bit the output of the clean inputs. An infinite key component
    gives infinite scores: the rows that see the key are NaN or ignore it, as in the reference
    (+inf - +inf = NaN; exp(-inf) = 0)."""
    q_lens, kv_lens, seq, key = NAN_SCENARIOS[scenario]
    ko = offsets_of(kv_lens)
    qo = offsets_of(q_lens)

    def poison(q, k, v):
        if what == "q":
            q[qo[seq] + q_lens[seq] - 1, 1, 5] = np.nan  # the last row: it sees keys
        else:
            k[ko[seq] + key, 0, 3] = np.nan if what == "k" else np.inf

    clean, got, want = nan_pattern(case, q_lens, kv_lens, poison)
    msg = f"\n  case {case.id}, {scenario}, NaN in {what}, module {case.build.where()}"
    nan_want = np.isnan(want)
    assert nan_want.any() or what == "k_inf", "test input: the NaN reaches no row"
    # Whole (row, head) vectors are NaN or not.
    assert np.array_equal(np.isnan(got), nan_want), (
        f"NaN at (row, head) {sorted(set(map(tuple, np.argwhere(np.isnan(got))[:, :2].tolist())))}"
        f", expected at {sorted(set(map(tuple, np.argwhere(nan_want)[:, :2].tolist())))}{msg}")
    keep = ~nan_want
    # Rows the NaN does not reach are unchanged bit for bit (rows that an infinite key component
    # turned to weight 0 are only close: their softmax lost a term).
    same = keep & ~np.isinf(want).any(axis=-1, keepdims=True)
    if what == "k_inf":
        assert_close(got[keep], want[keep], OUT_TOL[case.cfg.dtype], "inf key", msg)
    else:
        assert np.array_equal(got[same], clean[same]), f"rows without the NaN changed{msg}"


@pytest.mark.parametrize("case", PAGED, ids=[c.id for c in PAGED])
@pytest.mark.parametrize("scenario", ["mixed", "decode"])
def test_paged_attention_ignores_unused_cache(case, scenario):
    """NaN in every cache element the step does not own (slots at or after each sequence's
    cache_len + new tokens, other layers, pages outside the lookup table) changes nothing: the
    output is bit-for-bit that of a cache with finite values there (uninitialised pages may hold
    anything)."""
    cfg = case.cfg
    cached, new = (PAGED_SCENARIO if scenario == "mixed" else PAGED_DECODE_SCENARIO)[
        cfg.page_size]
    rng = seeded("paged-unused", case.id, scenario)
    pages = int(np.sum(-(-(np.array(cached) + new) // cfg.page_size))) + 3
    cache = ref.random_paged_cache(rng, pages, cfg.num_layers, cfg.page_size, cfg.num_kv_heads,
                                   cfg.head_dim, cached, new, dtype=cfg.dtype)
    offsets, lengths, lookup = (i32(cache[n]) for n in ("row_offsets", "cache_lengths",
                                                        "lookup_table"))
    blocks = rt.to_abi(cache["kv_blocks"], cfg.dtype)
    used = np.zeros(blocks.shape[:4], dtype=bool)  # [P, 2, L, page]
    for b, n in enumerate(np.add(cached, new)):
        j = np.arange(n)
        used[cache["lookup_table"][b, j // cfg.page_size], :, cfg.layer_idx,
             j % cfg.page_size] = True
    poisoned = np.where(used[..., None, None], blocks, nan_filled(blocks.shape, cfg.dtype))
    q = rt.to_abi(nonzero(rng, (sum(new), cfg.num_heads, cfg.head_dim)), cfg.dtype)
    outs = []
    for kv in (blocks, poisoned):
        out = nan_filled(q.shape, cfg.dtype)
        case.build.library().call("attention", [q, offsets, kv, lengths, lookup], [out])
        outs.append(out)
    assert not np.isnan(values(outs[1], cfg.dtype)).any(), (
        f"NaN from unused cache slots\n  case {case.id}, {scenario}")
    assert np.array_equal(outs[0], outs[1]), f"unused cache slots changed the output ({case.id})"
