//===- GPULayouts.h - thread and fragment layouts of NVIDIA kernels -*- C++ -*-===//
//
// Where each thread's data lives, written once: the warp layout of a block,
// the mma.sync m16n8k16 fragments (ldmatrix coordinates, accumulator row
// and column of each register; PTX ISA "Matrix Fragments for mma.m16n8k16"),
// the wgmma shared-memory matrix descriptor with named fields (PTX ISA
// "Matrix Descriptor Format") and its 128-byte swizzle, and the operations
// that move fragments: ldmatrix, mma.sync, wgmma, warp shuffles.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_KERNELS_GPULAYOUTS_H
#define ATTN_CONVERSION_KERNELS_GPULAYOUTS_H

#include "attn/Conversion/Kernels/Builder.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#include <array>

namespace mlir::attn::kb {

Idx threadIdx(IB &b);
Idx blockIdx(IB &b, gpu::Dimension d);
Idx gridDim(IB &b, gpu::Dimension d);

//===----------------------------------------------------------------------===//
// Warps
//===----------------------------------------------------------------------===//

/// A thread's place in its block: warp and lane, and the lane's place in
/// the mma accumulator layout (8 row groups of 4 lanes).
struct WarpLayout {
  Idx thread;
  Idx lane;  // thread % 32
  Idx warp;  // thread / 32
  Idx group; // lane / 4: accumulator rows group and group + 8
  Idx quad;  // lane % 4: accumulator columns 2 quad and 2 quad + 1

  static WarpLayout of(Idx thread);
};

/// `v` of lane `lane ^ mask` (f32).
Value shuffleXor(IB &b, Value v, int64_t mask);
/// The index `v` of lane 0: the same value, known to be warp-uniform.
Idx warpUniform(IB &b, Idx v);

//===----------------------------------------------------------------------===//
// mma.sync m16n8k16 (f16 / bf16 inputs, f32 accumulators)
//===----------------------------------------------------------------------===//

namespace m16n8k16 {
// With `row0`, the coordinates are in the 16 rows from row0 (a warp's rows
// of a taller tile).

/// This lane's ldmatrix.x4 address (row, column) in a row-major 16 x 16 A
/// tile: the four 8x8 matrices a0..a3 of the A fragment.
std::pair<Idx, Idx> aCoord(Idx lane, Idx row0 = {});
/// ... in a 16-row x 16-column tile of B stored n-major ([n][k], K
/// contiguous): B fragments of two n8 tiles (registers {0,1} and {2,3}).
std::pair<Idx, Idx> bCoordNMajor(Idx lane, Idx row0 = {});
/// ... in a 16 x 16 tile of B stored k-major ([k][n]), loaded with .trans:
/// B fragments of two n8 tiles (registers {0,1} and {2,3}).
std::pair<Idx, Idx> bCoordKMajorTrans(Idx lane);
/// Row of accumulator register `r` (0..3) of a 16 x 8 tile: group, +8.
Idx accRow(const WarpLayout &w, int64_t r);
/// Column of accumulator register `r`: 2 quad + r % 2.
Idx accCol(const WarpLayout &w, int64_t r);
} // namespace m16n8k16

/// ldmatrix x4 from a workgroup buffer at this lane's (row, col): the four
/// 8x8 fragments as i32 registers (two 16-bit elements each).
std::array<Value, 4> ldmatrixX4(IB &b, Value smem, Value row, Value col,
                                bool transpose);

/// d = a * b + c for one m16n8k16 tile with f32 accumulators; `a` is four
/// and `b` two i32 registers of 16-bit `elementType` pairs.
std::array<Value, 4> mma16816(IB &b, Type elementType, ArrayRef<Value> a,
                              ArrayRef<Value> bFrag, ArrayRef<Value> c);

/// Two f32 values rounded to `elementType` and packed in one i32 register.
Value packPair(IB &b, Value lo, Value hi, Type elementType);

//===----------------------------------------------------------------------===//
// wgmma (sm_90a warpgroup MMA)
//===----------------------------------------------------------------------===//

/// The swizzle modes of a wgmma shared-memory matrix.
enum class WgmmaSwizzle : int64_t { None = 0, B128 = 1, B64 = 2, B32 = 3 };

/// A wgmma shared-memory matrix descriptor (64-bit; PTX ISA "Matrix
/// Descriptor Format"): the fields are byte values, encoded >> 4.
struct WgmmaDescriptor {
  /// i64 byte address of the matrix in the shared window.
  Value startAddress;
  /// Added to startAddress (a k step inside the tile).
  int64_t offsetBytes = 0;
  /// Between 8x(16 bytes) core matrices along the leading dimension.
  int64_t leadingByteOffset = 16;
  /// Between 8-row groups of core matrices.
  int64_t strideByteOffset = 1024;
  WgmmaSwizzle swizzle = WgmmaSwizzle::B128;

