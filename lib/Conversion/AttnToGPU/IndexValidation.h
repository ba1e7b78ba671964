//===- IndexValidation.h - statuses 3-7 on the device -----------*- C++ -*-===//
//
// The index checks of a CUDA entry point (docs/ABI.md, Status) run as one
// block on the call's stream before any kernel that indexes through the
// index tensors: an extra block of a projection's launch where the function
// has one first, else a kernel of their own (see lowerFunction in
// AttnToGPU.cpp). The block writes the lowest failing status into the status
// word if that is still 0.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_INDEXVALIDATION_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_INDEXVALIDATION_H

#include "KernelBuilder.h"

namespace mlir::attn::gpu_lowering {

/// The checks on device buffers (kernel arguments, see KernelArguments.h);
/// counts are host indices.
struct IndexValidationArgs {
  /// Row offsets and the rows of every tensor they index.
  struct Rows {
    Value rowOffsets;
    SmallVector<Value> rows;
  };
  struct Paged {
    Value rowOffsets, cacheLengths, lookup, blocks;
    bool storeOnly;
  };
  struct Rope {
    Value rowOffsets, cacheLengths, tableRows;
  };
  SmallVector<Rows> rows;
  SmallVector<Value> cacheLengths;
  SmallVector<Paged> paged;
  SmallVector<Rope> rope;

  /// `checks` on the buffers that `bufferOf` maps their tensors to; the
  /// counts are computed at `host`.
  static IndexValidationArgs of(IB &host, const IndexValueChecks &checks,
                                function_ref<Value(Value)> bufferOf);

  template <typename F> void forEach(F f) {
    for (Rows &r : rows) {
      f(r.rowOffsets);
      for (Value &count : r.rows)
        f(count);
    }
    for (Value &l : cacheLengths)
      f(l);
    for (Paged &p : paged)
      f(p.rowOffsets), f(p.cacheLengths), f(p.lookup), f(p.blocks);
    for (Rope &r : rope)
      f(r.rowOffsets), f(r.cacheLengths), f(r.tableRows);
  }
};

/// The checks as a kernel of one block, launched at `host`.
void launchIndexValidation(KernelEmitter &e, IB &host,
                           const IndexValidationArgs &checks);

/// Makes `kernel` run the checks in the last block of x of its grid, in
/// place of its own work, the other blocks of that column returning at once;
/// the checks' buffers become its last arguments. Done once per kernel
/// (KernelEmitter::launch adds the column and the arguments to each launch).
/// `kernel` must not read gridDim nor run in thread-block clusters (the
/// extra column would change its work split or break the cluster shape).
void addIndexValidationBlock(KernelEmitter &e, gpu::GPUFuncOp kernel,
                             const IndexValidationArgs &checks);

} // namespace mlir::attn::gpu_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_INDEXVALIDATION_H
