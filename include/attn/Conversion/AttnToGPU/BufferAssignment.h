//===- BufferAssignment.h - device buffers of a GPU host function -*- C++ -*-===//
//
// The first half of convert-attn-to-gpu: the entry ABI of a function of attn
// ops and the device buffer (memref) that holds each of its tensors. The
// layer is straight-line code, so buffers are assigned directly, in program
// order, without general bufferisation: arguments are the caller's device
// buffers, a result written by an op goes straight into its out-parameter
// (docs/ABI.md), an updated KV cache is the caller's cache written in place,
// and intermediates are gpu.alloc'd and freed at the end. The patterns of
// AttnToGPU.h read and record buffers here as they lower each op.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTOGPU_BUFFERASSIGNMENT_H
#define ATTN_CONVERSION_ATTNTOGPU_BUFFERASSIGNMENT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::attn {

/// The device buffer type of a ranked tensor type (identity layout).
MemRefType bufferType(Type tensorType);

/// The buffers of one function while it is rewritten into a host function on
/// device buffers (see the file comment).
class BufferAssignment {
public:
  /// Decides the entry ABI of `func`: tensor arguments become buffers, scalar
  /// arguments stay, results that are (updated in place from) an argument
  /// are dropped and the others become trailing out-parameters. Creates the
  /// host function, empty, beside `func`. Fails with a diagnostic on what
  /// cannot cross the entry point.
  static FailureOr<BufferAssignment> create(func::FuncOp func);

  Block &hostBody() { return host.getBody().front(); }

  /// The host value of `v`: the buffer of a tensor, the clone of a scalar.
  Value lookup(Value v) const { return mapping.lookup(v); }
  void map(Value v, Value hostValue) { mapping.map(v, hostValue); }
  /// For cloning host code (scalar ops) as it is.
  IRMapping &valueMapping() { return mapping; }

  /// The buffer an op writes `result` into: its out-parameter when the
  /// function returns it, else a new device allocation shaped like
  /// `shapeSource` in the dynamic dims.
  Value destination(ImplicitLocOpBuilder &b, Value result, Value shapeSource);

  /// The buffer of the cache `blocks` that `writer` overwrites in place;
  /// fails with a diagnostic if `blocks` is read again after `writer`.
  FailureOr<Value> updateInPlace(Operation *writer, Value blocks);

  /// The buffers of an opaque paged cache: blocks, cache lengths, lookup
  /// table. Empty if the cache was not made in this function.
  void mapCache(Value cache, ValueRange parts);
  ArrayRef<Value> cacheParts(Value cache) const;

  /// Ends the host function at `b`: results not computed in their
  /// out-parameter are copied there and temporaries freed. The host function
  /// replaces the original.
  void finish(ImplicitLocOpBuilder &b);
  /// Erases the host function after a failure; the original stays.
  void discard() { host.erase(); }

private:
  BufferAssignment(func::FuncOp func, func::FuncOp host,
                   DenseMap<Value, SmallVector<unsigned, 1>> returnedAt);

  func::FuncOp func, host;
  IRMapping mapping;
  DenseMap<Value, SmallVector<unsigned, 1>> returnedAt; // value -> out indices
  SmallVector<Value> outParams;                         // by out index
  SmallVector<bool> outWritten;
  SmallVector<Value> temporaries;
  DenseMap<Value, SmallVector<Value, 3>> caches; // opaque cache -> parts
};

} // namespace mlir::attn

#endif // ATTN_CONVERSION_ATTNTOGPU_BUFFERASSIGNMENT_H
