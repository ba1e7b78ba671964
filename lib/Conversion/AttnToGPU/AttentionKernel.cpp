//===- AttentionKernel.cpp - flash attention on tensor cores --------------===//
//
// Two kernels per attention op; the host picks one per call
// (Attention/LaunchPlan.h) and launches only that one:
//
// * prefill: a warpgroup (four warps) per 64-row tile of (query row, GQA
//   head) pairs of one (sequence, kv head, key split), so a K/V tile staged
//   in shared memory serves the whole group. On sm_90a (head dim 64, 128
//   or 256) S = Q K^T and O += P V run on wgmma (Attention/PrefillWgmma.cpp),
//   otherwise on mma.sync (Attention/PrefillMma.cpp; above head dim 128
//   with Q read from shared memory).
// * decode (few query rows per sequence): one 16-row tile per block whose
//   four warps split every key tile, on mma.sync, small enough for four
//   blocks per SM (Attention/Decode.cpp).
//
// Per 64-key tile: K and V arrive by cp.async interleaved with the math, the
// scale (with log2 e) and the mask (only on tiles some row does not fully
// see) are applied in registers, the online softmax uses exp2 and quad
// shuffles. Key tiles outside the causal / sliding window are never visited;
// the paged cache is read through the lookup table. Keys are split across
// blocks when there are few query tiles (flash-decoding): each split writes
// its normalised partial output and log2-sum-exp, merged by a combine
// kernel (Attention/Combine.cpp).
//
//===----------------------------------------------------------------------===//

#include "Attention/LaunchPlan.h"
#include "Attention/Schedules.h"
#include "Attention/WarpMma.h"
#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::attention;

namespace {
enum class Schedule : int64_t { Prefill = 0, Decode = 1 };

/// Builds the kernels of one attention op: one per schedule, so each gets
/// the registers and shared memory it needs (decode fits more blocks per
/// SM); a kernel whose schedule the call did not pick leaves at once.
struct KernelSet {
  KernelEmitter &e;
  Location loc;
  const Problem &p;
  TypeRange argTypes;
  std::string name;

  using Body =
      function_ref<void(IB &, const AttentionKernelArgs &, ValueRange smem)>;

  /// `staticTiles`: K and V as static [64][D + 8] workgroup buffers.
  gpu::GPUFuncOp build(StringRef suffix, Schedule schedule, bool staticTiles,
                       Body body) const {
    SmallVector<Type> smem;
    if (staticTiles) {
      auto wgSpace = gpu::AddressSpaceAttr::get(loc.getContext(),
                                                gpu::AddressSpace::Workgroup);
      auto type = MemRefType::get({kKeys, p.headDim + kPad}, p.element,
                                  AffineMap(), wgSpace);
      smem = {type, type};
    }
    auto [kernel, kb] =
        e.createKernel(loc, name + suffix.str(), argTypes, smem, kThreads);
    BuilderScope scope(kb);
    auto args =
        AttentionKernelArgs::fromOperands(kernel.getArguments(), p.paged);
    args.status = e.loadStatus(kb);
    ValueRange buffers = kernel.getWorkgroupAttributions();
    ifThen(kb, Idx(args.mode) == static_cast<int64_t>(schedule),
           [&](IB &b) { body(b, args, buffers); });
    return kernel;
  }
};
} // namespace

