//===- attn-lsp-server.cpp - language server for attn IR ------------------===//
//
// mlir-lsp-server with the attn dialect registered: diagnostics, hover,
// go-to-definition and completion for .mlir files with attn ops in editors.
//
//===----------------------------------------------------------------------===//

#include "attn/InitAll.h"

#include "mlir/Tools/mlir-lsp-server/MlirLspServerMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::attn::registerAllDialects(registry);
  return mlir::failed(mlir::MlirLspServerMain(argc, argv, registry));
}
