// Internal helpers shared by the CPU and CUDA kernels: argument checks, matrix inverses,
// bilinear sampling and the uint8 blend. Header-only so that the CUDA
// kernels compile the very same arithmetic (TRYON_HD marks host+device functions).
#ifndef TRYON_NATIVE_COMMON_H
#define TRYON_NATIVE_COMMON_H

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "tryon_native.h"

#if defined(__CUDACC__)
#define TRYON_HD __host__ __device__ __forceinline__
#else
#define TRYON_HD inline
#endif

namespace tryon {

// Records a message for tryon_native_last_error() and returns `code` (api.cpp).
int fail(int code, const std::string& message);

// Row-major 2x3 affine / 3x3 homography, applied in double: a float32 sample position
// (ulp 3e-5 px at x = 400) would move a sample on a hard edge by ~0.01 grey levels.
struct Affine {
  double m[6];
};
struct Homography {
  double m[9];
};

// Inverse of a 2x3 affine, with cv::invertAffineTransform's formula (cv2.warpAffine
// inverts crop_from_frame the same way). Returns false when singular or non-finite.
inline bool invert_affine(const double a[6], Affine* out) {
  const double det = a[0] * a[4] - a[1] * a[3];
  if (!std::isfinite(det) || det == 0.0) return false;
  const double d = 1.0 / det;
  const double a11 = a[4] * d, a22 = a[0] * d, a12 = -a[1] * d, a21 = -a[3] * d;
  const double inv[6] = {a11, a12, -a11 * a[2] - a12 * a[5], a21, a22, -a21 * a[2] - a22 * a[5]};
  for (int i = 0; i < 6; ++i) {
    if (!std::isfinite(inv[i])) return false;
    out->m[i] = inv[i];
  }
  return true;
}

// Inverse of a 3x3 matrix by the adjugate, in double. Returns false when singular.
inline bool invert_3x3(const double m[9], Homography* out) {
  const double c00 = m[4] * m[8] - m[5] * m[7];
  const double c01 = m[5] * m[6] - m[3] * m[8];
  const double c02 = m[3] * m[7] - m[4] * m[6];
  const double det = m[0] * c00 + m[1] * c01 + m[2] * c02;
  if (!std::isfinite(det) || det == 0.0) return false;
  const double d = 1.0 / det;
  const double inv[9] = {c00 * d, (m[2] * m[7] - m[1] * m[8]) * d, (m[1] * m[5] - m[2] * m[4]) * d,
                         c01 * d, (m[0] * m[8] - m[2] * m[6]) * d, (m[2] * m[3] - m[0] * m[5]) * d,
                         c02 * d, (m[1] * m[6] - m[0] * m[7]) * d, (m[0] * m[4] - m[1] * m[3]) * d};
  for (int i = 0; i < 9; ++i) {
    if (!std::isfinite(inv[i])) return false;
    out->m[i] = inv[i];
  }
  return true;
}

// Split a sample coordinate into its integer cell and fraction: u = i + f, 0 <= f < 1.
// `u` is first clamped to [-2, limit + 1] (NaN -> -2), which keeps the conversion in range
// and still classifies the sample correctly as inside / outside the source image.
TRYON_HD void split_coord(double u, int limit, int* i, float* f) {
  const double hi = static_cast<double>(limit) + 1.0;
  u = u > -2.0 ? u : -2.0;  // also maps NaN to -2
  u = u < hi ? u : hi;
  const int ii = static_cast<int>(u + 4.0) - 4;  // floor: the argument is positive
  const float ff = static_cast<float>(u - static_cast<double>(ii));
  *i = ii;
  *f = ff > 0.0f ? (ff < 1.0f ? ff : 1.0f) : 0.0f;
}

// Bilinear blend of four samples in float32, as OpenCV 5's warp kernels interpolate.
TRYON_HD float bilerp(float p00, float p01, float p10, float p11, float fx, float fy) {
  const float top = p00 + (p01 - p00) * fx;
  const float bot = p10 + (p11 - p10) * fx;
  return top + (bot - top) * fy;
}

// Round to the nearest integer, ties to even (cvRound, i.e. the uint8 output of
// cv2.warpAffine / cv2.warpPerspective), for 0 <= v < 2^22: adding 1.5 * 2^23 leaves no
// fraction bits, so the FPU's round-to-nearest-even does the rounding. Portable to CUDA.
TRYON_HD int round_even(float v) {
  const float magic = 12582912.0f;  // 1.5 * 2^23
  return static_cast<int>((v + magic) - magic);
}

// round(x / 255) for 0 <= x <= 255 * 255, exact (x / 255 is never a tie for integers),
// which is what cv2.multiply(..., scale=1/255) produces for uint8.
TRYON_HD int div255_round(int x) {
  x += 128;
  return (x + (x >> 8)) >> 8;
}

// One composited channel: cv2.add(cv2.multiply(bg, 255 - a, scale=1/255), premul),
// saturating like OpenCV's uint8 arithmetic.
TRYON_HD uint8_t blend_channel(int bg, int inv_alpha, int premul) {
  const int v = div255_round(bg * inv_alpha) + premul;
  return static_cast<uint8_t>(v > 255 ? 255 : v);
}

// Normalise one rounded grey level exactly as realtime.preprocess.normalize_rgb does in
// float32: (x - mean) * inv_std.
TRYON_HD float normalise(int v, float mean, float inv_std) {
  return (static_cast<float>(v) - mean) * inv_std;
}

// ---- per-pixel work shared by the CPU loops and the CUDA kernels ----------------------

TRYON_HD uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

// Sample position of frame pixel x of a row in the accessory: fg_from_frame applied with
// the row's constants (x_row, y_row, w_row) = column 1 * y + column 2.
TRYON_HD void homography_coords(const Homography& h, double x_row, double y_row, double w_row, double x, int fg_w,
                                int fg_h, int* cx, float* fx, int* cy, float* fy) {
  const double w = w_row + h.m[6] * x;
  const double iw = w != 0.0 ? 1.0 / w : 0.0;  // cv::warpPerspective's guard
  split_coord((x_row + h.m[0] * x) * iw, fg_w, cx, fx);
  split_coord((y_row + h.m[3] * x) * iw, fg_h, cy, fy);
}

TRYON_HD float channel(uint32_t texel, int c) { return static_cast<float>((texel >> (8 * c)) & 255u); }

// Composite one frame pixel px (3 bytes, in place) given its sample position
// (cx + fx, cy + fy) in the premultiplied accessory: warp rounded to uint8, then blend,
// as realtime.geometry.composite_roi.
TRYON_HD void composite_pixel(uint8_t* px, const uint8_t* premul, int fg_w, int fg_h, int64_t premul_stride,
                              int cx, float fx, int cy, float fy) {
  // Entirely outside: every neighbour is border (0), so the frame is unchanged.
  if (cx < -1 || cx >= fg_w || cy < -1 || cy >= fg_h) return;
  uint32_t t00, t01, t10, t11;
  if (cx >= 0 && cx < fg_w - 1 && cy >= 0 && cy < fg_h - 1) {
    const uint8_t* p = premul + cy * premul_stride + cx * 4;
    t00 = load_u32(p);
    t01 = load_u32(p + 4);
    t10 = load_u32(p + premul_stride);
    t11 = load_u32(p + premul_stride + 4);
  } else {  // straddles the accessory's edge: missing neighbours are the 0 border
    const bool x0 = cx >= 0, x1 = cx + 1 < fg_w, y0 = cy >= 0, y1 = cy + 1 < fg_h;
    const int64_t r0 = cy * premul_stride, r1 = r0 + premul_stride;
    t00 = (y0 && x0) ? load_u32(premul + r0 + cx * 4) : 0u;
    t01 = (y0 && x1) ? load_u32(premul + r0 + (cx + 1) * 4) : 0u;
    t10 = (y1 && x0) ? load_u32(premul + r1 + cx * 4) : 0u;
    t11 = (y1 && x1) ? load_u32(premul + r1 + (cx + 1) * 4) : 0u;
  }
  if ((t00 | t01 | t10 | t11) == 0u) return;  // transparent: round(bg * 255 / 255) = bg
  int v[4];
  for (int c = 0; c < 4; ++c)
    v[c] = round_even(bilerp(channel(t00, c), channel(t01, c), channel(t10, c), channel(t11, c), fx, fy));
  const int inv_a = 255 - v[3];
  for (int c = 0; c < 3; ++c) px[c] = blend_channel(px[c], inv_a, v[c]);
}

TRYON_HD float fetch3(const uint8_t* frame, int64_t stride, int w, int h, int x, int y, int c) {
  return (x >= 0 && x < w && y >= 0 && y < h) ? static_cast<float>(frame[y * stride + x * 3 + c]) : 0.0f;
}

// Bilinear BGR sample of the frame at (cx + fx, cy + fy), constant 0 border, rounded to
// integers (cv2.warpAffine's uint8 output).
TRYON_HD void sample_bgr(const uint8_t* frame, int64_t stride, int w, int h, int cx, float fx, int cy, float fy,
                         int bgr[3]) {
  if (cx >= 0 && cx < w - 1 && cy >= 0 && cy < h - 1) {
    const uint8_t* p0 = frame + cy * stride + cx * 3;
    const uint8_t* p1 = p0 + stride;
    for (int c = 0; c < 3; ++c)
      bgr[c] = round_even(bilerp(static_cast<float>(p0[c]), static_cast<float>(p0[c + 3]), static_cast<float>(p1[c]),
                                 static_cast<float>(p1[c + 3]), fx, fy));
  } else if (cx < -1 || cx >= w || cy < -1 || cy >= h) {
    bgr[0] = bgr[1] = bgr[2] = 0;
  } else {
    for (int c = 0; c < 3; ++c)
      bgr[c] = round_even(bilerp(fetch3(frame, stride, w, h, cx, cy, c), fetch3(frame, stride, w, h, cx + 1, cy, c),
                                 fetch3(frame, stride, w, h, cx, cy + 1, c),
                                 fetch3(frame, stride, w, h, cx + 1, cy + 1, c), fx, fy));
  }
}

// ---- argument checks shared by the CPU and CUDA entry points ------------------------

inline int check_preprocess_args(const void* frame, int height, int width, int64_t frame_stride,
                                 const double* crop_from_frame, int size, const float* mean_rgb,
                                 const float* inv_std_rgb, const void* out, Affine* frame_from_crop) {
  if (!frame || !crop_from_frame || !mean_rgb || !inv_std_rgb || !out)
    return fail(TRYON_E_INVALID, "preprocess: null pointer argument");
  if (height < 1 || width < 1 || size < 1)
    return fail(TRYON_E_INVALID, "preprocess: frame " + std::to_string(width) + "x" + std::to_string(height) +
                                     " and size " + std::to_string(size) + " must be positive");
  if (frame_stride < static_cast<int64_t>(width) * 3)
    return fail(TRYON_E_INVALID, "preprocess: frame stride " + std::to_string(frame_stride) +
                                     " bytes is less than width * 3 = " + std::to_string(width * 3));
  if (!invert_affine(crop_from_frame, frame_from_crop))
    return fail(TRYON_E_INVALID, "preprocess: crop_from_frame is singular or not finite");
  return TRYON_OK;
}

// Clips the box to the frame; `empty` is set when nothing remains.
inline int check_composite_args(const void* frame, int height, int width, int64_t frame_stride,
                                const void* premul, int fg_height, int fg_width, int64_t premul_stride,
                                const double* frame_from_fg, const int* box, Homography* fg_from_frame,
                                int clipped[4], bool* empty) {
  if (!frame || !premul || !frame_from_fg || !box) return fail(TRYON_E_INVALID, "composite: null pointer argument");
  if (height < 1 || width < 1 || fg_height < 1 || fg_width < 1)
    return fail(TRYON_E_INVALID, "composite: frame " + std::to_string(width) + "x" + std::to_string(height) +
                                     " and accessory " + std::to_string(fg_width) + "x" +
                                     std::to_string(fg_height) + " must be non-empty");
  if (frame_stride < static_cast<int64_t>(width) * 3)
    return fail(TRYON_E_INVALID, "composite: frame stride " + std::to_string(frame_stride) +
                                     " bytes is less than width * 3");
  if (premul_stride < static_cast<int64_t>(fg_width) * 4)
    return fail(TRYON_E_INVALID, "composite: accessory stride " + std::to_string(premul_stride) +
                                     " bytes is less than width * 4");
  if (!invert_3x3(frame_from_fg, fg_from_frame))
    return fail(TRYON_E_INVALID, "composite: frame_from_fg is singular or not finite");
  clipped[0] = box[0] < 0 ? 0 : box[0];
  clipped[1] = box[1] < 0 ? 0 : box[1];
  clipped[2] = box[2] > width ? width : box[2];
  clipped[3] = box[3] > height ? height : box[3];
  *empty = clipped[2] <= clipped[0] || clipped[3] <= clipped[1];
  return TRYON_OK;
}

}  // namespace tryon

#endif  // TRYON_NATIVE_COMMON_H
