/*===- RegisterEverything.h - register the attn compiler ----------*- C -*-===*\
|*                                                                            *|
|* What attn-opt and attn-compile register: the attn dialect and passes on    *|
|* top of every upstream dialect, extension, LLVM IR translation and pass     *|
|* that the attn pipelines use.                                               *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef ATTN_C_REGISTEREVERYTHING_H
#define ATTN_C_REGISTEREVERYTHING_H

#include "mlir-c/IR.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Adds the attn dialect and every dialect, extension and LLVM IR translation
/// that attn IR and its lowerings use to `registry`.
MLIR_CAPI_EXPORTED void attnRegisterAllDialects(MlirDialectRegistry registry);

/// Registers every upstream pass, the attn passes and the attn pipelines
/// (attn-lower-to-cpu, attn-lower-to-nvvm) with the process-wide pass
/// registry, so that attnRunPassPipeline can name them. Safe to call more
/// than once.
MLIR_CAPI_EXPORTED void attnRegisterAllPasses(void);

#ifdef __cplusplus
}
#endif

#endif // ATTN_C_REGISTEREVERYTHING_H
