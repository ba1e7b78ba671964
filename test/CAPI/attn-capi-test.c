/*===- attn-capi-test.c - the attn C API, from C --------------------------===*\
|*                                                                            *|
|* Registers the dialects and passes, parses a small layer, compiles it to a  *|
|* shared library and calls it against a reference computed here, lowers it  *|
|* with a named pipeline, and checks the diagnostics of bad input.            *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

/* RUN: attn-capi-test %t.so 2>&1 | FileCheck %s
 */

#include "attn-c/Compile.h"
#include "attn-c/Dialects.h"
#include "attn-c/RegisterEverything.h"
#include "mlir-c/IR.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { kRows = 3, kHeads = 4, kDim = 64 };

static const char *const kLayer =
    "func.func @rms(%x: tensor<?x4x64xf32>, %g: tensor<64xf32>)\n"
    "    -> tensor<?x4x64xf32> {\n"
    "  %0 = attn.rms_norm %x, %g eps 1.0e-5 : tensor<?x4x64xf32>, "
    "tensor<64xf32>\n"
    "  return %0 : tensor<?x4x64xf32>\n"
    "}\n";

/* The labels that printDiagnostic gets as user data. */
static char parseLabel[] = "parse", verifyLabel[] = "verify",
            pipelineLabel[] = "pipeline", compileLabel[] = "compile";

/* Prints a diagnostic after the label given as user data. */
static void printDiagnostic(MlirStringRef message, void *label) {
  printf("%s: %.*s\n", (const char *)label, (int)message.length, message.data);
}

static void printText(MlirStringRef text, void *userData) {
  (void)userData;
  fwrite(text.data, 1, text.length, stdout);
}

static void printModule(const char *label, MlirModule module) {
  printf("%s:\n", label);
  mlirOperationPrint(mlirModuleGetOperation(module), printText, NULL);
  printf("\n");
}

/* The memref descriptors of docs/ABI.md. */
typedef struct {
  float *allocated, *aligned;
  int64_t offset, sizes[3], strides[3];
} Desc3;
typedef struct {
  float *allocated, *aligned;
  int64_t offset, sizes[1], strides[1];
} Desc1;
typedef int32_t (*RmsFn)(Desc3 *x, Desc1 *g, Desc3 *out);

static Desc3 describe3(float *data) {
  Desc3 d = {data, data, 0, {kRows, kHeads, kDim}, {kHeads * kDim, kDim, 1}};
  return d;
}

/* Calls @rms of the library on pseudo-random input, gamma described as
   `gammaSize` long, and prints the status and, if it is 0, whether the
   largest difference from the reference computed here is small. */
static void callRms(const char *path, int64_t gammaSize) {
  void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    printf("dlopen failed: %s\n", dlerror());
    return;
  }
  RmsFn rms = (RmsFn)dlsym(library, "_mlir_ciface_rms");
  static float x[kRows * kHeads * kDim], out[kRows * kHeads * kDim];
  static float gamma[kDim];
  unsigned state = 12345;
  for (int i = 0; i < kRows * kHeads * kDim; ++i) {
    state = state * 1103515245u + 12345u;
    x[i] = (float)((state >> 8) % 2001) / 1000.0f - 1.0f;
  }
  for (int i = 0; i < kDim; ++i)
    gamma[i] = 0.5f + (float)i / kDim;
  Desc3 dx = describe3(x), dout = describe3(out);
  Desc1 dg = {gamma, gamma, 0, {gammaSize}, {1}};
  int32_t status = rms(&dx, &dg, &dout);
  printf("status %d", status);
  if (status != 0) {
    printf("\n");
    dlclose(library);
    return;
  }
  double maxError = 0;
  for (int row = 0; row < kRows * kHeads; ++row) {
    const float *xr = x + row * kDim;
    double sumSquares = 0;
    for (int i = 0; i < kDim; ++i)
      sumSquares += (double)xr[i] * xr[i];
    double scale = 1.0 / sqrt(sumSquares / kDim + 1e-5);
    for (int i = 0; i < kDim; ++i) {
      double error = fabs(out[row * kDim + i] - xr[i] * scale * gamma[i]);
      maxError = error > maxError ? error : maxError;
    }
  }
  printf(", max error below 1e-5: %s\n", maxError < 1e-5 ? "yes" : "no");
  dlclose(library);
}

