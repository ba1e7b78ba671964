//===- AttnToGPU.h - patterns lowering attn ops to GPU kernels --*- C++ -*-===//
//
// The second half of convert-attn-to-gpu: one pattern per op kind, each
// emitting the host code of its op (kernel launches, buffer views, or
// nothing) on the device buffers of a BufferAssignment. Like a conversion
// pattern, with the BufferAssignment, filled in program order, in place of
// a type converter and the adaptor.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTOGPU_ATTNTOGPU_H
#define ATTN_CONVERSION_ATTNTOGPU_ATTNTOGPU_H

#include "attn/Conversion/AttnToGPU/BufferAssignment.h"

#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Support/TypeID.h"

#include <memory>

namespace mlir::attn {
namespace gpu_lowering {
class KernelEmitter;
} // namespace gpu_lowering

/// Lowers the ops of one kind (the root) to host code.
class AttnToGPUPattern {
public:
  explicit AttnToGPUPattern(TypeID root) : root(root) {}
  virtual ~AttnToGPUPattern() = default;

  TypeID getRoot() const { return root; }

  /// Diagnoses the shapes and element types the kernels do not support; run
  /// over the whole module before anything is rewritten.
  virtual LogicalResult checkSupported(Operation *op) const {
    return success();
  }

  /// Emits the host code of `op` at `host`, launching kernels created with
  /// `kernels`, and maps its results in `buffers`.
  virtual LogicalResult lower(Operation *op, BufferAssignment &buffers,
                              gpu_lowering::KernelEmitter &kernels,
                              ImplicitLocOpBuilder &host) const = 0;

private:
  TypeID root;
};

/// An AttnToGPUPattern with `SourceOp` as its root.
template <typename SourceOp>
class OpAttnToGPUPattern : public AttnToGPUPattern {
public:
  OpAttnToGPUPattern() : AttnToGPUPattern(TypeID::get<SourceOp>()) {}

  virtual LogicalResult checkOp(SourceOp op) const { return success(); }
  virtual LogicalResult lowerOp(SourceOp op, BufferAssignment &buffers,
                                gpu_lowering::KernelEmitter &kernels,
                                ImplicitLocOpBuilder &host) const = 0;

private:
  LogicalResult checkSupported(Operation *op) const final {
    return checkOp(cast<SourceOp>(op));
  }
  LogicalResult lower(Operation *op, BufferAssignment &buffers,
                      gpu_lowering::KernelEmitter &kernels,
                      ImplicitLocOpBuilder &host) const final {
    return lowerOp(cast<SourceOp>(op), buffers, kernels, host);
  }
};

/// The patterns of a lowering, at most one per root.
class AttnToGPUPatternSet {
public:
  template <typename... Patterns>
  AttnToGPUPatternSet &add() {
    (insert(std::make_unique<Patterns>()), ...);
    return *this;
  }

  /// The pattern whose root is `op`'s kind, or null.
  const AttnToGPUPattern *lookup(Operation *op) const;

private:
  void insert(std::unique_ptr<AttnToGPUPattern> pattern);

  DenseMap<TypeID, std::unique_ptr<AttnToGPUPattern>> patterns;
};

/// The patterns of convert-attn-to-gpu: the attn compute ops (kernels),
/// RoPE tables, the paged cache's make / parts, and tensor constants, dims
/// and shape casts (buffer views).
void populateAttnToGPUPatterns(AttnToGPUPatternSet &patterns);

} // namespace mlir::attn

#endif // ATTN_CONVERSION_ATTNTOGPU_ATTNTOGPU_H
