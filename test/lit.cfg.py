# -*- Python -*-
import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "ATTN"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test", ".py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.attn_obj_root, "test")
config.excludes = ["CMakeLists.txt", "README.md", "lit.cfg.py", "lit.site.cfg.py",
                   "Inputs"]

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%attn_src_root", config.attn_src_root))
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(("%attn_obj_root", config.attn_obj_root))
# test/Install builds examples/downstream with this build's CMake and compiler.
config.substitutions.append(("%cmake", config.cmake_command))
config.substitutions.append(("%cxx", config.cxx_compiler))
cuda_runtime = os.path.join(config.attn_obj_root, "lib", "libattn_cuda_runtime.so")
if os.path.exists(cuda_runtime):
    config.available_features.add("attn-cuda-runtime")
else:
    lit_config.note("attn-cuda-runtime: %s was not built (no CUDA headers at configure "
                    "time); the tests that need it are UNSUPPORTED" % cuda_runtime)
# ptxas assembles the default (fatbin) output of attn-lower-to-nvvm and
# attn-compile --target=cuda; without it only format=isa (PTX text) works.
if os.path.exists("/usr/local/cuda/bin/ptxas"):
    config.available_features.add("ptxas")
else:
    lit_config.note("ptxas: /usr/local/cuda/bin/ptxas not found; the tests that assemble "
                    "GPU binaries are UNSUPPORTED")

# MLIR's NVVM target finds the CUDA toolkit (ptxas, libdevice) through
# CUDA_ROOT / CUDA_HOME / CUDA_PATH: the tests see what the tools see outside lit.
llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP",
                                     "CUDA_ROOT", "CUDA_HOME", "CUDA_PATH"])
llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PYTHONPATH", os.path.join(config.attn_src_root, "python"),
                             append_path=True)
# The Python tests drive this build's tools.
llvm_config.with_environment("ATTN_COMPILE", os.path.join(config.attn_tools_dir, "attn-compile"))
llvm_config.with_environment("ATTN_OPT", os.path.join(config.attn_tools_dir, "attn-opt"))
if config.sanitizers:
    config.available_features.add("sanitizers")
    # The MLIR dylib is not instrumented: inline LLVM allocator code in our
    # objects poisons memory that the dylib then uses, and its one-definition
    # overlaps are benign, so those two checks are off.
    llvm_config.with_environment("ASAN_OPTIONS", "detect_odr_violation=0:detect_leaks=0:allow_user_poisoning=0")

tool_dirs = [config.attn_tools_dir, config.llvm_tools_dir]
tools = ["attn-opt", "attn-compile", "attn-capi-test", "attn-lsp-server", "attn-reduce"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
