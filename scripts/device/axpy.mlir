// Adds two vectors on the GPU through gpu.launch_func; host code calls the
// mgpu* functions of libattn_cuda_runtime.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @axpy(%x: memref<1024xf32>, %y: memref<1024xf32>, %a: f32) kernel {
      %i = gpu.thread_id x
      %b = gpu.block_id x
      %n = gpu.block_dim x
      %base = arith.muli %b, %n : index
      %idx = arith.addi %base, %i : index
      %xv = memref.load %x[%idx] : memref<1024xf32>
      %yv = memref.load %y[%idx] : memref<1024xf32>
      %r = math.fma %a, %xv, %yv : f32
      memref.store %r, %y[%idx] : memref<1024xf32>
      gpu.return
    }
  }
  func.func @axpy_host(%hx: memref<1024xf32>, %hy: memref<1024xf32>, %a: f32) attributes {llvm.emit_c_interface} {
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %c256 = arith.constant 256 : index
    %t0 = gpu.wait async
    %dx, %t1 = gpu.alloc async [%t0] () : memref<1024xf32>
    %dy, %t2 = gpu.alloc async [%t1] () : memref<1024xf32>
    %t3 = gpu.memcpy async [%t2] %dx, %hx : memref<1024xf32>, memref<1024xf32>
    %t4 = gpu.memcpy async [%t3] %dy, %hy : memref<1024xf32>, memref<1024xf32>
    %t5 = gpu.launch_func async [%t4] @kernels::@axpy blocks in (%c4, %c1, %c1) threads in (%c256, %c1, %c1) args(%dx : memref<1024xf32>, %dy : memref<1024xf32>, %a : f32)
    %t6 = gpu.memcpy async [%t5] %hy, %dy : memref<1024xf32>, memref<1024xf32>
    %t7 = gpu.dealloc async [%t6] %dx : memref<1024xf32>
    %t8 = gpu.dealloc async [%t7] %dy : memref<1024xf32>
    gpu.wait [%t8]
    return
  }
}
