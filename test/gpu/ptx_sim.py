"""A small PTX interpreter: the instructions of the projection kernels and of attention's
decode kernel and combine (integer and f32 arithmetic, ex2, rcp, bf16x2 / f16x2 adds, prmt,
shfl.sync idx / bfly, vote.any, ld / st, cp.async with commit / wait groups, ldmatrix (.trans
too), mma.sync m16n8k16, wgmma.mma_async (bf16, f16, E4M3; K-major operands with the 128-byte
swizzle; bf16 / f16 A from registers), bar.sync with named barriers; mbarriers and 2-D TMA box
copies with the 128-byte swizzle; grids of up to three dimensions), so that a kernel can be
checked on a machine without a GPU.

One block at a time; each instruction runs for all threads at the lowest program counter at
once (numpy arrays over the threads). `bar.sync id, n` holds its threads until n of them
(by default every live thread) wait at barrier id; ldmatrix, mma.sync and shfl wait until
their warp's live lanes are all at them, wgmma until its warpgroup's 128 threads are.
cp.async copies land at the cp.async.wait_group that must see them (the latest they may), so
that reading a stage before waiting for it, or refilling one still read, gives wrong
results. TMA copies (`cp.async.bulk.tensor.2d`, through the tensor maps the caller gives by
parameter index) land when an mbarrier.try_wait.parity completes their phase: the phase
needs its arrivals and exactly the bytes they expected. A thread whose wait fails sleeps
until the mbarrier changes; a run where every live thread sleeps or waits fails (deadlock),
and so do arrivals beyond a phase's count and bytes beyond what it expected. wgmma products
land at issue (the wait_group is a no-op), summed in f64 and rounded to f32 once per
instruction. Static shared arrays (the mbarriers) lie before the dynamic shared memory. Not
modelled: memory ordering between threads other than through barriers, bank conflicts,
timing."""
import re
import numpy as np

M32 = np.uint64(0xFFFFFFFF)
PARAM_BASE = 1 << 40


def f32_of(bits):
    return (bits & M32).astype(np.uint32).view(np.float32)


def bits_of_f32(v):
    return np.asarray(v, dtype=np.float32).view(np.uint32).astype(np.uint64)


def bf16_to_f32(h):
    return ((h.astype(np.uint64) & np.uint64(0xFFFF)) << np.uint64(16)).astype(np.uint32).view(np.float32)


def f32_to_bf16(v):
    b = np.asarray(v, dtype=np.float32).view(np.uint32).astype(np.uint64)
    lsb = (b >> np.uint64(16)) & np.uint64(1)
    return ((b + np.uint64(0x7FFF) + lsb) >> np.uint64(16)) & np.uint64(0xFFFF)


def f16_to_f32(h):
    return (h.astype(np.uint64) & np.uint64(0xFFFF)).astype(np.uint16).view(np.float16).astype(np.float32)


def f32_to_f16(v):
    return np.asarray(v, dtype=np.float32).astype(np.float16).view(np.uint16).astype(np.uint64)


def e4m3_to_f32(b):
    """E4M3 (fn: no infinities, 0x7F / 0xFF NaN) bytes as floats."""
    b = np.asarray(b).astype(np.int64)
    sign = np.where(b & 0x80, -1.0, 1.0)
    exp, man = (b >> 3) & 0xF, b & 7
    v = np.where(exp == 0, man / 8.0 * 2.0 ** -6, (1 + man / 8.0) * 2.0 ** (exp - 7.0))
    return np.where((b & 0x7F) == 0x7F, np.nan, sign * v)


def scope_inline_asm(text):
    """Inline-asm blocks `{ .reg .pred p; ... label: ... bra label; }` (or a register of any
    type: `{ .reg .u64 g; ... }`) as plain statements: their register and labels renamed apart
    (%p_N, $label_N). A block may span lines and hold braces of its own (a wgmma's register
    list)."""
    out, pos, n = [], 0, 0
    opening = re.compile(r"\{\s*\.reg\s+\.\w+\s+(\w+);")
    while True:
        m = opening.search(text, pos)
        if not m:
            return "".join(out) + text[pos:]
        depth, end = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        n += 1
        pred, body = m.group(1), text[m.end():end - 1]
        body = re.sub(rf"\b{pred}\b", f"%{pred}_{n}", body)
        for label in re.findall(r"(?:^|;)\s*(\w+):", body):
            body = re.sub(rf"\b{label}:", f"${label}_{n}:", body)
            body = re.sub(rf"bra(\.uni)?\s+{label}\b", f"bra ${label}_{n}", body)
        out.append(text[pos:m.start()] + body)
        pos = end


def parse(ptx, entry):
    """(statements, labels, static shared arrays {name: (alignment, bytes)}) of `entry`."""
    start = ptx.index(f".entry {entry}(")
    body = ptx[start:]
    body = body[body.index("{", body.index(")")) + 1:]
    # The entry's body ends at the "}" that closes it (inline asm nests its own braces).
    lines = body.split("\n")
    text, depth = [], 0
    for ln in lines:
        code = ln.split("//")[0].strip()
        depth += code.count("{") - code.count("}")
        if depth < 0:
            break
        text.append(ln.split("//")[0])
    shared = {m.group(2): (int(m.group(1)), int(m.group(3))) for m in re.finditer(
        r"\.shared\s+\.align\s+(\d+)\s+\.b8\s+(\w+)\[(\d+)\]", "\n".join(text))}
    stmts, labels = [], {}
    for part in scope_inline_asm("\n".join(text)).split(";"):
        part = part.strip()
        while True:
            m = re.match(r"^(\$\w+):\s*", part)
            if not m:
                break
            labels[m.group(1)] = len(stmts)
            part = part[m.end():]
        if not part or part.startswith("."):
            continue
        stmts.append(part)
    return stmts, labels, shared


