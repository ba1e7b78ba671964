// RUN: not attn-opt %s --attn-shard="strategy=pipeline" 2>&1 | FileCheck %s --check-prefix=STRATEGY
// RUN: not attn-opt %s --attn-shard="strategy=data devices=0" 2>&1 | FileCheck %s --check-prefix=DEVICES
// RUN: attn-opt %s --attn-shard="strategy=data" | not attn-opt --attn-shard="strategy=data" 2>&1 | FileCheck %s --check-prefix=TWICE

// STRATEGY: error: attn-shard: unknown strategy 'pipeline' (expected tensor or data)
// DEVICES: error: attn-shard: devices must be positive, got 0
// TWICE: error: attn-shard: the module is already sharded (@attn_devices exists)
func.func @empty() {
  return
}
