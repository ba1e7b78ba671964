# Helpers that install and export the project's targets in AttnMLIRTargets,
# the export set of find_package(AttnMLIR) (not upstream's MLIRTargets).

# Installs targets (tools into bin/, libraries into lib/) and exports them.
# Installed tools find libMLIR and libLLVM where LLVM installed them.
function(attn_install_targets)
  foreach(target ${ARGN})
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "EXECUTABLE")
      set_property(TARGET ${target} APPEND PROPERTY INSTALL_RPATH
                   "${LLVM_LIBRARY_DIR}")
    endif()
  endforeach()
  install(TARGETS ${ARGN}
    EXPORT AttnMLIRTargets
    RUNTIME DESTINATION bin
    LIBRARY DESTINATION lib
    ARCHIVE DESTINATION lib)
  set_property(GLOBAL APPEND PROPERTY ATTN_EXPORTS ${ARGN})
endfunction()

# add_mlir_library, installed and exported; users of the installed library
# find the headers under <prefix>/include.
function(add_attn_library name)
  add_mlir_library(${ARGV} DISABLE_INSTALL)
  target_include_directories(${name} INTERFACE $<INSTALL_INTERFACE:include>)
  attn_install_targets(${name})
endfunction()
