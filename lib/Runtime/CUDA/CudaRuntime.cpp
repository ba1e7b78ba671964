//===- CudaRuntime.cpp - mgpu* functions over the CUDA driver API ---------===//
//
// The functions that host code lowered from `gpu.launch_func` calls
// (MLIR's GPU-to-LLVM ABI), implemented over the CUDA driver API so that
// compiled layers need no MLIR library at run time. Every CUDA result is
// checked: a failure prints the call, CUDA's error name and message, and
// aborts (set ATTN_CUDA_CONTINUE_ON_ERROR=1 to keep going after printing;
// attnCudaLastError() then returns the first failure).
//
//===----------------------------------------------------------------------===//

#include "attn-runtime/CudaRuntime.h"

#include <cuda.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace {

CUresult firstError = CUDA_SUCCESS;

void check(CUresult result, const char *call) {
  // At process exit, module destructors may run after the driver has shut
  // down; there is nothing left to report or release then.
  if (result == CUDA_SUCCESS || result == CUDA_ERROR_DEINITIALIZED)
    return;
  const char *name = nullptr, *message = nullptr;
  cuGetErrorName(result, &name);
  cuGetErrorString(result, &message);
  std::fprintf(stderr, "attn CUDA runtime: %s failed: %s (%s)\n", call,
               name ? name : "unknown error", message ? message : "");
  if (firstError == CUDA_SUCCESS)
    firstError = result;
  const char *keepGoing = std::getenv("ATTN_CUDA_CONTINUE_ON_ERROR");
  if (!keepGoing || keepGoing[0] != '1')
    std::abort();
}

#define ATTN_CUDA_CHECK(expr) check((expr), #expr)

thread_local int32_t defaultDevice = 0;
thread_local CUstream callerStream = nullptr;

/// Temporaries come from the device's default stream-ordered pool. By default
/// it returns its memory to the OS at every synchronisation, which costs a
/// fresh cuMemAllocAsync (tens of microseconds) on every call; keeping it
/// makes the allocations of a call a pointer bump after the first.
void keepPoolMemory(CUdevice device) {
  CUmemoryPool pool = nullptr;
  ATTN_CUDA_CHECK(cuDeviceGetDefaultMemPool(&pool, device));
  cuuint64_t keepAll = UINT64_MAX;
  ATTN_CUDA_CHECK(cuMemPoolSetAttribute(
      pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keepAll));
}

/// ATTN_CUDA_SYNCHRONOUS=1: every call waits for its work (for debugging, as
/// CUDA_LAUNCH_BLOCKING).
bool synchronousCalls() {
  static const bool synchronous = [] {
    const char *value = std::getenv("ATTN_CUDA_SYNCHRONOUS");
    return value && value[0] == '1';
  }();
  return synchronous;
}

/// The primary context of the default device, current for a scope. When it
/// is current already (a caller such as PyTorch made it so), nothing is
/// pushed: two driver calls fewer per launch.
class ScopedContext {
public:
  ScopedContext() {
    static CUcontext context = [] {
      ATTN_CUDA_CHECK(cuInit(0));
      CUdevice device;
      ATTN_CUDA_CHECK(cuDeviceGet(&device, defaultDevice));
      CUcontext ctx = nullptr;
      ATTN_CUDA_CHECK(cuDevicePrimaryCtxRetain(&ctx, device));
      keepPoolMemory(device);
      return ctx;
    }();
    CUcontext current = nullptr;
    ATTN_CUDA_CHECK(cuCtxGetCurrent(&current));
    pushed = current != context;
    if (pushed)
      ATTN_CUDA_CHECK(cuCtxPushCurrent(context));
  }
  ~ScopedContext() {
    if (pushed)
      ATTN_CUDA_CHECK(cuCtxPopCurrent(nullptr));
  }

private:
  bool pushed = false;
};

/// ATTN_CUDA_DEPENDENT_LAUNCH=0: kernels are launched one after the other
/// even where their module allows dependent launch (for comparisons).
bool dependentLaunchAllowed() {
  static const bool allowed = [] {
    const char *value = std::getenv("ATTN_CUDA_DEPENDENT_LAUNCH");
    return !value || value[0] != '0';
  }();
  return allowed;
}

/// Bumped whenever a module is unloaded: the kernels known before may then
/// name a module that is gone.
std::atomic<uint64_t> moduleUnloads{0};

