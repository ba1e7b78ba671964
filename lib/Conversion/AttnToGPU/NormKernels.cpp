//===- NormKernels.cpp - RMS norm of rows ---------------------------------===//
//
// `out[r, :] = in[r, :] * rsqrt(mean(in[r, :]^2) + eps) * gamma`: one warp
// per row.
//
//===----------------------------------------------------------------------===//

#include "ElementwiseKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::elementwise;

namespace {

struct RmsNormArgs {
  Value in, gamma, out, rows;

  template <typename F> void forEach(F f) { f(in), f(gamma), f(out), f(rows); }
};

void buildRmsNorm(IB &b, const RmsNormArgs &k, double eps) {
  BuilderScope scope(b);
  Type element = cast<MemRefType>(k.in.getType()).getElementType();
  WarpItem w = WarpItem::of(b);
  Idx lane = w.lane, row = w.item;
  // Whole warps leave together, so the shuffles below see all 32 lanes.
  ifThen(b, ult(b, row, k.rows), [&](IB &tb) {
    Idx width = dim(tb, k.in, 1);
    Value total = warpSumOfSquares(tb, lane, width, [&](IB &lb, Idx col) {
      return toF32(lb, load(lb, k.in, {row, col}));
    });
    Value widthF = arith::UIToFPOp::create(
        tb, tb.getF32Type(), indexCast(tb, width, tb.getI32Type()));
    Value inv = rsqrtPlusEps(tb, arith::DivFOp::create(tb, total, widthF), eps);
    forLoop(tb, lane, width, 32, [&](IB &lb, Idx col) {
      Value x = toF32(lb, load(lb, k.in, {row, col}));
      Value g = toF32(lb, load(lb, k.gamma, col));
      store(lb, fromF32(lb, mulF(lb, mulF(lb, x, inv), g), element), k.out,
            {row, col});
    });
  });
}

} // namespace

void gpu_lowering::emitRmsNorm(KernelEmitter &e, IB &host, Value in,
                               Value gamma, Value out, double eps) {
  RmsNormArgs args{in, gamma, out, dim(host, in, 0)};
  auto [kernel, b, k] =
      createKernel(e, host.getLoc(), "rms_norm", args, {}, kThreads);
  buildRmsNorm(b, k, eps);
  launchWarpPerItem(e, host, kernel, args.rows, argumentList(args));
}