void gpu_lowering::emitAttention(KernelEmitter &e, IB &host,
                                 const AttentionSpec &spec) {
  BuilderScope scope(host);
  Problem p = Problem::of(spec);
  LaunchPlan plan = planLaunch(host, e.options(), p, spec);
  Type f32 = host.getF32Type();
  auto alloc = [&](ArrayRef<int64_t> rowShape) {
    SmallVector<int64_t> shape = {ShapedType::kDynamic, ShapedType::kDynamic};
    shape.append(rowShape.begin(), rowShape.end());
    return gpu::AllocOp::create(
               host, MemRefType::get(shape, f32), Type(), ValueRange{},
               ValueRange{plan.partRows, plan.tokens}, ValueRange{})
        .getMemref();
  };
  // q is staged by 16-byte loads, K / V (or the cache) by cp.async.
  e.requireAligned({spec.query, spec.key, spec.value, spec.blocks});
  AttentionKernelArgs args;
  args.query = spec.query;
  args.out = spec.out;
  args.qRowOffsets = spec.qRowOffsets;
  args.key = spec.key;
  args.value = spec.value;
  args.kvRowOffsets = spec.kvRowOffsets;
  args.blocks = spec.blocks;
  args.cacheLengths = spec.cacheLengths;
  args.lookup = spec.lookup;
  args.layer = spec.layer;
  args.oPart = alloc({p.heads, p.headDim});
  args.lsePart = alloc({p.heads});
  args.splits = plan.splits;
  args.mode = indexCast(
      host, arith::ExtUIOp::create(host, host.getI32Type(), plan.decodeMode),
      host.getIndexType());
  SmallVector<Value> operands = args.operands(p.paged);

  std::string name = p.paged ? "paged_flash_attention" : "flash_attention";
  KernelSet kernels{e, host.getLoc(), p, ValueRange(operands).getTypes(), name};
  bool wgmma = prefillUsesWgmma(e.options(), p);
  // Dynamic shared memory of a kernel (none: static tiles only).
  auto sharedBytes = [&](int64_t bytes) {
    return bytes ? cI32(host, bytes) : Value();
  };
  gpu::GPUFuncOp prefill =
      kernels.build(plan.hasDecode ? "_prefill" : "", Schedule::Prefill,
                    !wgmma && !p.queryInShared(),
                    [&](IB &b, const AttentionKernelArgs &k, ValueRange smem) {
                      if (wgmma)
                        buildPrefillWgmma(b, p, k);
                      else
                        buildPrefillMma(b, p, k, mmaTiles(b, p, kRows, smem));
                    });
  // (tile, KV head) pairs in x, the head fastest (findBlockWork).
  std::array<Value, 3> grid = {Idx(plan.queryTiles) * p.kvHeads, cIndex(host, 1),
                               plan.splits};
  Value prefillBytes =
      sharedBytes(wgmma ? wgmmaSharedBytes(p) : mmaSharedBytes(p, kRows));
  if (!plan.hasDecode) {
    e.launch(host, prefill, grid, kThreads, operands, prefillBytes);
  } else {
    gpu::GPUFuncOp decode = kernels.build(
        "_decode", Schedule::Decode, /*staticTiles=*/!p.queryInShared(),
        [&](IB &b, const AttentionKernelArgs &k, ValueRange smem) {
          buildDecode(b, p, k, mmaTiles(b, p, kDecodeRows, smem));
        });
    // Decode streams the cache: more resident blocks keep more bytes in
    // flight (at most 128 registers a thread at four blocks).
    decode->setAttr("nvvm.minctasm",
                    host.getI32IntegerAttr(p.decodeBlocksPerSM()));
    Value decodeBytes = sharedBytes(mmaSharedBytes(p, kDecodeRows));
    // The host picks the schedule, so only that kernel is launched.
    Idx isPrefill = Idx(plan.decodeMode) ^ 1;
    ifThenElse(
        host, isPrefill,
        [&](IB &pb) {
          e.launch(pb, prefill, grid, kThreads, operands, prefillBytes);
        },
        [&](IB &db) {
          e.launch(db, decode, grid, kThreads, operands, decodeBytes);
        });
  }
  emitCombine(e, host, p, args.oPart, args.lsePart, spec.out, plan.parts);
  gpu::DeallocOp::create(host, Type(), ValueRange{}, args.oPart);
  gpu::DeallocOp::create(host, Type(), ValueRange{}, args.lsePart);
}
