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

/// What compiled layers call before a TMA load (docs/GPULowering.md): writes
/// to `map` (128 bytes, 64-byte aligned: a CUtensorMap) the tensor map of the
/// row-major matrix at `base` (`rows` x `cols` elements of CUtensorMapDataType
/// `dataType`, rows `rowBytes` apart) for `boxRows` x `boxCols` boxes,
/// 128-byte swizzled, zeros outside. A base or row pitch that is not a
/// multiple of 16 bytes is an error (reported as any failed CUDA call).
void attnCudaEncodeTensorMap(void *map, int64_t base, int32_t dataType,
                             int64_t rows, int64_t cols, int64_t rowBytes,
                             int32_t boxRows, int32_t boxCols);

/// The status of index-value checks (statuses 3-7 of docs/ABI.md) that the
/// calls before this one found on the device, and clears it: synchronises
/// this thread's stream, then reads the status word of every loaded library
/// (0: none refused; else the first library's non-zero status, in load
/// order) and sets them to 0. While a library's word is non-zero, its calls
/// skip every kernel that indexes through the index tensors. Not capturable
/// (it synchronises).
int32_t attnCudaTakeStatus(void);

/// The name of the status word in a library's kernel module (a global i32).
#define ATTN_CUDA_STATUS_SYMBOL "attn_status"

/// Present (a constant global i32) in the kernel modules whose kernels wait
/// for the kernel before them themselves (pass attn-dependent-launch): the
/// runtime launches those with programmatic stream serialization, so that
/// each may start while the one before it finishes. ATTN_CUDA_DEPENDENT_LAUNCH=0
/// in the environment turns that off.
#define ATTN_CUDA_DEPENDENT_LAUNCH_SYMBOL "attn_dependent_launch"

/// NCCL for sharded layers (docs/Sharding.md): libnccl.so.2 is loaded at the
/// first of these calls (dlopen), so the toolkit's or PyTorch's library
/// serves. Each returns NCCL's result (0: success; 3: libnccl.so.2 or one of
/// its functions was not found).
///
/// Writes a new unique id (ncclUniqueId, 128 bytes) to `id`; rank 0 makes it
/// and sends it to the others.
int32_t attnNcclGetUniqueId(void *id);
/// Makes this thread's communicator: rank `rank` of `size`, on the default
/// device (ncclCommInitRank), replacing one made before.
int32_t attnNcclInitRank(const void *id, int32_t rank, int32_t size);
/// Uses the caller's ncclComm_t instead (not destroyed by the runtime).
void attnNcclSetComm(void *comm);

/// What compiled layers call for shard.all_reduce: ncclAllReduce (sum) of
/// `count` elements of NCCL type `type` on this thread's communicator and the
/// caller's stream (attnCudaSetStream). Aborts without a communicator.
void attnNcclAllReduceSum(const void *send, void *receive, int64_t count,
                          int32_t type);

#ifdef __cplusplus
}
#endif

#endif // ATTN_RUNTIME_CUDARUNTIME_H