def split_operands(s):
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "{[":
            depth += 1
        if ch in "}]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


class TensorMap:
    """A 2-D TMA tensor map as the host encodes it: `rows` x `cols` elements of
    `elem_bytes` at `base`, rows `row_bytes` apart; boxes of `box_rows` x `box_cols`
    elements (128 bytes a row, 128-byte swizzle); reads outside the tensor give zeros."""

    def __init__(self, base, elem_bytes, rows, cols, row_bytes, box_rows, box_cols):
        self.base, self.elem_bytes = base, elem_bytes
        self.rows, self.cols, self.row_bytes = rows, cols, row_bytes
        self.box_rows, self.box_cols = box_rows, box_cols
        assert box_cols * elem_bytes == 128

    def box(self, gmem, col, row):
        """The box at element (col, row) as box_rows rows of 128 bytes."""
        if self.rows == 0:
            raise RuntimeError("a TMA load through the map of an empty tensor")
        out = np.zeros((self.box_rows, 128), dtype=np.uint8)
        w = self.elem_bytes
        for r in range(self.box_rows):
            if not 0 <= row + r < self.rows:
                continue
            first, last = max(col, 0), min(col + self.box_cols, self.cols)
            if first >= last:
                continue
            a = self.base + (row + r) * self.row_bytes + first * w
            out[r, (first - col) * w:(last - col) * w] = gmem[a:a + (last - first) * w]
        return out