/// What this thread knows of the kernels it launched. Host code asks for a
/// kernel's handle before every launch, and cuModuleGetFunction searches
/// the module by name each time; the name is a constant of the calling
/// library, so its address identifies it while the module lives. A few
/// kernels per library: a short list.
class KnownKernels {
public:
  struct Kernel {
    CUmodule module;
    const char *name;
    CUfunction function;
    /// The module allows dependent launch (attn-dependent-launch).
    bool dependentLaunch;
    /// The dynamic shared memory the kernel was opted in to (above 48 KB
    /// a launch needs the function attribute).
    int32_t sharedBytes;
  };

  Kernel &lookup(CUmodule module, const char *name) {
    forgetUnloaded();
    for (Kernel &k : kernels)
      if (k.module == module && k.name == name)
        return k;
    CUfunction function = nullptr;
    ATTN_CUDA_CHECK(cuModuleGetFunction(&function, module, name));
    CUdeviceptr marker = 0;
    size_t bytes = 0;
    bool dependent =
        dependentLaunchAllowed() &&
        cuModuleGetGlobal(&marker, &bytes, module,
                          ATTN_CUDA_DEPENDENT_LAUNCH_SYMBOL) == CUDA_SUCCESS;
    return kernels.emplace_back(Kernel{module, name, function, dependent, 0});
  }

  /// The record of `function` (looked up before in this thread), if any.
  Kernel *find(CUfunction function) {
    forgetUnloaded();
    for (Kernel &k : kernels)
      if (k.function == function)
        return &k;
    return nullptr;
  }

private:
  void forgetUnloaded() {
    uint64_t unloads = moduleUnloads.load(std::memory_order_acquire);
    if (unloads == seenUnloads)
      return;
    kernels.clear();
    seenUnloads = unloads;
  }

  std::vector<Kernel> kernels;
  uint64_t seenUnloads = 0;
};

KnownKernels &knownKernels() {
  thread_local KnownKernels kernels;
  return kernels;
}

/// The kernel modules of the loaded libraries, in load order: their status
/// words are read by attnCudaTakeStatus.
class LoadedModules {
public:
  void add(CUmodule module) {
    std::lock_guard<std::mutex> lock(mutex);
    modules.push_back(module);
  }
  void remove(CUmodule module) {
    std::lock_guard<std::mutex> lock(mutex);
    modules.erase(std::remove(modules.begin(), modules.end(), module),
                  modules.end());
  }
  /// The first non-zero status word (0 if none), all of them cleared on
  /// `stream` (whose work is done).
  int32_t takeStatus(CUstream stream) {
    std::lock_guard<std::mutex> lock(mutex);
    int32_t first = 0;
    for (CUmodule module : modules) {
      CUdeviceptr word = 0;
      size_t bytes = 0;
      // Libraries built without the index checks have no word.
      if (cuModuleGetGlobal(&word, &bytes, module, ATTN_CUDA_STATUS_SYMBOL) !=
          CUDA_SUCCESS)
        continue;
      int32_t status = 0;
      ATTN_CUDA_CHECK(cuMemcpyDtoH(&status, word, sizeof(status)));
      if (status == 0)
        continue;
      if (first == 0)
        first = status;
      ATTN_CUDA_CHECK(cuMemsetD32Async(word, 0, 1, stream));
    }
    return first;
  }

private:
  std::mutex mutex;
  std::vector<CUmodule> modules;
};

LoadedModules &loadedModules() {
  // Never destroyed: libraries unload their modules at exit.
  static LoadedModules *modules = new LoadedModules;
  return *modules;
}

/// The temporaries of the calls on one stream: one device buffer handed out
/// by a bump pointer and reset once every temporary taken since the last
/// reset is freed. Calls on one stream run in stream order, so a call may
/// reuse the memory of the one before it without waiting. This turns a
/// call's pool allocations and frees (two driver calls each) into pointer
/// arithmetic. The buffer grows, at a reset, to the most that a call took;
/// until then, and while the stream is capturing a graph (whose memory must
/// be its own), temporaries come from the pool.
class StreamArena {
public:
  explicit StreamArena(CUstream stream) : stream(stream) {}

  CUstream owner() const { return stream; }

  CUdeviceptr allocate(uint64_t bytes) {
    uint64_t aligned = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    ++live;
    demand += aligned;
    peak = demand > peak ? demand : peak;
    if (!capturing() && top + aligned <= capacity) {
      CUdeviceptr ptr = base + top;
      top += aligned;
      return ptr;
    }
    CUdeviceptr ptr = 0;
    ATTN_CUDA_CHECK(cuMemAllocAsync(&ptr, bytes, stream));
    return ptr;
  }

