//===- KernelArguments.h - kernel arguments as named structs ---*- C++ -*-===//
//
// A kernel's arguments are a struct of named values: the host fills it with
// the buffers to pass, and the kernel body reads the same struct holding the
// kernel's own arguments. An argument struct `Args` lists its fields with
// `template <typename F> void forEach(F f)`, calling `f(Value &)` on each in
// argument order; a null field (an optional argument left out) is not passed.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELARGUMENTS_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELARGUMENTS_H

#include "KernelBuilder.h"

#include <tuple>

namespace mlir::attn::gpu_lowering {

/// The values `args` passes, in argument order.
template <typename Args> SmallVector<Value> argumentList(Args args) {
  SmallVector<Value> values;
  args.forEach([&](Value &v) {
    if (v)
      values.push_back(v);
  });
  return values;
}

/// A kernel `name` taking the values of `host`: the kernel, a builder at the
/// start of its body, and `host` with each passed field replaced by the
/// kernel's argument.
template <typename Args>
std::tuple<gpu::GPUFuncOp, IB, Args>
createKernel(KernelEmitter &e, Location loc, StringRef name, Args host,
             TypeRange workgroup, int64_t threads) {
  SmallVector<Value> values = argumentList(host);
  auto [kernel, b] = e.createKernel(loc, name, ValueRange(values).getTypes(),
                                    workgroup, threads);
  ValueRange kernelValues = kernel.getArguments();
  unsigned next = 0;
  host.forEach([&](Value &v) {
    if (v)
      v = kernelValues[next++];
  });
  return {kernel, b, host};
}

} // namespace mlir::attn::gpu_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELARGUMENTS_H
