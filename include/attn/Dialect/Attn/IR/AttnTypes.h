//===- AttnTypes.h - attn types ---------------------------------*- C++ -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNTYPES_H
#define ATTN_DIALECT_ATTN_IR_ATTNTYPES_H

#include "attn/Dialect/Attn/IR/AttnAttrs.h"
#include "mlir/IR/Types.h"

#define GET_TYPEDEF_CLASSES
#include "attn/Dialect/Attn/IR/AttnTypes.h.inc"

#endif // ATTN_DIALECT_ATTN_IR_ATTNTYPES_H