/* Whether compiling `module` to `path` with `options` fails (the diagnostics
   printed after "compile:"). */
static int compileFails(MlirModule module, const char *path,
                        const AttnCompileOptions *options) {
  return mlirLogicalResultIsFailure(
      attnCompileModule(module, mlirStringRefCreateFromCString(path), options,
                        printDiagnostic, compileLabel));
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: attn-capi-test OUTPUT.so [CUDA-OUTPUT.so]\n");
    return 2;
  }

  /* The dialect handle alone. */
  MlirContext bare = mlirContextCreate();
  MlirDialect attn =
      mlirDialectHandleLoadDialect(mlirGetDialectHandle__attn__(), bare);
  MlirStringRef name = mlirDialectGetNamespace(attn);
  printf("dialect: %.*s\n", (int)name.length, name.data);
  mlirContextDestroy(bare);
  // CHECK: dialect: attn

  /* Everything attn IR and its lowerings use. */
  MlirDialectRegistry registry = mlirDialectRegistryCreate();
  attnRegisterAllDialects(registry);
  MlirContext context = mlirContextCreate();
  mlirContextAppendDialectRegistry(context, registry);
  mlirDialectRegistryDestroy(registry);
  attnRegisterAllPasses();
  attnRegisterAllPasses();

  MlirModule module =
      attnParseModule(context, mlirStringRefCreateFromCString(kLayer),
                      mlirStringRefCreateFromCString("layer.mlir"),
                      printDiagnostic, parseLabel);
  printModule("parsed", module);
  // CHECK-LABEL: parsed:
  // CHECK: func.func @rms(%{{.*}}: tensor<?x4x64xf32>, %{{.*}}: tensor<64xf32>)
  // CHECK: attn.rms_norm

  /* A shared library for this CPU, called like any C function. */
  AttnCompileOptions options = attnCompileOptionsGetDefault();
  MlirLogicalResult compiled =
      attnCompileModule(module, mlirStringRefCreateFromCString(argv[1]),
                        &options, printDiagnostic, compileLabel);
  printf("compiled: %s\n", mlirLogicalResultIsSuccess(compiled) ? "yes" : "no");
  // CHECK: compiled: yes
  callRms(argv[1], kDim);
  // CHECK: status 0, max error below 1e-5: yes

  /* With ABI checks, a gamma of the wrong size is status 8 (docs/ABI.md). */
  AttnCompileOptions checked = attnCompileOptionsGetDefault();
  checked.abiChecks = true;
  compiled = attnCompileModule(module, mlirStringRefCreateFromCString(argv[1]),
                               &checked, printDiagnostic, compileLabel);
  printf("compiled with abi checks: %s\n",
         mlirLogicalResultIsSuccess(compiled) ? "yes" : "no");
  // CHECK: compiled with abi checks: yes
  callRms(argv[1], kDim / 2);
  // CHECK: status 8{{$}}
  callRms(argv[1], kDim);
  // CHECK: status 0, max error below 1e-5: yes

  /* With a second path, a library for NVIDIA GPUs too (cuda.test). */
  if (argc == 3) {
    AttnCompileOptions cuda = attnCompileOptionsGetDefault();
    cuda.target = AttnTargetCUDA;
    cuda.gpuGPTQGemv = mlirStringRefCreateFromCString("streaming");
    MlirLogicalResult compiledForCUDA =
        attnCompileModule(module, mlirStringRefCreateFromCString(argv[2]),
                          &cuda, printDiagnostic, compileLabel);
    printf("compiled for cuda: %s\n",
           mlirLogicalResultIsSuccess(compiledForCUDA) ? "yes" : "no");
  }

  /* Compiling left the module as it was; a pipeline lowers it in place. */
  MlirLogicalResult lowered = attnRunPassPipeline(
      module, mlirStringRefCreateFromCString("attn-lower-to-cpu{fuse=false}"),
      printDiagnostic, pipelineLabel);
  printf("lowered: %s\n", mlirLogicalResultIsSuccess(lowered) ? "yes" : "no");
  printModule("after attn-lower-to-cpu", module);
  // CHECK: lowered: yes
  // CHECK-LABEL: after attn-lower-to-cpu:
  // CHECK-NOT: attn.rms_norm
  // CHECK: llvm.func @rms(
  // CHECK: llvm.func @_mlir_ciface_rms(
  // CHECK-NOT: attn.rms_norm
  mlirModuleDestroy(module);

  /* Bad input: the diagnostics come back as strings, nothing crashes. */
  MlirModule syntax = attnParseModule(
      context,
      mlirStringRefCreateFromCString(
          "func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {\n"
          "  return %x tensor<4xf32>\n}\n"),
      mlirStringRefCreateFromCString("syntax.mlir"), printDiagnostic, parseLabel);
  printf("syntax error gives a null module: %d\n", mlirModuleIsNull(syntax));
  // CHECK: parse: syntax.mlir:2:{{[0-9]+}}: error: expected ':'
  // CHECK: syntax error gives a null module: 1

  MlirModule invalid = attnParseModule(
      context,
      mlirStringRefCreateFromCString(
          "func.func @f(%x: tensor<2x64xf32>, %g: tensor<32xf32>) -> "
          "tensor<2x64xf32> {\n"
          "  %0 = attn.rms_norm %x, %g : tensor<2x64xf32>, tensor<32xf32>\n"
          "  return %0 : tensor<2x64xf32>\n}\n"),
      mlirStringRefCreateFromCString("invalid.mlir"), printDiagnostic,
      verifyLabel);
  printf("invalid op gives a null module: %d\n", mlirModuleIsNull(invalid));
  // CHECK: verify: invalid.mlir:2:{{[0-9]+}}: error: 'attn.rms_norm' op expects gamma of shape [64], got [32]
  // CHECK: invalid op gives a null module: 1

  module = attnParseModule(context, mlirStringRefCreateFromCString(kLayer),
                           mlirStringRefCreateFromCString("layer.mlir"),
                           printDiagnostic, parseLabel);
  MlirLogicalResult unknownPass = attnRunPassPipeline(
      module, mlirStringRefCreateFromCString("attn-no-such-pass"),
      printDiagnostic, pipelineLabel);
  printf("unknown pass fails: %d\n", mlirLogicalResultIsFailure(unknownPass));
  // CHECK: pipeline: {{.*}}'attn-no-such-pass' does not refer to a registered pass
  // CHECK: unknown pass fails: 1

  options.cc = mlirStringRefCreateFromCString("attn-no-such-cc");
  printf("missing compiler fails: %d\n",
         compileFails(module, argv[1], &options));
  // CHECK: compile: layer.mlir:{{[0-9]+}}:{{[0-9]+}}: error: cannot find the C compiler 'attn-no-such-cc'
  // CHECK: missing compiler fails: 1

  /* Each of the other options reaches the compiler: bad values are errors. */
  AttnCompileOptions badInt8Dot = attnCompileOptionsGetDefault();
  badInt8Dot.int8Dot = mlirStringRefCreateFromCString("sse2");
  printf("unknown int8 kernel fails: %d\n",
         compileFails(module, argv[1], &badInt8Dot));
  // CHECK: compile: layer.mlir:{{[0-9]+}}:{{[0-9]+}}: error: --int8-dot=sse2 is not a kernel the --mcpu target (native) can run
  // CHECK: unknown int8 kernel fails: 1

  AttnCompileOptions badGemv = attnCompileOptionsGetDefault();
  badGemv.target = AttnTargetCUDA;
  badGemv.gpuGPTQGemv = mlirStringRefCreateFromCString("ring");
  printf("unknown gptq gemv fails: %d\n",
         compileFails(module, argv[1], &badGemv));
  // CHECK: compile: layer.mlir:{{[0-9]+}}:{{[0-9]+}}: error: gptq-gemv must be tma-ring or streaming, not 'ring'
  // CHECK: unknown gptq gemv fails: 1

  AttnCompileOptions asanOnGPU = attnCompileOptionsGetDefault();
  asanOnGPU.target = AttnTargetCUDA;
  asanOnGPU.sanitizeAddress = true;
  printf("sanitizer for cuda fails: %d\n",
         compileFails(module, argv[1], &asanOnGPU));
  // CHECK: compile: layer.mlir:{{[0-9]+}}:{{[0-9]+}}: error: --sanitize=address needs --target=cpu
  // CHECK: sanitizer for cuda fails: 1

  mlirModuleDestroy(module);
  mlirContextDestroy(context);
  return 0;
}
