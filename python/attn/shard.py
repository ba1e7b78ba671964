"""Per-rank inputs of a layer sharded by ``attn-shard`` (docs/Sharding.md), and their inverse.

Tensor parallel over N ranks: rank r owns query heads [r H/N, (r+1) H/N) and kv heads likewise:
those rows of wq / wk / wv and their biases (a stacked weight or bias keeps its q, k and v rows
of the rank, in that order), those columns of wo, those kv heads of the cache blocks. Everything
else (x, row offsets, cache lengths, lookup table, qk-norm gammas) is replicated.

Data parallel over N ranks: rank r runs the whole layer on a contiguous run of sequences (its
rows of x, its row offsets rebased to 0, its cache lengths and lookup rows) with its own copy of
the cache blocks. A rank may get no sequence.

Arrays are the ABI arrays of ``ir.random_layer_inputs`` (by argument name, in order).
"""

import dataclasses

import numpy as np

QKV_WEIGHTS = ("wq", "wk", "wv", "wqkv", "bq", "bk", "bv", "bqkv")


def _check_divides(cfg, devices):
    if cfg.num_heads % devices or cfg.num_kv_heads % devices:
        raise ValueError(f"cannot split {cfg.num_heads} query heads and {cfg.num_kv_heads} kv "
                         f"heads evenly over {devices} devices")


def tensor_parallel_config(cfg, devices):
    """The per-rank LayerConfig (the types of the function attn-shard leaves)."""
    _check_divides(cfg, devices)
    return dataclasses.replace(cfg, num_heads=cfg.num_heads // devices,
                               num_kv_heads=cfg.num_kv_heads // devices)


def _qkv_parts(cfg):
    """(start, rows) of q, k and v in a stacked weight or bias."""
    q, kv = cfg.q_rows, cfg.kv_rows
    return [(0, q), (q, kv), (q + kv, kv)]


def _head_rows(start, rows, rank, devices):
    """The rows of rank ``rank`` among ``rows`` rows starting at ``start``."""
    share = rows // devices
    return slice(start + rank * share, start + (rank + 1) * share)


def tensor_parallel_shard(cfg, inputs, rank, devices):
    """Rank ``rank``'s arguments of the tensor-parallel layer."""
    _check_divides(cfg, devices)
    q_part, k_part, v_part = _qkv_parts(cfg)
    rows_of = {"wq": q_part, "bq": q_part, "wk": (0, cfg.kv_rows), "bk": (0, cfg.kv_rows),
               "wv": (0, cfg.kv_rows), "bv": (0, cfg.kv_rows)}
    kv_share = cfg.num_kv_heads // devices
    shard = {}
    for name, array in inputs.items():
        if name in rows_of:
            shard[name] = array[_head_rows(*rows_of[name], rank, devices)]
        elif name in ("wqkv", "bqkv"):
            shard[name] = np.concatenate(
                [array[_head_rows(*part, rank, devices)] for part in (q_part, k_part, v_part)])
        elif name == "wo":
            shard[name] = array[:, _head_rows(0, cfg.q_rows, rank, devices)]
        elif name == "blocks":
            shard[name] = array[..., rank * kv_share:(rank + 1) * kv_share, :]
        else:
            shard[name] = array
        shard[name] = np.ascontiguousarray(shard[name])
    return shard


def tensor_parallel_merge(cfg, shards):
    """The full arguments from every rank's (the inverse of tensor_parallel_shard)."""
    devices = len(shards)
    merged = {}
    for name, first in shards[0].items():
        parts = [s[name] for s in shards]
        if name in ("wq", "wk", "wv", "bq", "bk", "bv"):
            merged[name] = np.concatenate(parts)
        elif name in ("wqkv", "bqkv"):
            local = tensor_parallel_config(cfg, devices)
            merged[name] = np.concatenate(
                [p[start:start + rows] for start, rows in _qkv_parts(local) for p in parts])
        elif name == "wo":
            merged[name] = np.concatenate(parts, axis=1)
        elif name == "blocks":
            merged[name] = np.concatenate(parts, axis=-2)
        else:
            if any(not np.array_equal(first, p) for p in parts):
                raise ValueError(f"replicated argument {name} differs between ranks")
            merged[name] = first
    return merged


def data_parallel_sequences(batch, rank, devices):
    """The sequences [begin, end) of rank ``rank``: contiguous, as even as possible."""
    return batch * rank // devices, batch * (rank + 1) // devices


def data_parallel_shard(inputs, rank, devices):
    """Rank ``rank``'s arguments of the data-parallel layer (its own copy of the cache)."""
    offsets = inputs["row_offsets"]
    begin, end = data_parallel_sequences(len(offsets) - 1, rank, devices)
    rows = slice(int(offsets[begin]), int(offsets[end]))
    shard = dict(inputs)
    shard["x"] = inputs["x"][rows]
    shard["row_offsets"] = (offsets[begin:end + 1] - offsets[begin]).astype(offsets.dtype)
    shard["cache_lengths"] = inputs["cache_lengths"][begin:end]
    shard["lookup_table"] = inputs["lookup_table"][begin:end]
    shard["blocks"] = inputs["blocks"].copy()
    return {name: np.ascontiguousarray(array) for name, array in shard.items()}


def data_parallel_merge(shards):
    """x, row offsets, cache lengths and lookup table of the whole batch from every rank's."""
    offsets, rows = [shards[0]["row_offsets"][:1]], 0
    for s in shards:
        offsets.append(s["row_offsets"][1:] + rows)
        rows += len(s["x"])
    return {
        "x": np.concatenate([s["x"] for s in shards]),
        "row_offsets": np.concatenate(offsets),
        "cache_lengths": np.concatenate([s["cache_lengths"] for s in shards]),
        "lookup_table": np.concatenate([s["lookup_table"] for s in shards]),
    }
