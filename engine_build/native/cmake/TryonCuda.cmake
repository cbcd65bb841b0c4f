# tryon_enable_cuda(<out_var>): enable the CUDA language when a toolkit is usable.
#
# A macro, not a function: enable_language() must run at directory scope. Call it from
# the top-level CMakeLists.txt (the highest directory using CUDA).
#
# check_language(CUDA) probes for nvcc without failing the configure step, so machines
# without a toolkit still build the CPU library. Architectures default to 75;86;90
# (Turing, Ampere, Hopper), all supported by CUDA 12 and 13 (13 dropped everything below
# sm_75); override with -DCMAKE_CUDA_ARCHITECTURES=...
include(CheckLanguage)

macro(tryon_enable_cuda out_var)
  set(${out_var} OFF)
  if(NOT TRYON_NATIVE_CUDA)
    message(STATUS "tryon_native: CUDA kernels disabled (TRYON_NATIVE_CUDA=OFF)")
  else()
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 75 86 90 CACHE STRING "GPU architectures for the CUDA kernels")
    endif()
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
      enable_language(CUDA)
      message(STATUS "tryon_native: CUDA ${CMAKE_CUDA_COMPILER_VERSION} kernels for sm ${CMAKE_CUDA_ARCHITECTURES}")
      set(${out_var} ON)
    else()
      message(STATUS "tryon_native: no CUDA toolkit found, building the CPU kernels only")
    endif()
  endif()
endmacro()
