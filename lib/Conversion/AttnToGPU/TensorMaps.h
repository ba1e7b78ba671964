//===- TensorMaps.h - TMA tensor maps as kernel arguments ------*- C++ -*-===//
//
// A TMA load (cp.async.bulk.tensor) reads global memory through a 128-byte
// CUtensorMap. The host encodes one per buffer and call
// (attnCudaEncodeTensorMap: the buffer is only known then) and passes it by
// value, as a kernel argument of type !llvm.array<16 x i64>. The kernel loads
// through the address of a local copy; the attn-grid-constant-tensor-maps
// pass makes that the `__grid_constant__` parameter itself, so nothing is
// copied and the host never writes device memory (the call stays
// asynchronous and capturable in a CUDA graph).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_TENSORMAPS_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_TENSORMAPS_H

#include "KernelBuilder.h"

namespace mlir::attn::gpu_lowering {

/// The kernel-argument type of a tensor map (a CUtensorMap by value).
Type tensorMapType(MLIRContext *context);

/// The box one load of a 2-D tensor map fills: `rows` rows of one 128-byte
/// swizzled row each (128 / bytes-per-element columns), in shared memory.
MemRefType tensorMapBox(Type element, int64_t rows);

/// Whether `buffer` (2-D) can be read through a tensor map: unit inner
/// stride, 1- or 2-byte elements, rows a multiple of 16 bytes.
bool hasTensorMapLayout(Value buffer);

/// Host: the tensor map of the row-major matrix `buffer` for `box` loads.
/// With `maybeEmpty`, a buffer without rows gets a map that must not be read
/// (the driver refuses empty tensors).
Value encodeTensorMap(IB &host, Value buffer, MemRefType box,
                      bool maybeEmpty = false);

/// Kernel: the address of the tensor-map argument `map` (an !llvm.ptr).
/// Take it at the top of the kernel body.
Value tensorMapAddress(IB &b, Value map);

/// Kernel: the tensor map at `address` as the descriptor of
/// nvgpu.tma.async.load for `box` loads.
Value tensorMapDescriptor(IB &b, Value address, MemRefType box);

} // namespace mlir::attn::gpu_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_TENSORMAPS_H
