//===- Link.cpp - link an object file into an attn shared library ---------===//
//
// The C compiler driver and the library folders come from the build
// configuration (Config.h, written by CMake); ATTN_CC or
// CompileOptions::cc override the driver.
//
//===----------------------------------------------------------------------===//

#include "attn/Compile/Compile.h"

#include "Config.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"

using namespace mlir;
using namespace mlir::attn;

/// `options.cc`, else $ATTN_CC, else the configured C compiler.
static std::string getCompilerDriver(const CompileOptions &options) {
  if (!options.cc.empty())
    return options.cc;
  if (std::optional<std::string> fromEnv = llvm::sys::Process::GetEnv("ATTN_CC"))
    if (!fromEnv->empty())
      return *fromEnv;
  return ATTN_DEFAULT_CC;
}

/// The flags that link a CUDA library: libattn_cuda_runtime, found at run
/// time beside the library first, then in `options.runtimeLibraryDir`.
static FailureOr<SmallVector<std::string>>
getCUDALinkFlags(const CompileOptions &options, Location loc) {
  SmallString<256> runtime(options.runtimeLibraryDir);
  llvm::sys::path::append(runtime, "libattn_cuda_runtime.so");
  if (options.runtimeLibraryDir.empty() || !llvm::sys::fs::exists(runtime))
    return emitError(loc) << "cannot find " << runtime
                          << " (build the CUDA runtime: it needs the CUDA "
                             "toolkit at configure time)";
  return SmallVector<std::string>{
      "-L" + options.runtimeLibraryDir, "-lattn_cuda_runtime",
      "-Wl,-rpath,$ORIGIN:" + options.runtimeLibraryDir};
}

/// The flags that link a CPU library: LLVM's OpenMP runtime and libm,
/// compiler-rt's builtins, the shared ASan runtime when instrumented, libmpi
/// for a sharded layer.
static FailureOr<SmallVector<std::string>>
getCPULinkFlags(const CompileOptions &options, bool linkMPI, Location loc) {
  StringRef openMPDir = ATTN_OPENMP_LIBRARY_DIR;
  if (openMPDir.empty())
    return emitError(loc) << "this attn-mlir was configured without LLVM's "
                             "OpenMP runtime (libomp)";
  SmallVector<std::string> flags = {"-L" + openMPDir.str(), "-lomp", "-lm",
                                    "-Wl,-rpath," + openMPDir.str()};
  // Code generation may call a builtin for a conversion the CPU has no
  // instruction for (f32 -> bf16 without AVX512-BF16: __truncsfbf2), which
  // the system's libgcc may lack; linked statically, only what is called.
  if (StringRef builtins = ATTN_BUILTINS_LIBRARY; !builtins.empty())
    flags.push_back(builtins.str());
  // DT_NEEDED libclang_rt.asan-<arch>.so, found through the rpath. It must
  // still come first in the process (LD_PRELOAD) when the host program is not
  // itself instrumented; with the rpath, loading without it fails with
  // ASan's own message saying so.
  if (options.sanitizeAddress) {
    StringRef asanDir = ATTN_ASAN_RUNTIME_DIR;
    if (asanDir.empty())
      return emitError(loc) << "this attn-mlir was configured without the "
                               "shared AddressSanitizer runtime (clang's "
                               "libclang_rt.asan)";
    flags.append({"-fsanitize=address", "-shared-libasan",
                  "-Wl,-rpath," + asanDir.str()});
  }
  if (linkMPI) {
    StringRef mpiLibrary = ATTN_MPI_LIBRARY;
    if (mpiLibrary.empty())
      return emitError(loc) << "the layer calls MPI but this attn-mlir was "
                               "configured without OpenMPI's libmpi";
    flags.push_back(mpiLibrary.str());
  }
  return flags;
}

LogicalResult attn::linkSharedLibrary(StringRef objectPath,
                                      StringRef outputPath,
                                      const CompileOptions &options,
                                      bool linkMPI, Location loc) {
  std::string driverName = getCompilerDriver(options);
  llvm::ErrorOr<std::string> driver = llvm::sys::findProgramByName(driverName);
  if (!driver)
    return emitError(loc) << "cannot find the C compiler '" << driverName
                          << "' that links the library (set --cc or ATTN_CC)";
  FailureOr<SmallVector<std::string>> flags =
      options.target == CompileTarget::CUDA
          ? getCUDALinkFlags(options, loc)
          : getCPULinkFlags(options, linkMPI, loc);
  if (failed(flags))
    return failure();
  // -Bsymbolic: the library's calls of its own functions (an entry point's C
  // wrapper calling it) bind to them, not to a same-named symbol loaded
  // before (an entry point named `step` otherwise calls libc's step()).
  SmallVector<StringRef> args = {*driver,      "-shared", "-Wl,-Bsymbolic",
                                 "-o",         outputPath, objectPath};
  args.append(flags->begin(), flags->end());
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(*driver, args, std::nullopt, {}, 0, 0,
                                     &message);
  if (rc != 0)
    return emitError(loc) << "linking with " << *driver << " failed (" << rc
                          << ") " << message;
  return success();
}