  void release(CUdeviceptr ptr) {
    if (ptr < base || ptr >= base + capacity)
      ATTN_CUDA_CHECK(cuMemFreeAsync(ptr, stream));
    if (--live > 0)
      return;
    live = 0;
    top = demand = 0;
    // (Memory allocated while capturing would belong to the graph.)
    if (peak <= capacity || capturing())
      return;
    // Grow, in stream order: the old buffer is freed after the work
    // queued on it.
    if (base)
      ATTN_CUDA_CHECK(cuMemFreeAsync(base, stream));
    capacity = (peak + kGrain - 1) / kGrain * kGrain;
    base = 0;
    if (cuMemAllocAsync(&base, capacity, stream) != CUDA_SUCCESS) {
      base = 0; // out of memory: keep using the pool
      capacity = 0;
    }
  }

private:
  bool capturing() const {
    CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
    ATTN_CUDA_CHECK(cuStreamIsCapturing(stream, &status));
    return status != CU_STREAM_CAPTURE_STATUS_NONE;
  }

  static constexpr uint64_t kAlignment = 256, kGrain = 1 << 20;
  CUstream stream;
  CUdeviceptr base = 0;
  uint64_t capacity = 0, top = 0, demand = 0, peak = 0;
  int64_t live = 0;
};

/// This thread's arena of `stream` (a few streams per thread at most).
StreamArena &arenaOf(CUstream stream) {
  thread_local std::vector<StreamArena> arenas;
  for (StreamArena &arena : arenas)
    if (arena.owner() == stream)
      return arena;
  return arenas.emplace_back(stream);
}

} // namespace

extern "C" {

int32_t attnCudaLastError() { return static_cast<int32_t>(firstError); }

void attnCudaSetStream(void *stream) {
  callerStream = static_cast<CUstream>(stream);
}

int32_t attnCudaTakeStatus() {
  ScopedContext scope;
  ATTN_CUDA_CHECK(cuStreamSynchronize(callerStream));
  return loadedModules().takeStatus(callerStream);
}

CUmodule mgpuModuleLoad(void *data, size_t /*gpuBlobSize*/) {
  ScopedContext scope;
  CUmodule module = nullptr;
  ATTN_CUDA_CHECK(cuModuleLoadData(&module, data));
  loadedModules().add(module);
  return module;
}

CUmodule mgpuModuleLoadJIT(void *data, int optLevel) {
  ScopedContext scope;
  CUmodule module = nullptr;
  CUjit_option options[] = {CU_JIT_OPTIMIZATION_LEVEL};
  void *values[] = {reinterpret_cast<void *>(static_cast<intptr_t>(optLevel))};
  ATTN_CUDA_CHECK(cuModuleLoadDataEx(&module, data, 1, options, values));
  loadedModules().add(module);
  return module;
}

void mgpuModuleUnload(CUmodule module) {
  ScopedContext scope;
  loadedModules().remove(module);
  moduleUnloads.fetch_add(1, std::memory_order_release);
  ATTN_CUDA_CHECK(cuModuleUnload(module));
}

CUfunction mgpuModuleGetFunction(CUmodule module, const char *name) {
  return knownKernels().lookup(module, name).function;
}

void mgpuLaunchKernel(CUfunction function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t smem, CUstream stream,
                      void **params, void **extra, size_t /*paramsCount*/) {
  ScopedContext scope;
  KnownKernels::Kernel *kernel = knownKernels().find(function);
  // Static plus dynamic shared memory above 48 KB needs the opt-in, which
  // only the dynamic part sets: set it whenever there is a dynamic part.
  if (smem > 0 && (!kernel || kernel->sharedBytes != smem)) {
    ATTN_CUDA_CHECK(cuFuncSetAttribute(
        function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem));
    if (kernel)
      kernel->sharedBytes = smem;
  }
  if (!kernel || !kernel->dependentLaunch) {
    ATTN_CUDA_CHECK(cuLaunchKernel(function, gridX, gridY, gridZ, blockX,
                                   blockY, blockZ, smem, stream, params,
                                   extra));
    return;
  }
  CUlaunchAttribute dependent = {};
  dependent.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
  dependent.value.programmaticStreamSerializationAllowed = 1;
  CUlaunchConfig config = {};
  config.gridDimX = gridX;
  config.gridDimY = gridY;
  config.gridDimZ = gridZ;
  config.blockDimX = blockX;
  config.blockDimY = blockY;
  config.blockDimZ = blockZ;
  config.sharedMemBytes = smem;
  config.hStream = stream;
  config.attrs = &dependent;
  config.numAttrs = 1;
  ATTN_CUDA_CHECK(cuLaunchKernelEx(&config, function, params, extra));
}

// Compiled functions run on the caller's stream (attnCudaSetStream), by
// default the legacy default stream, so that they are ordered with the
// caller's other work (e.g. PyTorch's default stream) and CUDA events
// around a call time it. The runtime never creates or destroys streams.
CUstream mgpuStreamCreate() { return callerStream; }

void mgpuStreamDestroy(CUstream /*stream*/) {}

// The host code ends a call by waiting for its stream. Everything a call
// does is stream-ordered (kernels, copies, the frees of its temporaries) and
// the host reads no device memory, so the call returns once its work is
// enqueued, as a cuBLAS call does.
void mgpuStreamSynchronize(CUstream stream) {
  if (!synchronousCalls())
    return;
  ScopedContext scope;
  ATTN_CUDA_CHECK(cuStreamSynchronize(stream));
}

void mgpuStreamWaitEvent(CUstream stream, CUevent event) {
  ScopedContext scope;
  ATTN_CUDA_CHECK(cuStreamWaitEvent(stream, event, 0));
}

CUevent mgpuEventCreate() {
  ScopedContext scope;
  CUevent event = nullptr;
  ATTN_CUDA_CHECK(cuEventCreate(&event, CU_EVENT_DISABLE_TIMING));
  return event;
}

void mgpuEventDestroy(CUevent event) {
  ScopedContext scope;
  ATTN_CUDA_CHECK(cuEventDestroy(event));
}

void mgpuEventSynchronize(CUevent event) {
  ScopedContext scope;
  ATTN_CUDA_CHECK(cuEventSynchronize(event));
}

void mgpuEventRecord(CUevent event, CUstream stream) {
  ScopedContext scope;
  ATTN_CUDA_CHECK(cuEventRecord(event, stream));
}

// Temporaries come from the stream's arena (StreamArena), else from the
// stream-ordered pool: no device-wide synchronisation, and a free waits for
// the kernels queued before it.
void *mgpuMemAlloc(uint64_t sizeBytes, CUstream stream, bool /*isHostShared*/) {
  if (sizeBytes == 0)
    return nullptr;
  ScopedContext scope;
  return reinterpret_cast<void *>(arenaOf(stream).allocate(sizeBytes));
}

void mgpuMemFree(void *ptr, CUstream stream) {
  if (!ptr)
    return;
  ScopedContext scope;
  arenaOf(stream).release(reinterpret_cast<CUdeviceptr>(ptr));
}

void mgpuMemcpy(void *dst, void *src, size_t sizeBytes, CUstream stream) {
  ScopedContext scope;
  ATTN_CUDA_CHECK(cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                                reinterpret_cast<CUdeviceptr>(src), sizeBytes,
                                stream));
}

