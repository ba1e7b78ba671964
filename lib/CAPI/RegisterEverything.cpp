//===- RegisterEverything.cpp - register the attn compiler ----------------===//

#include "attn-c/RegisterEverything.h"

#include "attn/InitAll.h"

#include "mlir/CAPI/IR.h"

#include <mutex>

void attnRegisterAllDialects(MlirDialectRegistry registry) {
  mlir::attn::registerAllDialects(*unwrap(registry));
}

void attnRegisterAllPasses(void) {
  static std::once_flag registered;
  std::call_once(registered, [] { mlir::attn::registerAllPasses(); });
}
