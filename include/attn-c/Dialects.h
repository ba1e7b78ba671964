/*===- Dialects.h - C API of the attn dialect ---------------------*- C -*-===*\
|*                                                                            *|
|* The dialect handle, as upstream's dialects declare it: insert it into a    *|
|* registry (mlirDialectHandleInsertDialect) or load it into a context        *|
|* (mlirDialectHandleLoadDialect).                                            *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef ATTN_C_DIALECTS_H
#define ATTN_C_DIALECTS_H

#include "mlir-c/IR.h"

#ifdef __cplusplus
extern "C" {
#endif

MLIR_DECLARE_CAPI_DIALECT_REGISTRATION(Attn, attn);

#ifdef __cplusplus
}
#endif

#endif // ATTN_C_DIALECTS_H
