//===- BufferAssignment.cpp - device buffers of a GPU host function -------===//

#include "attn/Conversion/AttnToGPU/BufferAssignment.h"

#include "attn/Conversion/EntryABI.h"
#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::attn;

MemRefType mlir::attn::bufferType(Type tensorType) {
  auto tensor = cast<RankedTensorType>(tensorType);
  return MemRefType::get(tensor.getShape(), tensor.getElementType());
}

/// The host types of the arguments: device buffers for tensors, scalars as
/// they are.
static FailureOr<SmallVector<Type>> argumentTypes(func::FuncOp func) {
  SmallVector<Type> types;
  for (BlockArgument arg : func.getArguments()) {
    if (isa<RankedTensorType>(arg.getType()))
      types.push_back(bufferType(arg.getType()));
    else if (arg.getType().isIntOrIndexOrFloat())
      types.push_back(arg.getType());
    else
      return func.emitOpError("argument #")
             << arg.getArgNumber() << " of type " << arg.getType()
             << " cannot cross the GPU entry point (unpack caches first)";
  }
  return types;
}

/// The out-parameter types of the results not returned in place, recording
/// at which out indices each value is returned.
static FailureOr<SmallVector<Type>>
outParameterTypes(func::ReturnOp ret,
                  DenseMap<Value, SmallVector<unsigned, 1>> &returnedAt) {
  SmallVector<Type> types;
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    if (inPlaceSource(v))
      continue;
    if (!isa<RankedTensorType>(v.getType()))
      return ret.emitOpError("result #") << i << " must be a ranked tensor";
    returnedAt[v].push_back(types.size());
    types.push_back(bufferType(v.getType()));
  }
  return types;
}

FailureOr<BufferAssignment> BufferAssignment::create(func::FuncOp func) {
  if (!func.getBody().hasOneBlock())
    return func.emitOpError("the GPU lowering needs a single-block function");
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  FailureOr<SmallVector<Type>> types = argumentTypes(func);
  if (failed(types))
    return failure();
  DenseMap<Value, SmallVector<unsigned, 1>> returnedAt;
  FailureOr<SmallVector<Type>> outTypes = outParameterTypes(ret, returnedAt);
  if (failed(outTypes))
    return failure();
  types->append(*outTypes);

  OpBuilder ob(func);
  auto host = func::FuncOp::create(
      ob, func.getLoc(), func.getName(),
      FunctionType::get(func.getContext(), *types, {}));
  host.setVisibility(func.getVisibility());
  exportCInterface(host);
  host.addEntryBlock();
  return BufferAssignment(func, host, std::move(returnedAt));
}

BufferAssignment::BufferAssignment(
    func::FuncOp func, func::FuncOp host,
    DenseMap<Value, SmallVector<unsigned, 1>> returnedAt)
    : func(func), host(host), returnedAt(std::move(returnedAt)) {
  Block &entry = hostBody();
  for (auto [oldArg, newArg] :
       llvm::zip(func.getArguments(), entry.getArguments()))
    mapping.map(oldArg, newArg);
  outParams.assign(entry.args_begin() + func.getNumArguments(),
                   entry.args_end());
  outWritten.assign(outParams.size(), false);
}

Value BufferAssignment::destination(ImplicitLocOpBuilder &b, Value result,
                                    Value shapeSource) {
  auto it = returnedAt.find(result);
  if (it != returnedAt.end() && !outWritten[it->second.front()]) {
    // The first out-parameter; copies of it fill any others.
    outWritten[it->second.front()] = true;
    return outParams[it->second.front()];
  }
  MemRefType type = bufferType(result.getType());
  SmallVector<Value> dynamicSizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      dynamicSizes.push_back(b.createOrFold<memref::DimOp>(shapeSource, d));
  Value buffer = gpu::AllocOp::create(b, type, Type(), ValueRange{},
                                      dynamicSizes, ValueRange{})
                     .getMemref();
  temporaries.push_back(buffer);
  return buffer;
}

FailureOr<Value> BufferAssignment::updateInPlace(Operation *writer,
                                                 Value blocks) {
  for (Operation *user : blocks.getUsers())
    if (user != writer && writer->isBeforeInBlock(user))
      return writer->emitOpError(
          "overwrites the cache blocks in place on the GPU, but they are read "
          "again afterwards; use the store's result instead");
  return lookup(blocks);
}

void BufferAssignment::mapCache(Value cache, ValueRange parts) {
  caches[cache] = llvm::to_vector_of<Value, 3>(parts);
}

ArrayRef<Value> BufferAssignment::cacheParts(Value cache) const {
  auto it = caches.find(cache);
  return it == caches.end() ? ArrayRef<Value>() : ArrayRef(it->second);
}

void BufferAssignment::finish(ImplicitLocOpBuilder &b) {
  for (auto &[v, indices] : returnedAt)
    for (unsigned index : indices)
      if (!outWritten[index])
        gpu::MemcpyOp::create(b, Type(), ValueRange{}, outParams[index],
                              lookup(v));
  for (Value t : temporaries)
    gpu::DeallocOp::create(b, Type(), ValueRange{}, t);
  func::ReturnOp::create(b);
  func.erase();
}