class Block:
    def __init__(self, stmts, labels, params, gmem, smem_bytes, ctaid, ntid, smem_base=16,
                 tensor_maps=None, nctaid=(1, 1), shared=None):
        self.stmts, self.labels, self.params = stmts, labels, params
        # Tensor maps by kernel parameter index; mbarriers by shared address.
        self.tensor_maps = tensor_maps or {}
        self.mbarriers = {}
        self.gmem = gmem
        self.T = ntid
        # Static shared arrays first, then the dynamic shared memory.
        self.symbols = {}
        for name, (align, size) in (shared or {}).items():
            smem_base = -(-smem_base // align) * align
            self.symbols[name] = smem_base
            smem_base += size
        self.smem_base = -(-smem_base // 16) * 16
        self.smem = np.zeros(self.smem_base + smem_bytes + 64, dtype=np.uint8)
        # The mbarrier each thread waits on (-1: none); bar.sync's id per waiting thread.
        self.blocked = np.full(self.T, -1, dtype=np.int64)
        # Grids of one or two dimensions extend with 1s (z = 0).
        self.ctaid = tuple(ctaid) + (0,) * (3 - len(ctaid))
        self.nctaid = tuple(nctaid) + (1,) * (3 - len(nctaid))
        self.regs = {}
        self.pc = np.zeros(self.T, dtype=np.int64)
        self.done = np.zeros(self.T, dtype=bool)
        # cp.async: per thread a list of groups, each a list of (dst, bytes)
        self.pending = [[] for _ in range(self.T)]
        self.uncommitted = [[] for _ in range(self.T)]

    # values -------------------------------------------------------------
    def val(self, op, mask):
        op = op.strip()
        if op.startswith("%"):
            if op == "%tid.x":
                return np.arange(self.T, dtype=np.uint64)
            if op == "%ctaid.x":
                return np.full(self.T, self.ctaid[0], dtype=np.uint64)
            if op in ("%ctaid.y", "%ctaid.z"):
                return np.full(self.T, self.ctaid["xyz".index(op[-1])], dtype=np.uint64)
            if op in ("%nctaid.x", "%nctaid.y", "%nctaid.z"):
                return np.full(self.T, self.nctaid["xyz".index(op[-1])], dtype=np.uint64)
            if op == "%ntid.x":
                return np.full(self.T, self.T, dtype=np.uint64)
            return self.regs[op].copy()
        if op == "__dynamic_shmem__0":
            return np.full(self.T, self.smem_base, dtype=np.uint64)
        if op in self.symbols:
            return np.full(self.T, self.symbols[op], dtype=np.uint64)
        m = re.search(r"_param_(\d+)$", op)
        if m:
            return np.full(self.T, PARAM_BASE + 8 * int(m.group(1)), dtype=np.uint64)
        if op.startswith("0f"):
            return np.full(self.T, int(op[2:], 16), dtype=np.uint64)
        if op.startswith("0x"):
            return np.full(self.T, int(op, 16), dtype=np.uint64)
        v = int(op)
        return np.full(self.T, v & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64)

    def setreg(self, name, value, mask, width=64):
        value = np.asarray(value).astype(np.uint64)
        if width == 32:
            value = value & M32
        elif width == 16:
            value = value & np.uint64(0xFFFF)
        elif width == 1:
            value = value & np.uint64(1)
        old = self.regs.get(name)
        if old is None:
            old = np.zeros(self.T, dtype=np.uint64)
        self.regs[name] = np.where(mask, value, old)

    def addr(self, op, mask):
        m = re.match(r"^\[([^\]+]+)(?:\+(-?\d+))?\]$", op.strip())
        base, off = m.group(1), int(m.group(2) or 0)
        if base.startswith("%"):
            a = self.regs[base].copy()
        elif base == "__dynamic_shmem__0":
            a = np.full(self.T, self.smem_base, dtype=np.uint64)
        elif base in self.symbols:
            a = np.full(self.T, self.symbols[base], dtype=np.uint64)
        else:
            raise ValueError(base)
        return (a + np.uint64(off & 0xFFFFFFFFFFFFFFFF))

    # memory ---------------------------------------------------------------
    def mem_read(self, space, addr, nbytes):
        buf = self.smem if space == "shared" else self.gmem
        a = int(addr)
        if a + nbytes > len(buf) or a < 0:
            raise IndexError(f"{space} read out of bounds at {a:#x}")
        return buf[a:a + nbytes]

    def mem_write(self, space, addr, data):
        buf = self.smem if space == "shared" else self.gmem
        a = int(addr)
        if a + len(data) > len(buf):
            raise IndexError(f"{space} write out of bounds at {a:#x}")
        buf[a:a + len(data)] = data

    # execution ------------------------------------------------------------
    def collective(self, pc):
        """The threads that must reach statement `pc` together: 32 (a warp), 128 (a
        warpgroup, for wgmma) or 0 (none)."""
        s = self.stmts[pc]
        if s.startswith("wgmma.mma_async"):
            return 128
        return 32 if s.startswith(("ldmatrix", "mma", "shfl", "vote")) else 0

    def run(self, max_steps=10_000_000):
        """Lowest-PC threads first. `bar.sync id[, n]` holds its threads until n (default:
        every live thread) wait at barrier id; a collective op waits until its warp's (or
        warpgroup's) live threads are all at it; a thread whose mbarrier wait fails sleeps
        until that mbarrier changes."""
        steps = 0
        waiting = np.full(self.T, -1, dtype=np.int64)  # the bar.sync id each thread waits at
        while not self.done.all():
            ready = ~self.done & (waiting < 0) & (self.blocked < 0)
            for pc in np.unique(self.pc[ready]):
                mask = ready & (self.pc == pc)
                stmt = self.stmts[pc]
                if stmt.startswith("bar.sync"):
                    ops = split_operands(stmt.split(None, 1)[1])
                    waiting[mask] = int(ops[0])
                    count = int(ops[1]) if len(ops) > 1 else int((~self.done).sum())
                    at = waiting == int(ops[0])
                    if at.sum() >= count:
                        self.pc[at] += 1
                        waiting[at] = -1
                    break
                size = self.collective(pc)
                if size:
                    lanes = np.nonzero(mask)[0]
                    whole = all((mask | self.done)[g * size:(g + 1) * size].all()
                                for g in set(int(l) // size for l in lanes))
                    if not whole:
                        continue
                self.step(pc, mask)
                break
            else:
                raise RuntimeError(
                    f"deadlock: {int((waiting >= 0).sum())} threads at bar.sync, "
                    f"{int((self.blocked >= 0).sum())} waiting on mbarriers "
                    f"{sorted(set(int(b) for b in self.blocked if b >= 0))}")
            steps += 1
            if steps > max_steps:
                raise RuntimeError("too many steps")

    def step(self, pc, mask):
        s = self.stmts[pc]
        pred = None
        if s.startswith("@"):
            m = re.match(r"^@(!?)(%\w+)\s+(.*)$", s, re.S)
            neg, preg, s = m.group(1), m.group(2), m.group(3)
            p = (self.regs[preg] & np.uint64(1)).astype(bool)
            pred = ~p if neg else p
        parts = s.split(None, 1)
        opcode = parts[0]
        ops = split_operands(parts[1]) if len(parts) > 1 else []
        exec_mask = mask if pred is None else mask & pred
        self.pc[mask] += 1
        name = opcode.split(".")
        op = name[0]
        if op == "bra":
            target = self.labels[ops[0]]
            self.pc[exec_mask] = target
            return
        if op == "ret":
            self.done[exec_mask] = True
            return
        getattr(self, "op_" + op)(name, ops, exec_mask, pc)

    # ops ------------------------------------------------------------------
    def width(self, t):
        if t in ("pred",):
            return 1
        return {"8": 8, "16": 16, "32": 32, "64": 64}[re.sub(r"[a-z]", "", t)[:2]] if t not in ("bf16x2", "f16x2") else 32

    def op_ld(self, name, ops, mask, pc):
        space = name[1]
        if space == "param":
            m = re.search(r"_param_(\d+)", ops[1])
            if m:
                idx = np.full(self.T, int(m.group(1)))
            else:
                idx = ((self.addr(ops[1], mask) - np.uint64(PARAM_BASE)) // np.uint64(8)).astype(np.int64)
                idx = np.where(mask, idx, 0)
            vals = np.array([self.params[i] for i in idx], dtype=np.uint64)
            self.setreg(ops[0], vals, mask)
            return
        # Qualifiers (.nc, .L1::no_allocate, .L2::256B: caching hints) do not change the values.
        vec = next((int(q[1:]) for q in name[2:] if re.fullmatch(r"v\d+", q)), 1)
        t = name[-1]
        w = self.width(t) // 8
        dsts = [d.strip() for d in ops[0].strip("{}").split(",")] if vec > 1 else [ops[0]]
        addrs = self.addr(ops[1], mask)
        vals = np.zeros((vec, self.T), dtype=np.uint64)
        for i in np.nonzero(mask)[0]:
            raw = self.mem_read(space, addrs[i], w * vec)
            for j in range(vec):
                vals[j, i] = int.from_bytes(raw[j * w:(j + 1) * w].tobytes(), "little")
        for j, d in enumerate(dsts):
            self.setreg(d, vals[j], mask, 8 * w)

    def op_st(self, name, ops, mask, pc):
        space = name[1]
        t = name[-1]
        vec = 1
        if name[2].startswith("v"):
            vec = int(name[2][1:])
        w = self.width(t) // 8
        srcs = [d.strip() for d in ops[1].strip("{}").split(",")] if vec > 1 else [ops[1]]
        addrs = self.addr(ops[0], mask)
        vals = [self.val(s_, mask) for s_ in srcs]
        for i in np.nonzero(mask)[0]:
            data = b"".join(int(v[i] & np.uint64((1 << (8 * w)) - 1)).to_bytes(w, "little")
                            for v in vals)
            self.mem_write(space, addrs[i], np.frombuffer(data, dtype=np.uint8))

    def op_cvta(self, name, ops, mask, pc):
        self.setreg(ops[0], self.val(ops[1], mask), mask)

    def op_mov(self, name, ops, mask, pc):
        t = name[-1]
        if ops[0].startswith("{"):
            dsts = [d.strip() for d in ops[0].strip("{}").split(",")]
            v = self.val(ops[1], mask)
            for j, d in enumerate(dsts):
                self.setreg(d, v >> np.uint64(16 * j), mask, 16)
            return
        if ops[1].startswith("{"):  # packing: the first source in the low bits
            srcs = [p_.strip() for p_ in ops[1].strip("{}").split(",")]
            part = self.width(t) // len(srcs)
            v = np.zeros(self.T, dtype=np.uint64)
            for j, src in enumerate(srcs):
                v |= (self.val(src, mask) & np.uint64((1 << part) - 1)) << np.uint64(part * j)
            self.setreg(ops[0], v, mask, self.width(t))
            return
        self.setreg(ops[0], self.val(ops[1], mask), mask, self.width(t))

    def _int(self, t, v):
        w = self.width(t)
        v = v & (np.uint64((1 << w) - 1) if w < 64 else np.uint64(0xFFFFFFFFFFFFFFFF))
        if t.startswith("s"):
            v = v.astype(np.int64) if w == 64 else np.where(v >= np.uint64(1 << (w - 1)),
                                                               v.astype(np.int64) - (1 << w),
                                                               v.astype(np.int64))
        return v

    def binop(self, name, ops, mask, f):
        t = name[-1]
        a, b = self._int(t, self.val(ops[1], mask)), self._int(t, self.val(ops[2], mask))
        with np.errstate(over="ignore"):
            r = f(a, b)
        self.setreg(ops[0], np.asarray(r).astype(np.int64).astype(np.uint64) if t.startswith("s") else r,
                    mask, self.width(t))

    def op_add(self, name, ops, mask, pc):
        t = name[-1]
        if t in ("bf16x2", "f16x2"):
            a, b = self.val(ops[1], mask), self.val(ops[2], mask)
            cv, back = (bf16_to_f32, f32_to_bf16) if t == "bf16x2" else (f16_to_f32, f32_to_f16)
            lo = back(cv(a) + cv(b))
            hi = back(cv(a >> np.uint64(16)) + cv(b >> np.uint64(16)))
            self.setreg(ops[0], lo | (hi << np.uint64(16)), mask, 32)
            return
        if t == "f32":
            r = f32_of(self.val(ops[1], mask)) + f32_of(self.val(ops[2], mask))
            self.setreg(ops[0], bits_of_f32(r), mask, 32)
            return
        self.binop(name, ops, mask, lambda a, b: a + b)

    def f32_binop(self, ops, mask, f):
        a, b = f32_of(self.val(ops[1], mask)), f32_of(self.val(ops[2], mask))
        with np.errstate(all="ignore"):
            self.setreg(ops[0], bits_of_f32(f(a, b)), mask, 32)

    def op_min(self, name, ops, mask, pc):
        if name[-1] == "f32":  # .NaN propagates NaN; plain min returns the other operand
            self.f32_binop(ops, mask, np.minimum if "NaN" in name else np.fmin)
            return
        self.binop(name, ops, mask, np.minimum)

    def op_max(self, name, ops, mask, pc):
        if name[-1] == "f32":
            self.f32_binop(ops, mask, np.maximum if "NaN" in name else np.fmax)
            return
        self.binop(name, ops, mask, np.maximum)

    def op_div(self, name, ops, mask, pc):
        if name[-1] == "f32":  # IEEE division (div.rn; div.full / approx are within 2 ulp)
            self.f32_binop(ops, mask, np.divide)
            return
        self.binop(name, ops, mask, lambda a, b: a // np.where(b == 0, 1, b))

    def op_neg(self, name, ops, mask, pc):
        assert name[-1] == "f32", name
        self.setreg(ops[0], bits_of_f32(-f32_of(self.val(ops[1], mask))), mask, 32)

    def op_rcp(self, name, ops, mask, pc):
        """rcp.rn.f32 (rcp.approx is within 1 ulp)."""
        a = f32_of(self.val(ops[1], mask))
        with np.errstate(all="ignore"):
            self.setreg(ops[0], bits_of_f32(np.float32(1.0) / a), mask, 32)

    def op_ex2(self, name, ops, mask, pc):
        """ex2.approx.f32 as the exact 2^x rounded to f32 (the hardware's is within 2 ulp)."""
        a = f32_of(self.val(ops[1], mask)).astype(np.float64)
        with np.errstate(all="ignore"):
            self.setreg(ops[0], bits_of_f32(np.exp2(a).astype(np.float32)), mask, 32)

    def op_rem(self, name, ops, mask, pc):
        self.binop(name, ops, mask, lambda a, b: a % np.where(b == 0, 1, b))

    def op_sub(self, name, ops, mask, pc):
        if name[-1] == "f32":
            self.f32_binop(ops, mask, np.subtract)
            return
        self.binop(name, ops, mask, lambda a, b: a - b)

    def op_and(self, name, ops, mask, pc):
        if name[-1] == "pred":
            self.setreg(ops[0], self.val(ops[1], mask) & self.val(ops[2], mask), mask, 1)
            return
        self.binop(name, ops, mask, lambda a, b: a & b)

    def op_or(self, name, ops, mask, pc):
        if name[-1] == "pred":
            self.setreg(ops[0], self.val(ops[1], mask) | self.val(ops[2], mask), mask, 1)
            return
        self.binop(name, ops, mask, lambda a, b: a | b)

    def op_xor(self, name, ops, mask, pc):
        if name[-1] == "pred":
            self.setreg(ops[0], self.val(ops[1], mask) ^ self.val(ops[2], mask), mask, 1)
            return
        self.binop(name, ops, mask, lambda a, b: a ^ b)

    def op_not(self, name, ops, mask, pc):
        if name[-1] == "pred":
            self.setreg(ops[0], np.uint64(1) ^ (self.val(ops[1], mask) & np.uint64(1)), mask, 1)
            return
        self.setreg(ops[0], ~self.val(ops[1], mask), mask, self.width(name[-1]))

    def op_shl(self, name, ops, mask, pc):
        t = name[-1]
        a, b = self.val(ops[1], mask), self.val(ops[2], mask) & np.uint64(0xFF)
        w = self.width(t)
        r = np.where(b >= np.uint64(w), np.uint64(0), a << np.minimum(b, np.uint64(63)))
        self.setreg(ops[0], r, mask, w)

    def op_shr(self, name, ops, mask, pc):
        t = name[-1]
        w = self.width(t)
        a = self._int(t, self.val(ops[1], mask))
        b = (self.val(ops[2], mask) & np.uint64(0xFF)).astype(np.int64)
        if t.startswith("s"):
            r = (a >> np.minimum(b, w - 1)).astype(np.uint64)
        else:
            r = np.where(b >= w, np.uint64(0), a >> np.minimum(b, 63).astype(np.uint64))
        self.setreg(ops[0], r, mask, w)

    def op_mul(self, name, ops, mask, pc):
        mode, t = name[1], name[-1]
        if t == "f32":
            r = f32_of(self.val(ops[1], mask)) * f32_of(self.val(ops[2], mask))
            self.setreg(ops[0], bits_of_f32(r), mask, 32)
            return
        a, b = self._int(t, self.val(ops[1], mask)), self._int(t, self.val(ops[2], mask))
        with np.errstate(over="ignore"):
            r = a.astype(np.uint64) * b.astype(np.uint64)
        if mode == "hi":
            w = self.width(t)
            r = np.array([((int(x) * int(y)) >> w) & ((1 << w) - 1) for x, y in zip(a, b)],
                         dtype=np.uint64)
            self.setreg(ops[0], r, mask, w)
        elif mode == "wide":
            self.setreg(ops[0], r, mask, 2 * self.width(t))
        elif mode == "lo":
            self.setreg(ops[0], r, mask, self.width(t))
        else:
            raise NotImplementedError(name)

    def op_mad(self, name, ops, mask, pc):
        mode, t = name[1], name[-1]
        a, b = self.val(ops[1], mask), self.val(ops[2], mask)
        c = self.val(ops[3], mask)
        w = self.width(t)
        if mode == "wide":
            w *= 2
            a, b = a & M32, b & M32
        with np.errstate(over="ignore"):
            r = a * b + c
        self.setreg(ops[0], r, mask, w)

    def op_bfe(self, name, ops, mask, pc):
        t = name[-1]
        a = self.val(ops[1], mask)
        pos = self.val(ops[2], mask)
        ln = self.val(ops[3], mask)
        r = (a >> pos) & ((np.uint64(1) << ln) - np.uint64(1))
        if t.startswith("s"):
            raise NotImplementedError
        self.setreg(ops[0], r, mask, self.width(t))

    def op_selp(self, name, ops, mask, pc):
        p = (self.val(ops[3], mask) & np.uint64(1)).astype(bool)
        self.setreg(ops[0], np.where(p, self.val(ops[1], mask), self.val(ops[2], mask)), mask,
                    self.width(name[-1]))

    def op_setp(self, name, ops, mask, pc):
        cmp, t = name[1], name[-1]
        if t == "f32":
            a, b = f32_of(self.val(ops[1], mask)), f32_of(self.val(ops[2], mask))
        else:
            a, b = self._int(t, self.val(ops[1], mask)), self._int(t, self.val(ops[2], mask))
        r = {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b, "eq": a == b, "ne": a != b,
             "lo": a < b, "ls": a <= b, "hi": a > b, "hs": a >= b}[cmp]
        self.setreg(ops[0], r.astype(np.uint64), mask, 1)

    def op_cvt(self, name, ops, mask, pc):
        types = [n for n in name[1:] if n not in ("rn", "rzi", "sat")]
        dt, st = types[0], types[1]
        if dt == "bf16x2" and st == "f32" or dt == "f16x2" and st == "f32":
            back = f32_to_bf16 if dt == "bf16x2" else f32_to_f16
            hi = back(f32_of(self.val(ops[1], mask)))
            lo = back(f32_of(self.val(ops[2], mask)))
            self.setreg(ops[0], lo | (hi << np.uint64(16)), mask, 32)
            return
        if dt in ("bf16", "f16") and st == "f32":
            back = f32_to_bf16 if dt == "bf16" else f32_to_f16
            self.setreg(ops[0], back(f32_of(self.val(ops[1], mask))), mask, 16)
            return
        if dt == "f32" and st in ("s32", "u32", "s64", "u64"):
            v = self._int(st, self.val(ops[1], mask)).astype(np.float64)
            self.setreg(ops[0], bits_of_f32(v.astype(np.float32)), mask, 32)
            return
        if dt == "f32" and st == "f16":
            self.setreg(ops[0], bits_of_f32(f16_to_f32(self.val(ops[1], mask))), mask, 32)
            return
        if dt == "f32" and st == "bf16":
            self.setreg(ops[0], bits_of_f32(bf16_to_f32(self.val(ops[1], mask))), mask, 32)
            return
        if dt in ("u16", "u32", "u64", "s64", "s32") and st in ("u16", "u32", "u64", "s32", "s64"):
            v = self._int(st, self.val(ops[1], mask))
            self.setreg(ops[0], np.asarray(v).astype(np.int64).astype(np.uint64), mask, self.width(dt))
            return
        raise NotImplementedError(name)

    def op_fma(self, name, ops, mask, pc):
        a, b, c = (f32_of(self.val(o, mask)).astype(np.float64) for o in ops[1:4])
        with np.errstate(invalid="ignore"):  # lanes outside the mask may hold anything
            self.setreg(ops[0], bits_of_f32((a * b + c).astype(np.float32)), mask, 32)

    def op_prmt(self, name, ops, mask, pc):
        a, b, c = (self.val(o, mask) & M32 for o in ops[1:4])
        pool = a | (b << np.uint64(32))
        r = np.zeros(self.T, dtype=np.uint64)
        for i in range(4):
            sel = (c >> np.uint64(4 * i)) & np.uint64(0xF)
            byte = (pool >> ((sel & np.uint64(7)) * np.uint64(8))) & np.uint64(0xFF)
            sign = (byte >> np.uint64(7)) * np.uint64(0xFF)
            byte = np.where(sel >= np.uint64(8), sign, byte)
            r |= byte << np.uint64(8 * i)
        self.setreg(ops[0], r, mask, 32)

    def op_cp(self, name, ops, mask, pc):
        if name[1] != "async":
            raise NotImplementedError(name)
        if name[2] == "bulk":
            return self.op_tma_load(name, ops, mask, pc)
        if name[2] == "commit_group":
            for i in np.nonzero(mask)[0]:
                self.pending[i].append(self.uncommitted[i])
                self.uncommitted[i] = []
            return
        if name[2] == "wait_group":
            n = int(ops[0])
            for i in np.nonzero(mask)[0]:
                while len(self.pending[i]) > n:
                    for dst, data in self.pending[i].pop(0):
                        self.mem_write("shared", dst, data)
            return
        dst, src = self.addr(ops[0], mask), self.addr(ops[1], mask)
        size = int(ops[2])
        srcsize = self.val(ops[3], mask) if len(ops) > 3 else np.full(self.T, size, dtype=np.uint64)
        for i in np.nonzero(mask)[0]:
            n = int(srcsize[i])
            data = np.zeros(size, dtype=np.uint8)
            if n:
                data[:n] = self.mem_read("global", src[i], n)
            # The copy lands at the wait (the latest it may).
            self.uncommitted[i].append((int(dst[i]), data))

    def op_tma_load(self, name, ops, mask, pc):
        assert name[3:5] == ["tensor", "2d"], name
        dst, bar = self.addr(ops[0], mask), self.addr(ops[2], mask)
        m = re.match(r"^\[(%\w+),\s*\{(%\w+),\s*(%\w+)\}\]$", ops[1].strip())
        maps = self.regs[m.group(1)]
        cols, rows = self.regs[m.group(2)], self.regs[m.group(3)]
        for i in np.nonzero(mask)[0]:
            tmap = self.tensor_maps[(int(maps[i]) - PARAM_BASE) // 8]
            data = tmap.box(self.gmem, int(np.int32(np.uint32(cols[i]))),
                            int(np.int32(np.uint32(rows[i]))))
            state = self.mbarriers[int(bar[i])]
            for r in range(tmap.box_rows):
                row_addr = int(dst[i]) + 128 * r
                assert row_addr % 128 == 0, "TMA rows start on 128-byte boundaries"
                # 128-byte swizzle: chunk c goes to chunk c ^ (address / 128 % 8).
                xor = (row_addr // 128) % 8
                swizzled = np.concatenate([data[r, 16 * (c ^ xor):16 * (c ^ xor) + 16]
                                           for c in range(8)])
                state["copies"].append((row_addr, swizzled))
            state["landed"] += data.size
            self.wake(int(bar[i]))

    def op_mbarrier(self, name, ops, mask, pc):
        kind = name[1]
        addrs = self.addr(ops[0] if kind == "init" else ops[1], mask)
        done = np.ones(self.T, dtype=np.uint64)
        for i in np.nonzero(mask)[0]:
            a = int(addrs[i])
            if kind == "init":
                count = int(self.val(ops[1], mask)[i])
                self.mbarriers[a] = {"count": count, "pending": count, "tx": 0, "phase": 0,
                                     "copies": [], "landed": 0}
                continue
            state = self.mbarriers[a]
            if kind == "arrive":
                if name[2] == "expect_tx":
                    state["tx"] += int(self.val(ops[2], mask)[i] & M32)
                state["pending"] -= 1
                if state["pending"] < 0:
                    raise RuntimeError(f"arrival at {pc} beyond the phase's count at {a:#x}")
                self.wake(a)
                continue
            assert kind == "try_wait" and name[2] == "parity", name
            parity = int(self.val(ops[2], mask)[i]) & 1
            if state["phase"] != parity:
                continue  # that phase completed
            if state["pending"] == 0 and state["landed"] > state["tx"]:
                raise RuntimeError(f"phase at {a:#x} expected {state['tx']} bytes, "
                                   f"its copies brought {state['landed']}")
            if state["pending"] != 0 or state["landed"] != state["tx"]:
                # Not complete: the thread sleeps here until the mbarrier changes.
                done[i] = 0
                self.blocked[i] = a
                self.pc[i] = pc
                continue
            for dst, data in state["copies"]:
                self.mem_write("shared", dst, data)
            state.update(pending=state["count"], tx=0, copies=[], landed=0,
                         phase=state["phase"] ^ 1)
            self.wake(a)
        if kind == "try_wait":
            self.setreg(ops[0], done, mask, 1)

    def wake(self, barrier):
        self.blocked[self.blocked == barrier] = -1

    def op_fence(self, name, ops, mask, pc):
        pass

    def op_griddepcontrol(self, name, ops, mask, pc):
        pass

    def op_bar(self, name, ops, mask, pc):
        assert name[1] == "warp", name  # bar.sync is a barrier in run()

    def warp_lanes(self, mask, pc):
        lanes = np.nonzero(mask)[0]
        warps = sorted(set(int(l) // 32 for l in lanes))
        for w in warps:
            if not mask[w * 32:(w + 1) * 32].all():
                raise RuntimeError(f"collective op at {pc} with a partial warp")
        return warps

    def op_ldmatrix(self, name, ops, mask, pc):
        """x4: lane l gets elements (l / 4, 2 (l % 4) + {0, 1}) of each 8 x 8 matrix, whose row r
        lane 8 j + r addresses; .trans: of the transposed matrix."""
        assert "x4" in name
        trans = "trans" in name
        dsts = [d.strip() for d in ops[0].strip("{}").split(",")]
        addrs = self.addr(ops[1], mask)
        for w in self.warp_lanes(mask, pc):
            base = w * 32
            out = np.zeros((4, 32), dtype=np.uint64)
            for j in range(4):
                for lane in range(32):
                    row, col = lane // 4, 2 * (lane % 4)
                    if trans:
                        lo, hi = (self.mem_read("shared", int(addrs[base + 8 * j + col + e]) + 2 * row, 2)
                                  for e in (0, 1))
                        raw = np.concatenate([lo, hi])
                    else:
                        raw = self.mem_read("shared", int(addrs[base + 8 * j + row]) + 2 * col, 4)
                    out[j, lane] = int.from_bytes(raw.tobytes(), "little")
            for j, d in enumerate(dsts):
                v = self.regs.get(d, np.zeros(self.T, dtype=np.uint64)).copy()
                v[base:base + 32] = out[j]
                self.regs[d] = v

    def op_mma(self, name, ops, mask, pc):
        elem = name[-2]
        cv = bf16_to_f32 if elem == "bf16" else f16_to_f32
        groups = [[d.strip() for d in o.strip("{}").split(",")] for o in ops]
        D, A, B, C = groups
        for w in self.warp_lanes(mask, pc):
            base = w * 32
            Am = np.zeros((16, 16))
            Bm = np.zeros((16, 8))
            Cm = np.zeros((16, 8))
            for lane in range(32):
                g, t = lane // 4, lane % 4
                a = [int(self.regs[r][base + lane]) for r in A]
                for j, (row, col) in enumerate([(g, 2 * t), (g + 8, 2 * t), (g, 2 * t + 8),
                                               (g + 8, 2 * t + 8)]):
                    Am[row, col] = cv(np.array([a[j] & 0xFFFF]))[0]
                    Am[row, col + 1] = cv(np.array([a[j] >> 16]))[0]
                b = [int(self.regs[r][base + lane]) for r in B]
                for j, k in enumerate([2 * t, 2 * t + 8]):
                    Bm[k, g] = cv(np.array([b[j] & 0xFFFF]))[0]
                    Bm[k + 1, g] = cv(np.array([b[j] >> 16]))[0]
                c = [f32_of(np.array([self.regs[r][base + lane]], dtype=np.uint64))[0] for r in C]
                for j, (row, col) in enumerate([(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t),
                                               (g + 8, 2 * t + 1)]):
                    Cm[row, col] = c[j]
            Dm = (Am @ Bm + Cm).astype(np.float32)
            for lane in range(32):
                g, t = lane // 4, lane % 4
                for j, (row, col) in enumerate([(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t),
                                               (g + 8, 2 * t + 1)]):
                    v = self.regs.get(D[j], np.zeros(self.T, dtype=np.uint64)).copy()
                    v[base + lane] = int(bits_of_f32(Dm[row, col]))
                    self.regs[D[j]] = v


    def op_shfl(self, name, ops, mask, pc):
        assert name[1] == "sync" and name[2] in ("idx", "bfly") and name[3] == "b32", name
        bfly = name[2] == "bfly"
        dst = ops[0].split("|")[0]
        src, lane_op, c = self.val(ops[1], mask), self.val(ops[2], mask), self.val(ops[3], mask)
        out = np.zeros(self.T, dtype=np.uint64)
        for w in self.warp_lanes(mask, pc):
            for lane in range(32):
                i = 32 * w + lane
                seg = (int(c[i]) >> 8) & 31
                lo = lane & seg
                hi = lo | (int(c[i]) & 31 & ~seg)
                j = (lane ^ (int(lane_op[i]) & 31)) if bfly else lo | (int(lane_op[i]) & 31 & ~seg)
                out[i] = src[32 * w + (j if j <= hi else lane)]
        self.setreg(dst, out, mask, 32)

    def op_vote(self, name, ops, mask, pc):
        """vote.sync.any.pred over the warp's live lanes (a full member mask)."""
        assert name[1:] == ["sync", "any", "pred"], name
        p = (self.val(ops[1], mask) & np.uint64(1)).astype(bool)
        out = np.zeros(self.T, dtype=np.uint64)
        for w in self.warp_lanes(mask, pc):
            lanes = slice(32 * w, 32 * w + 32)
            out[lanes] = np.uint64(bool((p & mask)[lanes].any()))
        self.setreg(ops[0], out, mask, 1)

    def op_setmaxnreg(self, name, ops, mask, pc):
        pass

    def smem_matrix(self, desc, rows, row_bytes):
        """`rows` x `row_bytes` bytes that a wgmma descriptor (K-major, 128-byte swizzle)
        addresses: row r at start + (r / 8) * SBO + (r % 8) * 128, 16-byte chunk c of
        each 128-byte row at c ^ (row address / 128 % 8), as TMA wrote it."""
        assert desc >> 62 == 1, "128-byte swizzle"
        start = (desc & 0x3FFF) << 4
        stride = ((desc >> 32) & 0x3FFF) << 4
        r = np.arange(rows)[:, None]
        a = start + (r // 8) * stride + (r % 8) * 128 + np.arange(row_bytes)[None, :]
        return self.smem[a ^ (((a >> 7) & 7) << 4)]

    def op_wgmma(self, name, ops, mask, pc):
        if name[1] != "mma_async":
            return  # fence / commit_group / wait_group: the products land at issue
        shape, elem = name[4], name[6]
        m = re.match(r"m64n(\d+)k(\d+)", shape)
        n, k = int(m.group(1)), int(m.group(2))
        assert [o.strip() for o in ops[4:6]] == ["1", "1"], "unit operand scales"
        assert all(o.strip() == "0" for o in ops[6:]), "no transposes"
        dregs = [d.strip() for d in ops[0].strip("{}").split(",")]
        assert len(dregs) == n // 2
        # A in registers: {a0, a1, a2, a3}, laid out per warp as mma.sync m16n8k16's A.
        a_regs = ops[1].startswith("{")
        a_names = [r.strip() for r in ops[1].strip("{}").split(",")] if a_regs else None
        desc_a = None if a_regs else self.val(ops[1], mask)
        desc_b = self.val(ops[2], mask)
        accumulate = self.val(ops[3], mask)
        ebytes = 1 if elem == "e4m3" else 2
        for g in sorted(set(int(t) // 128 for t in np.nonzero(mask)[0])):
            t0 = 128 * g
            raw_b = self.smem_matrix(int(desc_b[t0]), n, k * ebytes)
            if elem == "e4m3":
                b = e4m3_to_f32(raw_b)
            else:
                cv = bf16_to_f32 if elem == "bf16" else f16_to_f32
                b = cv(raw_b.view(np.uint16).astype(np.uint64)).astype(np.float64)
            if a_regs:
                assert elem != "e4m3" and k == 16, "A registers: bf16 / f16 k16"
                a = np.zeros((64, 16))
                t = np.arange(128)
                warp, lane = t // 32, t % 32
                for j, name_ in enumerate(a_names):
                    bits = self.regs[name_][t0:t0 + 128]
                    rows = 16 * warp + lane // 4 + 8 * (j % 2)
                    cols = 2 * (lane % 4) + 8 * (j // 2)
                    a[rows, cols] = cv(bits & np.uint64(0xFFFF))
                    a[rows, cols + 1] = cv(bits >> np.uint64(16))
            else:
                raw_a = self.smem_matrix(int(desc_a[t0]), 64, k * ebytes)
                if elem == "e4m3":
                    a = e4m3_to_f32(raw_a)
                else:
                    a = cv(raw_a.view(np.uint16).astype(np.uint64)).astype(np.float64)
            prod = a @ b.T
            t = np.arange(128)
            warp, lane = t // 32, t % 32
            add = (accumulate[t0:t0 + 128] & np.uint64(1)).astype(bool)
            for i, reg in enumerate(dregs):
                j, r = i // 4, i % 4
                rows = 16 * warp + lane // 4 + 8 * (r // 2)
                cols = 8 * j + 2 * (lane % 4) + r % 2
                v = self.regs.get(reg, np.zeros(self.T, dtype=np.uint64)).copy()
                old = np.where(add, f32_of(v[t0:t0 + 128]).astype(np.float64), 0.0)
                v[t0:t0 + 128] = bits_of_f32((old + prod[rows, cols]).astype(np.float32))
                self.regs[reg] = v


def run_kernel(ptx, entry, grid, block, params, smem_bytes, gmem, tensor_maps=None):
    """Runs every block of `grid` (x, y[, z]) one after another."""
    stmts, labels, shared = parse(ptx, entry)
    grid = tuple(grid) + (1,) * (3 - len(grid))
    for bz in range(grid[2]):
        for by in range(grid[1]):
            for bx in range(grid[0]):
                Block(stmts, labels, params, gmem, smem_bytes, (bx, by, bz), block,
                      tensor_maps=tensor_maps, nctaid=grid, shared=shared).run()
