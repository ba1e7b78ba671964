//===- MatmulKernel.cpp - x @ W^T on tensor cores --------------------------===//
//
// The projections: a 64 x 64 output tile per block of four warps (2 x 2, each
// 32 x 32), 128-deep K steps staged in shared memory with 16-byte loads
// (deep steps keep 16 loads per thread in flight: skinny decode GEMMs are
// latency-bound),
// ldmatrix fragments and mma.sync m16n8k16 accumulating in f32. Both
// operands are K-contiguous (`x [M, K]`, `W [N, K]`), which is exactly the
// row-major A / column-major B that mma.sync wants. Weight clipping happens
// as the tile is staged; bias and the split into q / k / v in the epilogue.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

namespace {
constexpr int64_t kTileM = 64, kTileN = 64, kTileK = 128, kThreads = 128;
// Row padding of the staged tiles: 16 bytes keeps ldmatrix conflict-free.
constexpr int64_t kPad = 8;
} // namespace

bool gpu_lowering::matmulCanSplitWeights(ArrayRef<Value> weights) {
  if (weights.empty())
    return false;
  int64_t k = cast<MemRefType>(weights[0].getType()).getDimSize(1);
  for (auto [i, w] : llvm::enumerate(weights)) {
    auto type = cast<MemRefType>(w.getType());
    if (!type.hasStaticShape() || type.getDimSize(1) != k)
      return false;
    if (i + 1 < weights.size() && type.getDimSize(0) % kTileN != 0)
      return false;
  }
  return true;
}

void gpu_lowering::emitMatmul(KernelEmitter &e, IB &host, Value x,
                              Value weight, Value bias,
                              std::optional<double> clip,
                              ArrayRef<OutputSegment> outputs) {
  SmallVector<Value> biases;
  if (bias)
    biases.push_back(bias);
  emitMatmul(e, host, x, ArrayRef<Value>{weight}, biases, clip, outputs);
}

