// Library-wide entry points: ABI version, build description, thread-local last error.
#include <string>

#include "common.h"

#include <thread>

#ifndef TRYON_CUDA_ARCHS
#define TRYON_CUDA_ARCHS "none"
#endif

namespace {
thread_local std::string g_last_error;
}

int tryon::fail(int code, const std::string& message) {
  g_last_error = message;
  return code;
}

extern "C" int tryon_native_abi_version(void) { return TRYON_NATIVE_ABI_VERSION; }

extern "C" const char* tryon_native_last_error(void) { return g_last_error.c_str(); }

extern "C" int tryon_native_max_threads(void) {
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

extern "C" const char* tryon_native_build_info(void) {
  static const std::string info = std::string("abi=") + std::to_string(TRYON_NATIVE_ABI_VERSION) +
#if defined(__VERSION__)
                                  " cxx=" + __VERSION__ +
#endif
                                  " cuda_archs=" + TRYON_CUDA_ARCHS;
  return info.c_str();
}
