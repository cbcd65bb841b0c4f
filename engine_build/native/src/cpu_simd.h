// AVX2 row kernels (cpu_avx2.cpp), bit-identical to the scalar rows in cpu_kernels.cpp:
// the same IEEE operations in the same order, 8 pixels at a time. Chosen at run time when
// the CPU has AVX2 (tryon_native_set_simd(0) forces the scalar rows, for tests).
#ifndef TRYON_NATIVE_CPU_SIMD_H
#define TRYON_NATIVE_CPU_SIMD_H

#include <cstdint>

#include "common.h"

namespace tryon {

// Whether this build has the AVX2 rows and the CPU runs them.
bool avx2_usable();

// One output row of the composite, pixels [x0, x1) of frame row `y` (row points at x = 0).
void composite_row_avx2(uint8_t* row, const uint8_t* premul, int fg_w, int fg_h, int64_t premul_stride,
                        const Homography& h, int y, int x0, int x1);

// One output row y of the preprocess into the (3, size, size) planes `out`.
void preprocess_row_avx2(const uint8_t* frame, int h, int w, int64_t stride, const Affine& a, int size, int y,
                         const float* mean, const float* inv_std, float* out);

}  // namespace tryon

#endif  // TRYON_NATIVE_CPU_SIMD_H