void gpu_lowering::emitMatmul(KernelEmitter &e, IB &host, Value x,
                              ArrayRef<Value> weightList,
                              ArrayRef<Value> biasList,
                              std::optional<double> clip,
                              ArrayRef<OutputSegment> outputs) {
  MLIRContext *ctx = host.getContext();
  auto xType = cast<MemRefType>(x.getType());
  Type element = xType.getElementType();
  size_t numWeights = weightList.size();
  bool hasBias = !biasList.empty();
  // Rows of each weight and where they start in the output.
  SmallVector<int64_t> segRows, segBegin;
  int64_t n = 0;
  for (Value w : weightList) {
    segBegin.push_back(n);
    segRows.push_back(cast<MemRefType>(w.getType()).getDimSize(0));
    n += segRows.back();
  }
  int64_t k = cast<MemRefType>(weightList[0].getType()).getDimSize(1);
  auto smemType = MemRefType::get(
      {kTileM, kTileK + kPad}, element, AffineMap(),
      gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup));

  // Several weights are passed with one (dynamic-row) type, so that the
  // kernel can pick one by selecting between them.
  SmallVector<Value> weights(weightList), biases(biasList);
  if (numWeights > 1) {
    auto wType = MemRefType::get({ShapedType::kDynamic, k}, element);
    for (Value &w : weights)
      w = memref::CastOp::create(host, wType, w);
    for (Value &bv : biases)
      bv = memref::CastOp::create(
          host,
          MemRefType::get({ShapedType::kDynamic},
                          cast<MemRefType>(bv.getType()).getElementType()),
          bv);
  }
  SmallVector<Value> operands = {x};
  llvm::append_range(operands, weights);
  llvm::append_range(operands, biases);
  for (const OutputSegment &out : outputs)
    operands.push_back(out.buffer);
  SmallVector<Type> types(ValueRange(operands).getTypes());
  auto [kernel, b] = e.createKernel(host.getLoc(), "matmul", types,
                                    {smemType, smemType}, kThreads);
  ValueRange args = kernel.getArguments().take_front(operands.size());
  Value kx = args[0];
  ValueRange kWeights = args.slice(1, numWeights);
  ValueRange kBiases = args.slice(1 + numWeights, biases.size());
  ValueRange kOuts = args.drop_front(1 + numWeights + biases.size());
  Value smemA = kernel.getWorkgroupAttributions()[0];
  Value smemB = kernel.getWorkgroupAttributions()[1];

  Value tid = threadIdx(b);
  Value lane = arith::RemUIOp::create(b, tid, cIndex(b, 32));
  Value warp = arith::DivUIOp::create(b, tid, cIndex(b, 32));
  Value group = arith::DivUIOp::create(b, lane, cIndex(b, 4));
  Value quad = arith::RemUIOp::create(b, lane, cIndex(b, 4));
  Value rows = b.createOrFold<memref::DimOp>(kx, 0);
  Value m0 = arith::MulIOp::create(b, blockIdx(b, gpu::Dimension::y), cIndex(b, kTileM));
  Value n0 = arith::MulIOp::create(b, blockIdx(b, gpu::Dimension::x), cIndex(b, kTileN));
  // The weight (and bias) holding this block's 64 output columns: segment
  // boundaries are multiples of the tile, so one block reads one weight.
  Value kw = kWeights[0], kBias = hasBias ? kBiases[0] : Value();
  Value wBegin = cIndex(b, 0), wRows = cIndex(b, segRows[0]);
  for (size_t s = 1; s < numWeights; ++s) {
    Value here = arith::CmpIOp::create(b, arith::CmpIPredicate::uge, n0,
                                       cIndex(b, segBegin[s]));
    kw = arith::SelectOp::create(b, here, kWeights[s], kw);
    if (hasBias)
      kBias = arith::SelectOp::create(b, here, kBiases[s], kBias);
    wBegin = arith::SelectOp::create(b, here, cIndex(b, segBegin[s]), wBegin);
    wRows = arith::SelectOp::create(b, here, cIndex(b, segRows[s]), wRows);
  }
  Value wm = arith::MulIOp::create(
      b, arith::DivUIOp::create(b, warp, cIndex(b, 2)), cIndex(b, 32));
  Value wn = arith::MulIOp::create(
      b, arith::RemUIOp::create(b, warp, cIndex(b, 2)), cIndex(b, 32));
  // Per-lane ldmatrix coordinates (see mma16816's fragment layout).
  Value aRow = arith::AddIOp::create(b, wm, arith::RemUIOp::create(b, lane, cIndex(b, 16)));
  Value aCol = arith::MulIOp::create(
      b, arith::DivUIOp::create(b, lane, cIndex(b, 16)), cIndex(b, 8));
  Value bRow = arith::AddIOp::create(
      b, wn,
      arith::AddIOp::create(
          b, arith::MulIOp::create(b, arith::DivUIOp::create(b, lane, cIndex(b, 16)),
                                   cIndex(b, 8)),
          arith::RemUIOp::create(b, lane, cIndex(b, 8))));
  Value bCol = arith::MulIOp::create(
      b, arith::RemUIOp::create(b, arith::DivUIOp::create(b, lane, cIndex(b, 8)),
                                cIndex(b, 2)),
      cIndex(b, 8));

  auto chunkType = VectorType::get({8}, element);
  auto f32Chunk = VectorType::get({8}, b.getF32Type());
  SmallVector<Value> init(2 * 4 * 4, cF32(b, 0.0));
  auto loop = scf::ForOp::create(b, cIndex(b, 0), cIndex(b, k), cIndex(b, kTileK), init);
  {
    IB lb(b.getLoc(), OpBuilder::atBlockBegin(loop.getBody()));
    Value k0 = loop.getInductionVar();
    // Stage the A and B tiles: 64 rows x 4 chunks of 8 each, 2 per thread.
    for (int64_t i = 0; i < kTileM * (kTileK / 8) / kThreads; ++i) {
      Value c = arith::AddIOp::create(lb, tid, cIndex(lb, i * kThreads));
      Value r = arith::DivUIOp::create(lb, c, cIndex(lb, kTileK / 8));
      Value kc = arith::MulIOp::create(
          lb, arith::RemUIOp::create(lb, c, cIndex(lb, kTileK / 8)), cIndex(lb, 8));
      Value gk = arith::AddIOp::create(lb, k0, kc);
      Value kOk = arith::CmpIOp::create(lb, arith::CmpIPredicate::ult, gk, cIndex(lb, k));
      Value gm = arith::AddIOp::create(lb, m0, r);
      Value aOk = arith::AndIOp::create(
          lb, kOk, arith::CmpIOp::create(lb, arith::CmpIPredicate::ult, gm, rows));
      Value a = loadVectorOrZero(
          lb, kx, [&](IB &) { return SmallVector<Value>{gm, gk}; }, aOk, chunkType);
      vector::StoreOp::create(lb, a, smemA, ValueRange{r, kc}, /*nontemporal=*/false,
                              llvm::MaybeAlign(16));
      // The row of this block's weight.
      Value gn = arith::AddIOp::create(lb, arith::SubIOp::create(lb, n0, wBegin), r);
      Value bOk = arith::AndIOp::create(
          lb, kOk, arith::CmpIOp::create(lb, arith::CmpIPredicate::ult, gn, wRows));
      Value w = loadVectorOrZero(
          lb, kw, [&](IB &) { return SmallVector<Value>{gn, gk}; }, bOk, chunkType);
      if (clip) {
        Value wf = arith::ExtFOp::create(lb, f32Chunk, w);
        auto splat = [&](double v) {
          return arith::ConstantOp::create(
              lb, DenseElementsAttr::get(f32Chunk, static_cast<float>(v)));
        };
        wf = arith::MaximumFOp::create(lb, wf, splat(-*clip));
        wf = arith::MinimumFOp::create(lb, wf, splat(*clip));
        w = arith::TruncFOp::create(lb, chunkType, wf);
      }
      vector::StoreOp::create(lb, w, smemB, ValueRange{r, kc}, /*nontemporal=*/false,
                              llvm::MaybeAlign(16));
    }
    gpu::BarrierOp::create(lb);
    SmallVector<Value> acc(loop.getRegionIterArgs());
    for (int64_t kk = 0; kk < kTileK / 16; ++kk) {
      std::array<std::array<Value, 4>, 2> aFrag;
      for (int64_t mi = 0; mi < 2; ++mi)
        aFrag[mi] = ldmatrixX4(lb, smemA, arith::AddIOp::create(lb, aRow, cIndex(lb, mi * 16)),
                               arith::AddIOp::create(lb, aCol, cIndex(lb, kk * 16)),
                               /*transpose=*/false);
      for (int64_t np = 0; np < 2; ++np) {
        std::array<Value, 4> bq = ldmatrixX4(
            lb, smemB, arith::AddIOp::create(lb, bRow, cIndex(lb, np * 16)),
            arith::AddIOp::create(lb, bCol, cIndex(lb, kk * 16)), false);
        for (int64_t half = 0; half < 2; ++half) {
          int64_t ni = 2 * np + half;
          for (int64_t mi = 0; mi < 2; ++mi) {
            MutableArrayRef<Value> c(&acc[(mi * 4 + ni) * 4], 4);
            std::array<Value, 4> d = mma16816(
                lb, element, aFrag[mi], {bq[2 * half], bq[2 * half + 1]}, c);
            llvm::copy(d, c.begin());
          }
        }
      }
    }
    gpu::BarrierOp::create(lb);
    scf::YieldOp::create(lb, acc);
  }

  // Epilogue: each lane holds rows (group, group + 8) x columns (2 quad,
  // 2 quad + 1) of every 16 x 8 tile.
  for (int64_t mi = 0; mi < 2; ++mi) {
    for (int64_t ni = 0; ni < 4; ++ni) {
      for (int64_t r = 0; r < 4; ++r) {
        Value acc = loop.getResult((mi * 4 + ni) * 4 + r);
        Value row = arith::AddIOp::create(
            b, arith::AddIOp::create(b, m0, wm),
            arith::AddIOp::create(b, group, cIndex(b, mi * 16 + (r / 2) * 8)));
        Value col = arith::AddIOp::create(
            b, arith::AddIOp::create(b, n0, wn),
            arith::AddIOp::create(b, arith::MulIOp::create(b, quad, cIndex(b, 2)),
                                  cIndex(b, ni * 8 + r % 2)));
        Value inRange = arith::AndIOp::create(
            b, arith::CmpIOp::create(b, arith::CmpIPredicate::ult, row, rows),
            arith::CmpIOp::create(b, arith::CmpIPredicate::ult, col, cIndex(b, n)));
        ifThen(b, inRange, [&](IB &tb) {
          Value v = acc;
          if (kBias)
            v = arith::AddFOp::create(
                tb, v,
                toF32(tb, memref::LoadOp::create(
                              tb, kBias, ValueRange{arith::SubIOp::create(tb, col, wBegin)})));
          Value stored = fromF32(tb, v, element);
          for (size_t si = 0; si < outputs.size(); ++si) {
            const OutputSegment &segment = outputs[si];
            Value out = kOuts[si];
            Value local = arith::SubIOp::create(tb, col, cIndex(tb, segment.begin));
            Value mine = arith::CmpIOp::create(tb, arith::CmpIPredicate::ult, local,
                                               cIndex(tb, segment.width));
            if (outputs.size() == 1) {
              memref::StoreOp::create(tb, stored, out, ValueRange{row, local});
              continue;
            }
            ifThen(tb, mine, [&](IB &sb) {
              memref::StoreOp::create(sb, stored, out, ValueRange{row, local});
            });
          }
        });
      }
    }
  }
  Value hostRows = host.createOrFold<memref::DimOp>(x, 0);
  e.launch(host, kernel,
           {cIndex(host, (n + kTileN - 1) / kTileN), ceilDiv(host, hostRows, kTileM),
            cIndex(host, 1)},
           kThreads, operands);
}
