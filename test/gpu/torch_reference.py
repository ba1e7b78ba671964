"""The attention block in PyTorch float64: the reference of the GPU tests and benchmarks.

Written from ``/work/shared/reference/attention-semantics.md`` (step numbers are the doc's), in
torch so that it runs on the GPU next to the compiled code; ``python/attn/reference.py`` (numpy)
is the project's reference, and ``run_device_tests.py`` cross-checks the two on every layer
case. Only the cos/sin table is taken from ``attn.reference.rope_table``: it is a small
host-side table whose scalings are easier to share than to restate.

Float arguments are float64 tensors of values (bf16 / f16 inputs upcast exactly); index
tensors (row offsets, cache lengths, lookup table) are integer tensors; all on one device.
Results are float64.
"""

import math

import torch

from attn import reference as ref


def positions(row_offsets, cache_lengths):
    """Step 3: ``(pos, owner)`` of every new row: ``pos = cache_lengths[b] + (r - off[b])``."""
    off = row_offsets.long()
    owner = torch.repeat_interleave(torch.arange(len(off) - 1, device=off.device),
                                    off[1:] - off[:-1])
    rows = torch.arange(int(off[-1]), device=off.device)
    return cache_lengths.long()[owner] + rows - off[owner], owner


def page_slots(row_offsets, cache_lengths, lookup_table, page_size):
    """Step 4: ``(page_id, slot)`` of every new row."""
    pos, owner = positions(row_offsets, cache_lengths)
    return lookup_table.long()[owner, pos // page_size], pos % page_size


def linear(x, w, bias=None):
    """``x @ w^T (+ bias)``, PyTorch nn.Linear layout."""
    y = x @ w.T
    return y if bias is None else y + bias


def qkv_projection(x, w, bias, clip, num_heads, num_kv_heads, head_dim):
    """Step 1: stacked weight ``w`` (and bias), weights clamped to ``[-clip, clip]``."""
    if clip is not None:
        w = w.clamp(-clip, clip)
    qkv = linear(x, w, bias)
    nq, nkv = num_heads * head_dim, num_kv_heads * head_dim
    t = qkv.shape[0]
    return (qkv[:, :nq].reshape(t, num_heads, head_dim),
            qkv[:, nq:nq + nkv].reshape(t, num_kv_heads, head_dim),
            qkv[:, nq + nkv:].reshape(t, num_kv_heads, head_dim))


def rms_norm(x, gamma, eps):
    """Step 2: ``x * rsqrt(mean(x^2) + eps) * gamma`` over the last dim."""
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * gamma


def apply_rope(x, row_offsets, cache_lengths, rope):
    """Step 3: rotates ``x [T, heads, D]`` at each row's position."""
    pos, _ = positions(row_offsets, cache_lengths)
    if pos.numel() == 0:
        return x.clone()
    d = x.shape[-1]
    table = torch.from_numpy(ref.rope_table(rope, d, int(pos.max()) + 1)).to(x.device)[pos]
    cos, sin = table[:, None, 0::2], table[:, None, 1::2]
    halves = (slice(0, None, 2), slice(1, None, 2)) if rope["interleaved"] else \
        (slice(0, d // 2), slice(d // 2, d))
    xa, xb = x[..., halves[0]], x[..., halves[1]]
    out = torch.empty_like(x)
    out[..., halves[0]] = xa * cos - xb * sin
    out[..., halves[1]] = xa * sin + xb * cos
    return out


def kv_cache_store(blocks, k, v, row_offsets, cache_lengths, lookup_table, layer):
    """Step 4: a copy of ``blocks [P,2,L,page,Hkv,D]`` with each new row's k and v written."""
    out = blocks.clone()
    page_ids, slots = page_slots(row_offsets, cache_lengths, lookup_table, blocks.shape[3])
    out[page_ids, 0, layer, slots] = k.to(out.dtype)
    out[page_ids, 1, layer, slots] = v.to(out.dtype)
    return out


def _visible(q_pos, k_pos, mask):
    kind = mask.get("kind", "causal")
    qp, kp = q_pos[:, None], k_pos[None, :]
    if kind == "none":
        return torch.ones(len(q_pos), len(k_pos), dtype=torch.bool, device=q_pos.device)
    if kind == "causal":
        return kp <= qp
    if kind == "sliding_window":
        return (kp <= qp) & (qp - kp < mask["window"])
    raise ValueError(f"unknown mask kind {kind!r}")


def attend(q, k, v, q_pos, mask, scale):
    """Step 5 for one sequence: ``q [n,H,D]``, ``k, v [S,Hkv,D]`` -> ``[n,H,D]``; masked keys
    excluded exactly, rows without a visible key give zeros; contiguous GQA groups."""
    group = q.shape[1] // k.shape[1]
    kh, vh = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    s = scale * torch.einsum("nhd,shd->hns", q, kh)
    vis = _visible(q_pos, torch.arange(k.shape[0], device=q.device), mask)[None]
    s = s.masked_fill(~vis, -math.inf)
    row_max = s.amax(-1, keepdim=True) if s.shape[-1] else torch.zeros_like(s[..., :1])
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    p = torch.where(vis, torch.exp(s - row_max), torch.zeros_like(s))
    denom = p.sum(-1, keepdim=True)
    p = p / torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.einsum("hns,shd->nhd", p, vh)


def _scale(scale, head_dim):
    return 1.0 / math.sqrt(head_dim) if scale is None else float(scale)


def flash_attention(q, k, v, q_row_offsets, kv_row_offsets, mask, scale=None):
    """Step 5 over explicit ragged K/V; query rows bottom-right aligned to the keys."""
    scale = _scale(scale, q.shape[-1])
    qo, ko = q_row_offsets.tolist(), kv_row_offsets.tolist()
    out = torch.zeros_like(q)
    for b in range(len(qo) - 1):
        q_len, kv_len = qo[b + 1] - qo[b], ko[b + 1] - ko[b]
        q_pos = torch.arange(kv_len - q_len, kv_len, device=q.device)
        out[qo[b]:qo[b + 1]] = attend(q[qo[b]:qo[b + 1]], k[ko[b]:ko[b + 1]],
                                      v[ko[b]:ko[b + 1]], q_pos, mask, scale)
    return out


def paged_attention(q, blocks, cache_lengths, lookup_table, row_offsets, layer, mask,
                    scale=None):
    """Step 5 over the paged cache: sequence b's keys ``[0, cache_len + seq_len)``."""
    scale = _scale(scale, q.shape[-1])
    off, lengths = row_offsets.tolist(), cache_lengths.tolist()
    page = blocks.shape[3]
    out = torch.zeros_like(q)
    for b in range(len(off) - 1):
        n, c = off[b + 1] - off[b], lengths[b]
        if n == 0:
            continue
        j = torch.arange(c + n, device=q.device)
        pages = lookup_table[b].long()[j // page]
        k, v = blocks[pages, 0, layer, j % page], blocks[pages, 1, layer, j % page]
        out[off[b]:off[b + 1]] = attend(q[off[b]:off[b + 1]], k, v,
                                        c + torch.arange(n, device=q.device), mask, scale)
    return out


def layer(cfg, a):
    """Steps 1-6 of ``ir.layer_function(_, cfg)``: ``(out [T, hidden], new blocks)``.

    ``a``: the function's arguments by name (``cfg.weight_names()``), float64 values and
    integer index tensors.
    """
    def cat(names):
        return torch.cat([a[n] for n in names])

    w = cat(["wqkv"] if cfg.stacked else ["wq", "wk", "wv"])
    bias = cat(["bqkv"] if cfg.stacked else ["bq", "bk", "bv"]) if cfg.bias else None
    q, k, v = qkv_projection(a["x"], w, bias, cfg.clip, cfg.num_heads, cfg.num_kv_heads,
                             cfg.head_dim)
    if cfg.qk_norm:
        q = rms_norm(q, a["q_norm"], cfg.rms_norm_eps)
        k = rms_norm(k, a["k_norm"], cfg.rms_norm_eps)
    q = apply_rope(q, a["row_offsets"], a["cache_lengths"], cfg.rope)
    k = apply_rope(k, a["row_offsets"], a["cache_lengths"], cfg.rope)
    blocks = kv_cache_store(a["blocks"], k, v, a["row_offsets"], a["cache_lengths"],
                            a["lookup_table"], cfg.layer_idx)
    o = paged_attention(q, blocks, a["cache_lengths"], a["lookup_table"], a["row_offsets"],
                        cfg.layer_idx, cfg.mask, cfg.scale)
    return linear(o.reshape(o.shape[0], -1), a["wo"]), blocks
