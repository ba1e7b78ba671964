// RUN: attn-opt %s --pass-pipeline='builtin.module(func.func(shard-partition))' -split-input-file -verify-diagnostics

// Hand-written annotations that sharding-propagation would not produce.

shard.grid @grid(shape = 2)

// Column-parallel: the bias must be split with the weight's rows.
func.func @replicated_bias(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %b: tensor<32xf32>) -> tensor<?x32xf32> {
  %repl = shard.sharding @grid split_axes = [[]] : !shard.sharding
  %rows = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %cols = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %x_s = shard.shard %x to %repl annotate_for_users : tensor<?x64xf32>
  %w_s = shard.shard %w to %rows annotate_for_users : tensor<32x64xf32>
  %b_s = shard.shard %b to %repl annotate_for_users : tensor<32xf32>
  // expected-error @+1 {{expects operand #2 to be split along the same loops as its other operands and results}}
  %y = attn.linear %x_s, %w_s bias %b_s : tensor<?x64xf32>, tensor<32x64xf32>, tensor<32xf32> -> tensor<?x32xf32>
  %y_s = shard.shard %y to %cols : tensor<?x32xf32>
  return %y_s : tensor<?x32xf32>
}

// -----

shard.grid @grid(shape = 2x2)

// The rows of the input on one grid axis, those of the result on another.
func.func @different_axes(%x: tensor<?x4x16xf32>, %gamma: tensor<16xf32>) -> tensor<?x4x16xf32> {
  %axis0 = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %axis1 = shard.sharding @grid split_axes = [[1]] : !shard.sharding
  %repl = shard.sharding @grid split_axes = [[]] : !shard.sharding
  %x_s = shard.shard %x to %axis0 annotate_for_users : tensor<?x4x16xf32>
  %g_s = shard.shard %gamma to %repl annotate_for_users : tensor<16xf32>
  // expected-error @+1 {{has operands and results sharded along different grid axes for one loop}}
  %y = attn.rms_norm %x_s, %g_s : tensor<?x4x16xf32>, tensor<16xf32>
  %y_s = shard.shard %y to %axis1 : tensor<?x4x16xf32>
  return %y_s : tensor<?x4x16xf32>
}
