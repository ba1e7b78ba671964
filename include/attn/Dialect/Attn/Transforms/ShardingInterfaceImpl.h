//===- ShardingInterfaceImpl.h - attn ops under the shard passes -*- C++ -*-===//
//
// shard::ShardingInterface for the attn ops on ranked tensors (and for
// tensor.collapse_shape, which joins the heads of the attention output before
// the output projection), so that upstream `sharding-propagation` and
// `shard-partition` shard a layer written with primitive ops.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_DIALECT_ATTN_TRANSFORMS_SHARDINGINTERFACEIMPL_H
#define ATTN_DIALECT_ATTN_TRANSFORMS_SHARDINGINTERFACEIMPL_H

namespace mlir {
class DialectRegistry;

namespace attn {
void registerShardingInterfaceExternalModels(DialectRegistry &registry);
} // namespace attn
} // namespace mlir

#endif // ATTN_DIALECT_ATTN_TRANSFORMS_SHARDINGINTERFACEIMPL_H