  /// The i64 descriptor value.
  Value build(IB &b) const;
  /// `descriptor` moved on by `bytes` (i64, a multiple of 16): one add to
  /// the start-address field, which cannot carry out of it while the moved
  /// matrix stays in the 18-bit shared window. Built once and advanced, a
  /// loop's descriptors cost an add each instead of build's masks.
  static Value advance(IB &b, Value descriptor, Value bytes);
};

/// Element index of 16-byte chunk `chunk` of row `r` in a 128-byte-swizzled
/// tile of `rows` rows: 64-column blocks of `rows` x 128 bytes, chunks
/// XOR-ed with the row (the layout the tensor cores read).
Idx swizzled128Index(Idx r, Idx chunk, int64_t rows);

/// This thread's wgmma accumulators as the struct the instruction carries
/// (and back).
Value packAccumulators(IB &b, ArrayRef<Value> acc);
SmallVector<Value> unpackAccumulators(IB &b, Value acc);

/// Issues acc (+)= A B on the warpgroup, one m64nNk16 (bf16, f16) or
/// m64nNk32 (E4M3) per 32-byte k step given by its (A, B) descriptors, as
/// one wgmma group, and returns the accumulator struct without waiting:
/// read it only after wgmmaWait. Unless `accumulate`, the sums start from
/// zero and `acc` (a retired accumulator, or poison) only names their
/// registers, so that no set in flight is copied.
Value wgmmaAsync(IB &b, Type element, ArrayRef<std::pair<Value, Value>> steps,
                 int64_t n, bool transposeB, Value acc, bool accumulate = true);
/// One k16 step of wgmma with A in registers: this thread's four i32
/// registers of bf16 / f16 pairs, laid out per warp as mma.sync m16n8k16's A
/// fragment of the warp's 16 rows (warp w of the warpgroup: rows 16 w ..),
/// and B's descriptor (K-major, as for wgmmaAsync).
struct WgmmaRegisterAStep {
  std::array<Value, 4> a;
  Value descB;
};
/// Issues acc (+)= A B on the warpgroup, one m64nNk16 per step, as one
/// wgmma group, like wgmmaAsync. `accumulate` is an i1: false starts the
/// sums from zero (the first step's scale-d), so that it may change at run
/// time. The A registers are read asynchronously: keep them unchanged (and
/// alive, fenceRegisters) until a wgmmaWait retires the group.
Value wgmmaAsyncRegisterA(IB &b, Type element,
                          ArrayRef<WgmmaRegisterAStep> steps, int64_t n,
                          Value acc, Value accumulate);
/// Waits until at most `pending` wgmma groups of this warpgroup are in flight.
void wgmmaWait(IB &b, int64_t pending);
/// `values` (f32) through an empty volatile asm that ties each to itself
/// (CUTLASS's warpgroup_fence_operand): the compiler neither reads them
/// before the fence (a wgmma wait before it) nor moves their computation
/// past it (a wgmma that reuses their registers after it).
SmallVector<Value> fenceRegisters(IB &b, ArrayRef<Value> values);
/// The same for i32 values (wgmma's A registers).
SmallVector<Value> fenceIntRegisters(IB &b, ArrayRef<Value> values);

/// acc (+)= A B on the warpgroup, `n` columns, one m64nNk16 per k step
/// given by its (A, B) descriptors; `acc` holds this thread's n / 2 f32
/// accumulators. Waits for the result.
void wgmma(IB &b, Type element, ArrayRef<std::pair<Value, Value>> steps,
           int64_t n, bool transposeB, MutableArrayRef<Value> acc);

/// Dynamic shared memory from its first `alignment`-byte boundary (the
/// launch asks for `alignment` bytes more than the views need; 1024 keeps
/// the 128-byte swizzle absolute).
struct AlignedSharedMemory {
  Value raw; // the i8 buffer
  Idx pad;   // bytes before the boundary

  static AlignedSharedMemory get(IB &b, int64_t alignment = 1024);
  /// A 1-D `element` view of `elements`, `offsetBytes` past the boundary.
  Value view(IB &b, Type element, int64_t elements,
             int64_t offsetBytes = 0) const;
  /// A `shape` view of `element`s (identity layout), `offsetBytes` past
  /// the boundary.
  Value shapedView(IB &b, Type element, ArrayRef<int64_t> shape,
                   int64_t offsetBytes = 0) const;
};

/// Makes generic-proxy writes to shared memory visible to the tensor cores.
void fenceProxyAsync(IB &b);

} // namespace mlir::attn::kb

#endif // ATTN_CONVERSION_KERNELS_GPULAYOUTS_H
