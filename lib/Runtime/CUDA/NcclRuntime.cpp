//===- NcclRuntime.cpp - NCCL all-reduce of sharded layers ----------------===//
//
// The attnNccl* functions of attn-runtime/CudaRuntime.h. NCCL is loaded with
// dlopen on first use and called through its C ABI (nccl.h of NCCL 2), so
// the runtime builds and loads without it.
//
//===----------------------------------------------------------------------===//

#include "attn-runtime/CudaRuntime.h"

#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

extern "C" void *mgpuStreamCreate();

namespace {

// nccl.h: ncclResult_t is an int enum, ncclComm_t a pointer, ncclUniqueId
// a struct of 128 bytes (passed by value), ncclSum 0.
using NcclComm = void *;
struct NcclUniqueId {
  char internal[128];
};
constexpr int kNcclSuccess = 0, kNcclSystemError = 2, kNcclInternalError = 3,
              kNcclSum = 0;

struct Nccl {
  int (*getUniqueId)(void *id) = nullptr;
  int (*commInitRank)(NcclComm *comm, int size, NcclUniqueId id,
                      int rank) = nullptr;
  int (*commDestroy)(NcclComm comm) = nullptr;
  int (*allReduce)(const void *send, void *receive, size_t count, int type,
                   int op, NcclComm comm, void *stream) = nullptr;
  const char *(*getErrorString)(int result) = nullptr;

  bool loaded() const {
    return getUniqueId && commInitRank && commDestroy && allReduce &&
           getErrorString;
  }
};

const Nccl &nccl() {
  static const Nccl functions = [] {
    Nccl f;
    void *library = dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
    if (!library) {
      std::fprintf(stderr, "attn CUDA runtime: cannot load libnccl.so.2: %s\n",
                   dlerror());
      return f;
    }
    auto load = [&](auto &function, const char *name) {
      function = reinterpret_cast<std::remove_reference_t<decltype(function)>>(
          reinterpret_cast<std::uintptr_t>(dlsym(library, name)));
    };
    load(f.getUniqueId, "ncclGetUniqueId");
    load(f.commInitRank, "ncclCommInitRank");
    load(f.commDestroy, "ncclCommDestroy");
    load(f.allReduce, "ncclAllReduce");
    load(f.getErrorString, "ncclGetErrorString");
    if (!f.loaded())
      std::fprintf(stderr, "attn CUDA runtime: libnccl.so.2 lacks a function "
                           "of NCCL 2's API\n");
    return f;
  }();
  return functions;
}

thread_local NcclComm communicator = nullptr;
thread_local bool ownsCommunicator = false;

void releaseCommunicator() {
  if (ownsCommunicator && communicator)
    nccl().commDestroy(communicator);
  communicator = nullptr;
  ownsCommunicator = false;
}

} // namespace

extern "C" {

int32_t attnNcclGetUniqueId(void *id) {
  if (!nccl().loaded())
    return kNcclInternalError;
  return nccl().getUniqueId(id);
}

int32_t attnNcclInitRank(const void *id, int32_t rank, int32_t size) {
  if (!nccl().loaded())
    return kNcclInternalError;
  releaseCommunicator();
  NcclUniqueId unique;
  std::memcpy(unique.internal, id, sizeof(unique.internal));
  int result = nccl().commInitRank(&communicator, size, unique, rank);
  ownsCommunicator = result == kNcclSuccess;
  if (result != kNcclSuccess)
    communicator = nullptr;
  return result;
}

void attnNcclSetComm(void *comm) {
  releaseCommunicator();
  communicator = comm;
}

void attnNcclAllReduceSum(const void *send, void *receive, int64_t count,
                          int32_t type) {
  int result = kNcclSystemError;
  if (!communicator)
    std::fprintf(stderr, "attn CUDA runtime: a sharded layer ran without an "
                         "NCCL communicator (attnNcclInitRank / "
                         "attnNcclSetComm)\n");
  else
    result = nccl().allReduce(send, receive, static_cast<size_t>(count), type,
                              kNcclSum, communicator, mgpuStreamCreate());
  if (result == kNcclSuccess)
    return;
  if (communicator)
    std::fprintf(stderr, "attn CUDA runtime: ncclAllReduce failed: %s\n",
                 nccl().getErrorString(result));
  std::abort();
}

} // extern "C"
