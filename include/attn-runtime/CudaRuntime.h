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
/// (nullptr: the legacy default stream, the initial setting). A call returns
/// once its work is enqueued on that stream (ATTN_CUDA_SYNCHRONOUS=1: once it
/// is done); synchronise the stream before reading its results. A call
/// neither synchronises nor takes memory from the OS, so it can be captured
/// into a CUDA graph on a capturing stream.
void attnCudaSetStream(void *stream);

#ifdef __cplusplus
}
#endif

#endif // ATTN_RUNTIME_CUDARUNTIME_H
