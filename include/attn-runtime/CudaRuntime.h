//===- CudaRuntime.h - attn CUDA runtime ------------------------*- C++ -*-===//
//
// libattn_cuda_runtime: the mgpu* functions that compiled GPU layers call
// (see lib/Runtime/CUDA/CudaRuntime.cpp), plus error reporting for callers.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_RUNTIME_CUDARUNTIME_H
#define ATTN_RUNTIME_CUDARUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The first CUresult that failed in this process (0 if none); failures abort
/// unless ATTN_CUDA_CONTINUE_ON_ERROR=1.
int32_t attnCudaLastError(void);

/// The CUstream that compiled functions called from this thread run on
/// (nullptr: the legacy default stream, the initial setting). A call still
/// returns only when its work on that stream is done.
void attnCudaSetStream(void *stream);

#ifdef __cplusplus
}
#endif

#endif // ATTN_RUNTIME_CUDARUNTIME_H