void mgpuMemset32(void *dst, unsigned int value, size_t count,
                  CUstream stream) {
  ScopedContext scope;
  ATTN_CUDA_CHECK(cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(dst), value,
                                   count, stream));
}

void mgpuMemset16(void *dst, unsigned short value, size_t count,
                  CUstream stream) {
  ScopedContext scope;
  ATTN_CUDA_CHECK(cuMemsetD16Async(reinterpret_cast<CUdeviceptr>(dst), value,
                                   count, stream));
}

void mgpuSetDefaultDevice(int32_t device) { defaultDevice = device; }

// A TMA load's tensor map is encoded on the host for each call (only then are
// the buffers known) and passed to the kernel by value, as a
// __grid_constant__ parameter: nothing is copied to the device, so the call
// stays asynchronous and capturable. Pure host work (no driver state).
void attnCudaEncodeTensorMap(void *map, int64_t base, int32_t dataType,
                             int64_t rows, int64_t cols, int64_t rowBytes,
                             int32_t boxRows, int32_t boxCols) {
  cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols),
                        static_cast<cuuint64_t>(rows)};
  cuuint64_t strides[1] = {static_cast<cuuint64_t>(rowBytes)};
  cuuint32_t box[2] = {static_cast<cuuint32_t>(boxCols),
                       static_cast<cuuint32_t>(boxRows)};
  cuuint32_t elementStrides[2] = {1, 1};
  ATTN_CUDA_CHECK(cuTensorMapEncodeTiled(
      static_cast<CUtensorMap *>(map),
      static_cast<CUtensorMapDataType>(dataType), /*rank=*/2,
      reinterpret_cast<void *>(base), dims, strides, box, elementStrides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
}

} // extern "C"
