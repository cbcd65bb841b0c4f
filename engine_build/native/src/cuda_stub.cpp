// Stand-ins for the CUDA entry points when the library is built without a CUDA toolkit.
#include "common.h"

extern "C" int tryon_native_has_cuda(void) { return 0; }

extern "C" int tryon_cuda_device_count(void) { return 0; }

extern "C" int tryon_cuda_preprocess_crop_u8c3(const uint8_t*, int, int, int64_t, const double*, int, const float*,
                                               const float*, float*, void*) {
  return tryon::fail(TRYON_E_NO_CUDA, "tryon_native was built without CUDA (no CUDA toolkit found by CMake)");
}

extern "C" int tryon_cuda_composite_u8c3(uint8_t*, int, int, int64_t, const uint8_t*, int, int, int64_t,
                                         const double*, const int*, void*) {
  return tryon::fail(TRYON_E_NO_CUDA, "tryon_native was built without CUDA (no CUDA toolkit found by CMake)");
}
