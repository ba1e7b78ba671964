// RUN: attn-opt %s --convert-attn-to-gpu --canonicalize --cse -split-input-file | FileCheck %s
// RUN: attn-opt %s --convert-attn-to-gpu="sm-count=100 max-splits=8" --canonicalize --cse -split-input-file | FileCheck %s --check-prefix=OPTS
//
// The host's launch plan of the attention kernels (Attention/LaunchPlan.h),
// per call from the batch's row counts: the schedule (decode when
// T <= 4 B), the key splits of each schedule, the grid and the rows of the
// split partials.

// Paged, GQA group 2: prefill tiles hold 64 / 2 = 32 query rows, decode
// tiles 16 / 2 = 8. With the default 132 SMs and at most 64 splits.
// CHECK-LABEL: func.func @paged(
// CHECK-SAME: [[Q:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[BLK:%[a-zA-Z0-9_]+]]: memref<?x2x2x16x2x64xbf16>,
// CHECK-SAME: [[OFF:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[LEN:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[LUT:%[a-zA-Z0-9_]+]]: memref<?x?xi32>, [[O:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>)
// CHECK-DAG: [[C0:%[a-zA-Z0-9_]+]] = arith.constant 0 : index
// CHECK-DAG: [[C1:%[a-zA-Z0-9_]+]] = arith.constant 1 : index
// CHECK-DAG: [[C2:%[a-zA-Z0-9_]+]] = arith.constant 2 : index
// CHECK-DAG: [[C4:%[a-zA-Z0-9_]+]] = arith.constant 4 : index
// CHECK-DAG: [[C8:%[a-zA-Z0-9_]+]] = arith.constant 8 : index
// CHECK-DAG: [[C16:%[a-zA-Z0-9_]+]] = arith.constant 16 : index
// CHECK-DAG: [[C32:%[a-zA-Z0-9_]+]] = arith.constant 32 : index
// CHECK-DAG: [[C64:%[a-zA-Z0-9_]+]] = arith.constant 64 : index
// CHECK-DAG: [[C128:%[a-zA-Z0-9_]+]] = arith.constant 128 : index
// CHECK-DAG: [[C256:%[a-zA-Z0-9_]+]] = arith.constant 256 : index
// CHECK-DAG: [[C264:%[a-zA-Z0-9_]+]] = arith.constant 264 : index
// CHECK-DAG: [[C528:%[a-zA-Z0-9_]+]] = arith.constant 528 : index
// CHECK-DAG: [[C1056:%[a-zA-Z0-9_]+]] = arith.constant 1056 : index
// CHECK-DAG: [[SMEM:%[a-zA-Z0-9_]+]] = arith.constant 33792 : i32
// T query rows, B sequences, at most pages x 16 keys a sequence.
// CHECK: [[T:%[a-zA-Z0-9_]+]] = memref.dim [[Q]], [[C0]]
// CHECK-NEXT: [[OFFS:%[a-zA-Z0-9_]+]] = memref.dim [[OFF]], [[C0]]
// CHECK-NEXT: [[B:%[a-zA-Z0-9_]+]] = arith.subi [[OFFS]], [[C1]] : index
// CHECK-NEXT: [[PAGES:%[a-zA-Z0-9_]+]] = memref.dim [[LUT]], [[C1]]
// CHECK-NEXT: [[KEYS:%[a-zA-Z0-9_]+]] = arith.muli [[PAGES]], [[C16]] : index
// Decode when there are at most 4 query rows per sequence.
// CHECK-NEXT: [[B4:%[a-zA-Z0-9_]+]] = arith.muli [[B]], [[C4]] : index
// CHECK-NEXT: [[DECODE:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[T]], [[B4]] : index
// A split covers at least 256 keys; at most 64 splits.
// CHECK-NEXT: [[KS:%[a-zA-Z0-9_]+]] = arith.ceildivui [[KEYS]], [[C256]] : index
// CHECK-NEXT: [[KS1:%[a-zA-Z0-9_]+]] = arith.maxsi [[KS]], [[C1]] : index
// CHECK-NEXT: [[CAP:%[a-zA-Z0-9_]+]] = arith.minsi [[KS1]], [[C64]] : index
// Prefill: busy blocks = min(B x tiles, tiles + B) x 2 kv heads; splits to
// fill 4 x 132 blocks, none once 2 x 132 blocks are busy.
// CHECK-NEXT: [[TILES:%[a-zA-Z0-9_]+]] = arith.ceildivui [[T]], [[C32]] : index
// CHECK-NEXT: [[BT:%[a-zA-Z0-9_]+]] = arith.muli [[B]], [[TILES]] : index
// CHECK-NEXT: [[GRIDP:%[a-zA-Z0-9_]+]] = arith.addi [[TILES]], [[B]] : index
// CHECK-NEXT: [[BUSY0:%[a-zA-Z0-9_]+]] = arith.minsi [[BT]], [[GRIDP]] : index
// CHECK-NEXT: [[BUSY1:%[a-zA-Z0-9_]+]] = arith.muli [[BUSY0]], [[C2]] : index
// CHECK-NEXT: [[BUSY:%[a-zA-Z0-9_]+]] = arith.maxsi [[BUSY1]], [[C1]] : index
// CHECK-NEXT: [[WANT:%[a-zA-Z0-9_]+]] = arith.ceildivui [[C528]], [[BUSY]] : index
// CHECK-NEXT: [[W1:%[a-zA-Z0-9_]+]] = arith.minsi [[WANT]], [[CAP]] : index
// CHECK-NEXT: [[W2:%[a-zA-Z0-9_]+]] = arith.maxsi [[W1]], [[C1]] : index
// CHECK-NEXT: [[FULL:%[a-zA-Z0-9_]+]] = arith.cmpi sge, [[BUSY]], [[C264]] : index
// CHECK-NEXT: [[SPLITSP:%[a-zA-Z0-9_]+]] = arith.select [[FULL]], [[C1]], [[W2]] : index
// Decode: busy blocks = max(min(T, B), 1) x 2 kv heads; the most splits
// that fit two waves of 4 blocks x 132 SMs.
// CHECK-NEXT: [[SEQS:%[a-zA-Z0-9_]+]] = arith.minsi [[T]], [[B]] : index
// CHECK-NEXT: [[SEQS1:%[a-zA-Z0-9_]+]] = arith.maxsi [[SEQS]], [[C1]] : index
// CHECK-NEXT: [[DBUSY:%[a-zA-Z0-9_]+]] = arith.muli [[SEQS1]], [[C2]] : index
// CHECK-NEXT: [[FIT:%[a-zA-Z0-9_]+]] = arith.divui [[C1056]], [[DBUSY]] : index
// CHECK-NEXT: [[F1:%[a-zA-Z0-9_]+]] = arith.minsi [[FIT]], [[CAP]] : index
// CHECK-NEXT: [[SPLITSD:%[a-zA-Z0-9_]+]] = arith.maxsi [[F1]], [[C1]] : index
// CHECK-NEXT: [[SPLITS:%[a-zA-Z0-9_]+]] = arith.select [[DECODE]], [[SPLITSD]], [[SPLITSP]] : index
// (sequence, query tile) pairs, at most T / rows + B.
// CHECK-NEXT: [[TILESD:%[a-zA-Z0-9_]+]] = arith.ceildivui [[T]], [[C8]] : index
// CHECK-NEXT: [[GRIDD:%[a-zA-Z0-9_]+]] = arith.addi [[TILESD]], [[B]] : index
// CHECK-NEXT: [[QTILES:%[a-zA-Z0-9_]+]] = arith.select [[DECODE]], [[GRIDD]], [[GRIDP]] : index
// Partials: one per split, one per warp and split at decode; buffers of 0
// rows when there is only one.
// CHECK-NEXT: [[PW:%[a-zA-Z0-9_]+]] = arith.muli [[SPLITS]], [[C4]] : index
// CHECK-NEXT: [[PARTS:%[a-zA-Z0-9_]+]] = arith.select [[DECODE]], [[PW]], [[SPLITSP]] : index
// CHECK-NEXT: [[MANY:%[a-zA-Z0-9_]+]] = arith.cmpi ugt, [[PARTS]], [[C1]] : index
// CHECK-NEXT: [[ROWS:%[a-zA-Z0-9_]+]] = arith.select [[MANY]], [[PARTS]], [[C0]] : index
// CHECK-NEXT: [[OP:%[a-zA-Z0-9_]+]] = gpu.alloc  ([[ROWS]], [[T]]) : memref<?x?x4x64xf32>
// CHECK-NEXT: [[LP:%[a-zA-Z0-9_]+]] = gpu.alloc  ([[ROWS]], [[T]]) : memref<?x?x4xf32>
// CHECK-NEXT: [[M32:%[a-zA-Z0-9_]+]] = arith.extui [[DECODE]] : i1 to i32
// CHECK-NEXT: [[MODE:%[a-zA-Z0-9_]+]] = arith.index_cast [[M32]] : i32 to index
// Grid x: (query tile, KV head) pairs, the head fastest.
// CHECK-NEXT: [[GRIDX:%[a-zA-Z0-9_]+]] = arith.muli [[QTILES]], [[C2]] : index
// Only the schedule the host picked is launched.
// CHECK-NEXT: [[PREFILL:%[a-zA-Z0-9_]+]] = arith.cmpi ugt, [[T]], [[B4]] : index
// CHECK-NEXT: scf.if [[PREFILL]] {
// CHECK-NEXT: [[PX:%[a-zA-Z0-9_]+]] = arith.maxsi [[GRIDX]], [[C1]] : index
// CHECK-NEXT: [[PZ:%[a-zA-Z0-9_]+]] = arith.maxsi [[SPLITS]], [[C1]] : index
// CHECK-NEXT: gpu.launch_func  @attn_kernels::@paged_flash_attention_prefill blocks in ([[PX]], [[C1]], [[PZ]]) threads in ([[C128]], [[C1]], [[C1]])  dynamic_shared_memory_size [[SMEM]]
// CHECK-SAME: [[OP]] : memref<?x?x4x64xf32>, [[LP]] : memref<?x?x4xf32>, [[SPLITS]] : index, [[MODE]] : index)
// CHECK-NEXT: } else {
// CHECK-NEXT: [[DX:%[a-zA-Z0-9_]+]] = arith.maxsi [[GRIDX]], [[C1]] : index
// CHECK-NEXT: [[DZ:%[a-zA-Z0-9_]+]] = arith.maxsi [[SPLITS]], [[C1]] : index
// CHECK-NEXT: gpu.launch_func  @attn_kernels::@paged_flash_attention_decode blocks in ([[DX]], [[C1]], [[DZ]]) threads in ([[C128]], [[C1]], [[C1]])  args(
// CHECK-SAME: [[OP]] : memref<?x?x4x64xf32>, [[LP]] : memref<?x?x4xf32>, [[SPLITS]] : index, [[MODE]] : index)
// CHECK-NEXT: }
// The combine: a thread per (row, head, column), none with one partial.
// CHECK-NEXT: [[TO:%[a-zA-Z0-9_]+]] = memref.dim [[O]], [[C0]]
// CHECK-NEXT: [[ITEMS:%[a-zA-Z0-9_]+]] = arith.muli [[TO]], [[C256]] : index
// CHECK-NEXT: [[COUNT:%[a-zA-Z0-9_]+]] = arith.select [[MANY]], [[ITEMS]], [[C0]] : index
// CHECK-NEXT: [[CB:%[a-zA-Z0-9_]+]] = arith.ceildivui [[COUNT]], [[C256]] : index
// CHECK-NEXT: [[CB1:%[a-zA-Z0-9_]+]] = arith.maxsi [[CB]], [[C1]] : index
// CHECK-NEXT: gpu.launch_func  @attn_kernels::@attention_combine blocks in ([[CB1]], [[C1]], [[C1]]) threads in ([[C256]], [[C1]], [[C1]])  args([[OP]] : memref<?x?x4x64xf32>, [[LP]] : memref<?x?x4xf32>, [[O]] : memref<?x4x64xbf16>, [[PARTS]] : index, [[COUNT]] : index)
// CHECK-NEXT: gpu.dealloc  [[OP]]
// CHECK-NEXT: gpu.dealloc  [[LP]]
// CHECK-NEXT: return
//
// Other tunables: 100 SMs and at most 8 splits.
// OPTS-LABEL: func.func @paged(
// OPTS-DAG: arith.constant 8 : index
// OPTS-DAG: arith.constant 200 : index
// OPTS-DAG: arith.constant 400 : index
// OPTS-DAG: arith.constant 800 : index
// OPTS: [[CAP:%[a-zA-Z0-9_]+]] = arith.minsi %{{.+}}, %c8 : index
// OPTS: arith.ceildivui %c400, %{{.+}} : index
// OPTS-NEXT: arith.minsi %{{.+}}, [[CAP]] : index
// OPTS: arith.cmpi sge, %{{.+}}, %c200 : index
// OPTS: arith.divui %c800, %{{.+}} : index
// OPTS-NEXT: arith.minsi %{{.+}}, [[CAP]] : index
func.func @paged(%q: tensor<?x4x64xbf16>, %blocks: tensor<?x2x2x16x2x64xbf16>,
                 %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x64xbf16> {
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xbf16>, tensor<?x2x2x16x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x64xbf16>
}

// -----

// Explicit K/V, GQA group 32: a 16-row decode tile cannot hold a group, so
// there is only the prefill kernel (2 query rows a tile), always picked
// (mode 0); at most Tk keys a sequence.
// CHECK-LABEL: func.func @no_decode(
// CHECK-SAME: [[Q:%[a-zA-Z0-9_]+]]: memref<?x32x128xf16>, [[K:%[a-zA-Z0-9_]+]]: memref<?x1x128xf16>, [[V:%[a-zA-Z0-9_]+]]: memref<?x1x128xf16>,
// CHECK-SAME: [[QO:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[KO:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[O:%[a-zA-Z0-9_]+]]: memref<?x32x128xf16>)
// CHECK-DAG: [[C0:%[a-zA-Z0-9_]+]] = arith.constant 0 : index
// CHECK-DAG: [[C1:%[a-zA-Z0-9_]+]] = arith.constant 1 : index
// CHECK-DAG: [[C2:%[a-zA-Z0-9_]+]] = arith.constant 2 : index
// CHECK-DAG: [[C64:%[a-zA-Z0-9_]+]] = arith.constant 64 : index
// CHECK-DAG: [[C128:%[a-zA-Z0-9_]+]] = arith.constant 128 : index
// CHECK-DAG: [[C256:%[a-zA-Z0-9_]+]] = arith.constant 256 : index
// CHECK-DAG: [[C264:%[a-zA-Z0-9_]+]] = arith.constant 264 : index
// CHECK-DAG: [[C528:%[a-zA-Z0-9_]+]] = arith.constant 528 : index
// CHECK-DAG: [[SMEM:%[a-zA-Z0-9_]+]] = arith.constant 58368 : i32
// CHECK: [[T:%[a-zA-Z0-9_]+]] = memref.dim [[Q]], [[C0]]
// CHECK-NEXT: [[OFFS:%[a-zA-Z0-9_]+]] = memref.dim [[QO]], [[C0]]
// CHECK-NEXT: [[B:%[a-zA-Z0-9_]+]] = arith.subi [[OFFS]], [[C1]] : index
// CHECK-NEXT: [[KEYS:%[a-zA-Z0-9_]+]] = memref.dim [[K]], [[C0]]
// CHECK-NEXT: [[KS:%[a-zA-Z0-9_]+]] = arith.ceildivui [[KEYS]], [[C256]] : index
// CHECK-NEXT: [[KS1:%[a-zA-Z0-9_]+]] = arith.maxsi [[KS]], [[C1]] : index
// CHECK-NEXT: [[CAP:%[a-zA-Z0-9_]+]] = arith.minsi [[KS1]], [[C64]] : index
// CHECK-NEXT: [[TILES:%[a-zA-Z0-9_]+]] = arith.ceildivui [[T]], [[C2]] : index
// CHECK-NEXT: [[BT:%[a-zA-Z0-9_]+]] = arith.muli [[B]], [[TILES]] : index
// CHECK-NEXT: [[GRID:%[a-zA-Z0-9_]+]] = arith.addi [[TILES]], [[B]] : index
// CHECK-NEXT: [[BUSY0:%[a-zA-Z0-9_]+]] = arith.minsi [[BT]], [[GRID]] : index
// CHECK-NEXT: [[BUSY:%[a-zA-Z0-9_]+]] = arith.maxsi [[BUSY0]], [[C1]] : index
// CHECK-NEXT: [[WANT:%[a-zA-Z0-9_]+]] = arith.ceildivui [[C528]], [[BUSY]] : index
// CHECK-NEXT: [[W1:%[a-zA-Z0-9_]+]] = arith.minsi [[WANT]], [[CAP]] : index
// CHECK-NEXT: [[W2:%[a-zA-Z0-9_]+]] = arith.maxsi [[W1]], [[C1]] : index
// CHECK-NEXT: [[FULL:%[a-zA-Z0-9_]+]] = arith.cmpi sge, [[BUSY]], [[C264]] : index
// CHECK-NEXT: [[SPLITS:%[a-zA-Z0-9_]+]] = arith.select [[FULL]], [[C1]], [[W2]] : index
// CHECK-NEXT: [[MANY:%[a-zA-Z0-9_]+]] = arith.cmpi ugt, [[SPLITS]], [[C1]] : index
// CHECK-NEXT: [[ROWS:%[a-zA-Z0-9_]+]] = arith.select [[MANY]], [[SPLITS]], [[C0]] : index
// CHECK-NEXT: [[OP:%[a-zA-Z0-9_]+]] = gpu.alloc  ([[ROWS]], [[T]]) : memref<?x?x32x128xf32>
// CHECK-NEXT: [[LP:%[a-zA-Z0-9_]+]] = gpu.alloc  ([[ROWS]], [[T]]) : memref<?x?x32xf32>
// CHECK-NEXT: [[GX:%[a-zA-Z0-9_]+]] = arith.maxsi [[GRID]], [[C1]] : index
// CHECK-NEXT: [[GZ:%[a-zA-Z0-9_]+]] = arith.maxsi [[SPLITS]], [[C1]] : index
// CHECK-NEXT: gpu.launch_func  @attn_kernels::@flash_attention blocks in ([[GX]], [[C1]], [[GZ]]) threads in ([[C128]], [[C1]], [[C1]])  dynamic_shared_memory_size [[SMEM]]
// CHECK-SAME: [[OP]] : memref<?x?x32x128xf32>, [[LP]] : memref<?x?x32xf32>, [[SPLITS]] : index, [[C0]] : index)
// No decode launch: the combine follows.
// CHECK-NEXT: memref.dim [[O]], [[C0]]
// CHECK: gpu.launch_func  @attn_kernels::@attention_combine
// CHECK-SAME: [[SPLITS]] : index
// CHECK-NOT: gpu.func @flash_attention_decode
func.func @no_decode(%q: tensor<?x32x128xf16>, %k: tensor<?x1x128xf16>, %v: tensor<?x1x128xf16>,
                     %qo: tensor<?xi32>, %ko: tensor<?xi32>) -> tensor<?x32x128xf16> {
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko) {mask = #attn.mask<causal>, scale = 0.1 : f64}
      : tensor<?x32x128xf16>, tensor<?x1x128xf16>, tensor<?x1x128xf16>, tensor<?xi32>, tensor<?xi32>
  return %0 : tensor<?x32x128xf16>
}
