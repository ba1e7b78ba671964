//===- EntryStatus.cpp - entry points return their checks' status ---------===//

#include "attn/Dialect/Attn/Transforms/EntryStatus.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNENTRYSTATUS
#include "attn/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// The code a check reports, or nullopt if `op` is not a check.
std::optional<int32_t> statusCode(Operation *op) {
  if (!isa<cf::AssertOp>(op))
    return std::nullopt;
  if (auto code = op->getAttrOfType<IntegerAttr>(kEntryStatusAttrName))
    return static_cast<int32_t>(code.getInt());
  return std::nullopt;
}

LogicalResult addStatus(func::FuncOp func) {
  if (func.getNumResults() != 0)
    return func.emitOpError("must return nothing before its status is added "
                            "(run after the entry ABI)");
  Block &body = func.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  SmallVector<std::pair<cf::AssertOp, int32_t>> checks;
  for (Operation &op : body.without_terminator())
    if (std::optional<int32_t> code = statusCode(&op))
      checks.push_back({cast<cf::AssertOp>(op), *code});

  OpBuilder b(ret);
  Location loc = func.getLoc();
  auto i32Constant = [&](int32_t value) -> Value {
    return arith::ConstantIntOp::create(b, loc, b.getI32Type(), value);
  };
  if (!checks.empty()) {
    Operation *lastCheck = checks.back().first;
    for (Operation &op : body) {
      if (&op == lastCheck)
        break;
      if (!statusCode(&op) && mightHaveEffect<MemoryEffects::Write>(&op))
        return op.emitOpError("writes memory before the entry checks");
    }
    // Everything after the checks runs only if all pass.
    b.setInsertionPointAfter(lastCheck);
    Value allPass = checks.front().first.getArg();
    for (auto [check, code] : llvm::drop_begin(checks))
      allPass = arith::AndIOp::create(b, loc, allPass, check.getArg());
    auto guard = scf::IfOp::create(b, loc, allPass, /*withElseRegion=*/false);
    Block *then = guard.thenBlock();
    then->getOperations().splice(then->begin(), body.getOperations(),
                                 std::next(guard->getIterator()),
                                 ret->getIterator());
  }
  // The first failing check gives the status.
  b.setInsertionPoint(ret);
  Value status = i32Constant(static_cast<int32_t>(EntryStatus::Ok));
  for (auto [check, code] : llvm::reverse(checks)) {
    status = arith::SelectOp::create(b, loc, check.getArg(), status,
                                     i32Constant(code));
    check.erase();
  }
  func::ReturnOp::create(b, ret.getLoc(), status);
  ret.erase();
  func.setFunctionType(FunctionType::get(
      func.getContext(), func.getArgumentTypes(), {b.getI32Type()}));
  return success();
}

/// Adds `const char *attnStatusMessage(int32_t status)`: the message of
/// each status (EntryStatus.h), "unknown status" for other codes.
void addStatusMessageFunction(ModuleOp module) {
  MLIRContext *ctx = module.getContext();
  Location loc = module.getLoc();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto i32 = IntegerType::get(ctx, 32);
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  auto func = LLVM::LLVMFuncOp::create(b, loc, kStatusMessageFunctionName,
                                       LLVM::LLVMFunctionType::get(ptr, {i32}));
  b.setInsertionPointToStart(func.addEntryBlock(b));
  auto message = [&](StringRef name, StringRef text) {
    std::string cString = (text + Twine('\0')).str();
    return LLVM::createGlobalString(loc, b, name, cString,
                                    LLVM::Linkage::Internal);
  };
  Value result = message("attn_status_unknown", "unknown status");
  for (int32_t code = static_cast<int32_t>(EntryStatus::Ok);
       code <= static_cast<int32_t>(kLastEntryStatus); ++code) {
    Value text =
        message(("attn_status_" + Twine(code)).str(),
                entryStatusMessage(static_cast<EntryStatus>(code)));
    Value isCode = LLVM::ICmpOp::create(
        b, loc, LLVM::ICmpPredicate::eq, func.getArgument(0),
        LLVM::ConstantOp::create(b, loc, i32, code));
    result = LLVM::SelectOp::create(b, loc, isCode, text, result);
  }
  LLVM::ReturnOp::create(b, loc, result);
}

/// The type of an entry argument as the signature line spells it: scalars as
/// MLIR prints them, memrefs without layout or memory space (the ABI assumes
/// the identity layout).
std::string signatureType(Type type) {
  if (auto memref = dyn_cast<MemRefType>(type))
    type = MemRefType::get(memref.getShape(), memref.getElementType());
  std::string text;
  llvm::raw_string_ostream os(text);
  type.print(os);
  return text;
}

/// Adds `const char *attnEntrySignatures(void)`: a line `name type type...`
/// per entry point, so that a binding can refuse a call whose arguments'
/// count, ranks, element types or static sizes differ before the call reads
/// them.
void addEntrySignaturesFunction(ModuleOp module,
                                ArrayRef<func::FuncOp> entries) {
  std::string text;
  for (func::FuncOp entry : entries) {
    text += entry.getSymName();
    for (Type type : entry.getArgumentTypes())
      text += " " + signatureType(type);
    text += "\n";
  }
  text += '\0';
  MLIRContext *ctx = module.getContext();
  Location loc = module.getLoc();
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  auto func = LLVM::LLVMFuncOp::create(
      b, loc, kEntrySignaturesFunctionName,
      LLVM::LLVMFunctionType::get(LLVM::LLVMPointerType::get(ctx), {}));
  b.setInsertionPointToStart(func.addEntryBlock(b));
  Value result = LLVM::createGlobalString(loc, b, "attn_entry_signatures",
                                          text, LLVM::Linkage::Internal);
  LLVM::ReturnOp::create(b, loc, result);
}

struct AttnEntryStatusPass
    : attn::impl::AttnEntryStatusBase<AttnEntryStatusPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // The entry points are the functions exporting a C interface.
    SmallVector<func::FuncOp> entries;
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal() ||
          !func->hasAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName()))
        continue;
      if (failed(addStatus(func)))
        return signalPassFailure();
      entries.push_back(func);
    }
    if (entries.empty())
      return;
    if (!module.lookupSymbol(kStatusMessageFunctionName))
      addStatusMessageFunction(module);
    if (!module.lookupSymbol(kEntrySignaturesFunctionName))
      addEntrySignaturesFunction(module, entries);
  }
};

} // namespace
