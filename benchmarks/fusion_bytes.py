"""Bytes a layer step moves, computed analytically, fused vs unfused (shared by the CPU and GPU
fusion benchmarks).

Counted at the level of each kernel's (or loop nest's) inputs and outputs in memory: weights
read once per step, activations written by one op and read by the next, KV-cache rows written
by the store, and (for the whole layer) the cache rows attention reads. Caches inside a kernel
(L1/L2, shared memory) are not modelled; every op is assumed to read its inputs once.
"""


def step_bytes(cfg, tokens, kv_read_rows=0, fused=True, part="layer", qkv_launches=None):
    """Bytes of one step of ``tokens`` new rows (dict of components and ``total``).

    ``kv_read_rows``: cache rows (keys + values, per kv head) the attention reads, summed over
    the sequences (0 for ``part="projections"``, the layer minus attention). ``qkv_launches``:
    how many passes over ``x`` the q/k/v projection makes (3 for separate weights run apart,
    1 for one GEMM over the three weights); defaults to 1 fused, 3 unfused.
    """
    e = {"f32": 4, "bf16": 2, "f16": 2}[cfg.dtype]
    h, hkv, d, hid = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.hidden
    t = tokens
    q, kv = t * h * d * e, t * hkv * d * e
    if qkv_launches is None:
        qkv_launches = 1 if fused else 3
    b = {
        "weights": ((h + 2 * hkv) * d * hid + hid * h * d) * e,
        "qkv_in_out": qkv_launches * t * hid * e + q + 2 * kv,
        "o_proj_in_out": q + t * hid * e,
        "cache_rows_written": 2 * kv,
    }
    norm = 2 * (q + kv) if (cfg.qk_norm and not fused) else 0  # read + write q and k
    if fused:
        # rope_store: reads q, k, v once, writes rotated q; k and v go to the cache.
        b["rope_store_in_out"] = q + 2 * kv + q
    else:
        # rope(q), rope(k): read + write; store: reads rotated k and v.
        b["rope_in_out"] = 2 * q + 2 * kv
        b["store_in"] = 2 * kv
    if norm:
        b["qk_norm_in_out"] = norm
    if part == "layer":
        b["attention_kv_read"] = kv_read_rows * 2 * hkv * d * e
        b["attention_q_in_out"] = 2 * q
    b["total"] = sum(b.values())
    return b
