// CPU kernels: fused crop + resize + normalise, warp + alpha composite in place, the
// preview's nearest-neighbour resample through index tables, and the detectors' area
// (box-filter) downscale.
//
// Both walk the output row by row. Per row the inverse mapping is linear in x (affine) or
// a ratio of two linear functions (homography), so the row's constants are computed once
// and each pixel only adds x times the first column. Each row is cut into chunks of
// kChunk pixels: a first, branch-free pass computes the sample positions of the chunk,
// a second pass gathers and blends. The per-pixel arithmetic lives in common.h, shared
// with the CUDA kernels; cpu_avx2.cpp has bit-identical AVX2 rows, used when the CPU can.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <system_error>
#include <thread>
#include <vector>

#include "common.h"
#include "cpu_simd.h"

namespace tryon {
namespace {

constexpr int kChunk = 256;

#if defined(__GNUC__) || defined(__clang__)
inline void prefetch(const void* p) { __builtin_prefetch(p); }
#else
inline void prefetch(const void*) {}
#endif

// The nearest resample's packed 4-pixel moves assume little-endian bytes in a word.
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
constexpr bool kLittleEndian = false;
#else
constexpr bool kLittleEndian = true;
#endif

std::atomic<bool> g_simd{true};  // tryon_native_set_simd()

bool use_avx2() { return g_simd.load(std::memory_order_relaxed) && avx2_usable(); }

// Runs fn(r) for rows r in [r0, r1), split into `threads` contiguous bands. Extra threads
// are started per call and joined (tens of microseconds) rather than kept in a pool:
// OpenMP's idle workers spin-wait, and on the shared 2-core dev machine that slowed the
// variants interleaved with them (the 1-thread rows up to 4x at p50) and made the
// 2-thread calls themselves 5-30x slower than 1 thread; in the live loop the spinning
// would steal the core from inference.
template <typename RowFn>
void parallel_rows(int r0, int r1, int threads, const RowFn& fn) {
  const int n = r1 - r0;
  const int bands = std::max(1, std::min(threads, n / 16));  // >= 16 rows per band
  if (bands <= 1) {
    for (int r = r0; r < r1; ++r) fn(r);
    return;
  }
  auto band = [&](int b) {
    const int lo = r0 + static_cast<int>(static_cast<int64_t>(n) * b / bands);
    const int hi = r0 + static_cast<int>(static_cast<int64_t>(n) * (b + 1) / bands);
    for (int r = lo; r < hi; ++r) fn(r);
  };
  std::vector<std::thread> workers;
  workers.reserve(bands - 1);
  for (int b = 1; b < bands; ++b) {
    try {
      workers.emplace_back(band, b);
    } catch (const std::system_error&) {  // no thread available: do the band here
      band(b);
    }
  }
  band(0);
  for (std::thread& t : workers) t.join();
}

void composite_row(uint8_t* dst, const uint8_t* premul, int fg_w, int fg_h, int64_t premul_stride,
                   const Homography& h, int y, int x0, int x1) {
  alignas(64) int cx[kChunk], cy[kChunk];
  alignas(64) float fx[kChunk], fy[kChunk];
  const double yd = y;
  const double x_row = h.m[1] * yd + h.m[2], y_row = h.m[4] * yd + h.m[5], w_row = h.m[7] * yd + h.m[8];
  for (int xs = x0; xs < x1; xs += kChunk) {
    const int n = std::min(kChunk, x1 - xs);
    for (int i = 0; i < n; ++i)
      homography_coords(h, x_row, y_row, w_row, static_cast<double>(xs + i), fg_w, fg_h, &cx[i], &fx[i], &cy[i],
                        &fy[i]);
    uint8_t* px = dst + static_cast<int64_t>(xs) * 3;
    for (int i = 0; i < n; ++i) composite_pixel(px + 3 * i, premul, fg_w, fg_h, premul_stride, cx[i], fx[i], cy[i], fy[i]);
  }
}

void preprocess_row(const uint8_t* frame, int h, int w, int64_t stride, const Affine& a, int size, int y,
                    const float* mean, const float* inv_std, float* out) {
  alignas(64) int cx[kChunk], cy[kChunk];
  alignas(64) float fx[kChunk], fy[kChunk];
  const double yd = y;
  const double x_row = a.m[1] * yd + a.m[2], y_row = a.m[4] * yd + a.m[5];
  const int64_t plane = static_cast<int64_t>(size) * size;
  float* out_r = out + static_cast<int64_t>(y) * size;
  float* out_g = out_r + plane;
  float* out_b = out_g + plane;
  for (int xs = 0; xs < size; xs += kChunk) {
    const int n = std::min(kChunk, size - xs);
    for (int i = 0; i < n; ++i) {
      const double x = xs + i;
      split_coord(x_row + a.m[0] * x, w, &cx[i], &fx[i]);
      split_coord(y_row + a.m[3] * x, h, &cy[i], &fy[i]);
    }
    for (int i = 0; i < n; ++i) {
      int bgr[3];
      sample_bgr(frame, stride, w, h, cx[i], fx[i], cy[i], fy[i], bgr);
      const int o = xs + i;  // BGR frame -> RGB planes
      out_r[o] = normalise(bgr[2], mean[0], inv_std[0]);
      out_g[o] = normalise(bgr[1], mean[1], inv_std[1]);
      out_b[o] = normalise(bgr[0], mean[2], inv_std[2]);
    }
  }
}

// One row of the nearest resample, 4 output pixels (12 bytes) per step: four 4-byte loads
// (each also reads the byte after its pixel), packed into one 8-byte and one 4-byte store,
// so nothing is written past the row. `off` holds the byte offset of each output pixel's
// source pixel in a row. While this row is gathered, the same columns of the next row the
// resample reads (`next_row`) are prefetched: a reduced preview reads every cache line of
// each source row it keeps, rows that are not adjacent, so the hardware prefetcher starts
// cold on each and the row's DRAM latency would otherwise not overlap with the gather
// (measured at 4K -> 1632x918: 2.5 -> 1.6 ms on one core). `wide_loads` false (the last
// image row, when a column reads the last pixel) moves 3 bytes per pixel: the byte after
// the image's last pixel may not exist.
void resample_row(const uint8_t* src_row, const uint8_t* next_row, const int64_t* off, uint8_t* dst, int out_width,
                  bool wide_loads) {
  int x = 0;
  if (wide_loads && kLittleEndian) {
    for (; x + 4 <= out_width; x += 4) {
      prefetch(next_row + off[x]);
      uint32_t a, b, c, d;
      std::memcpy(&a, src_row + off[x], 4);
      std::memcpy(&b, src_row + off[x + 1], 4);
      std::memcpy(&c, src_row + off[x + 2], 4);
      std::memcpy(&d, src_row + off[x + 3], 4);
      // little-endian byte order: pixel x in bytes 0-2, x+1 in 3-5, x+2 in 6-8, x+3 in 9-11
      const uint64_t lo = static_cast<uint64_t>(a & 0xFFFFFFu) | (static_cast<uint64_t>(b & 0xFFFFFFu) << 24) |
                          (static_cast<uint64_t>(c) << 48);
      const uint32_t hi = ((c >> 16) & 0xFFu) | (d << 8);
      std::memcpy(dst + 3 * static_cast<int64_t>(x), &lo, 8);
      std::memcpy(dst + 3 * static_cast<int64_t>(x) + 8, &hi, 4);
    }
  }
  for (; x < out_width; ++x) {
    const uint8_t* p = src_row + off[x];
    uint8_t* q = dst + 3 * static_cast<int64_t>(x);
    q[0] = p[0], q[1] = p[1], q[2] = p[2];
  }
}

// acc[i] += weight * row[i], i < n: one source row into the area resize's float row. The
// compiler's vectorisation of this loop is enough: it is memory-bound (an AVX2 version measured
// 1.86 against 1.93 ms p50 on the 4K face window, AMD EPYC, one core), so no AVX2 row.
void area_accumulate_row(float* acc, const uint8_t* row, int n, float weight) {
  for (int i = 0; i < n; ++i) acc[i] += weight * static_cast<float>(row[i]);
}

// A weighted mean in [0, 255] (plus float error) rounded to uint8 as cv2 does (cvRound).
inline uint8_t round_u8(float v) { return static_cast<uint8_t>(round_even(std::min(std::max(v, 0.0f), 255.0f))); }

// One source sample of an area-resize output pixel: source index and weight.
struct AreaTap {
  int src;
  float weight;
};

// The area-resize taps of every output index along one axis (OpenCV's INTER_AREA for a
// non-integer shrink): output d covers the source interval [d * scale, (d + 1) * scale),
// scale = ssize / dsize; each source pixel it overlaps gets the overlap length divided by
// the cell width (partial pixels at both ends, weights summing to 1). Taps of output d are
// taps[start[d] .. start[d + 1]). An integer scale gives `scale` taps of 1 / scale each,
// OpenCV's fast path's plain average.
void area_taps(int ssize, int dsize, std::vector<int>* start, std::vector<AreaTap>* taps) {
  const double scale = static_cast<double>(ssize) / dsize;
  start->assign(dsize + 1, 0);
  taps->clear();
  for (int d = 0; d < dsize; ++d) {
    const double f1 = d * scale, f2 = f1 + scale;
    const double cell = std::min(scale, ssize - f1);
    int s2 = std::min(static_cast<int>(std::floor(f2)), ssize - 1);
    const int s1 = std::min(static_cast<int>(std::ceil(f1)), s2);
    if (s1 - f1 > 1e-3) taps->push_back({s1 - 1, static_cast<float>((s1 - f1) / cell)});
    for (int s = s1; s < s2; ++s) taps->push_back({s, static_cast<float>(1.0 / cell)});
    const double tail = std::min(std::min(f2, static_cast<double>(ssize)) - s2, 1.0);
    if (tail > 1e-3) taps->push_back({s2, static_cast<float>(tail / cell)});
    (*start)[d + 1] = static_cast<int>(taps->size());
  }
}

}  // namespace
}  // namespace tryon

extern "C" int tryon_native_set_simd(int enable) {
  return tryon::g_simd.exchange(enable != 0) ? 1 : 0;
}

extern "C" const char* tryon_native_cpu_path(void) { return tryon::use_avx2() ? "avx2" : "scalar"; }

extern "C" int tryon_preprocess_crop_u8c3(const uint8_t* frame, int height, int width, int64_t frame_stride,
                                          const double crop_from_frame[6], int size, const float mean_rgb[3],
                                          const float inv_std_rgb[3], float* out, int num_threads) {
  tryon::Affine a;
  const int rc = tryon::check_preprocess_args(frame, height, width, frame_stride, crop_from_frame, size, mean_rgb,
                                              inv_std_rgb, out, &a);
  if (rc != TRYON_OK) return rc;
  const auto row = tryon::use_avx2() ? tryon::preprocess_row_avx2 : tryon::preprocess_row;
  tryon::parallel_rows(0, size, num_threads, [&](int y) {
    row(frame, height, width, frame_stride, a, size, y, mean_rgb, inv_std_rgb, out);
  });
  return TRYON_OK;
}

extern "C" int tryon_composite_u8c3(uint8_t* frame, int height, int width, int64_t frame_stride,
                                    const uint8_t* premul, int fg_height, int fg_width, int64_t premul_stride,
                                    const double frame_from_fg[9], const int box[4], int num_threads) {
  tryon::Homography h;
  int b[4];
  bool empty = false;
  const int rc = tryon::check_composite_args(frame, height, width, frame_stride, premul, fg_height, fg_width,
                                             premul_stride, frame_from_fg, box, &h, b, &empty);
  if (rc != TRYON_OK || empty) return rc;
  const auto row = tryon::use_avx2() ? tryon::composite_row_avx2 : tryon::composite_row;
  tryon::parallel_rows(b[1], b[3], num_threads, [&](int y) {
    row(frame + y * frame_stride, premul, fg_width, fg_height, premul_stride, h, y, b[0], b[2]);
  });
  return TRYON_OK;
}

extern "C" int tryon_resample_nearest_u8c3(const uint8_t* src, int height, int width, int64_t src_stride,
                                           uint8_t* dst, int out_height, int out_width, int64_t dst_stride,
                                           const int32_t* src_x, const int32_t* src_y, int num_threads) {
  if (!src || !dst || !src_x || !src_y) return tryon::fail(TRYON_E_INVALID, "resample_nearest: null pointer");
  if (height < 1 || width < 1 || out_height < 1 || out_width < 1)
    return tryon::fail(TRYON_E_INVALID, "resample_nearest: empty image");
  if (src_stride < 3 * static_cast<int64_t>(width) || dst_stride < 3 * static_cast<int64_t>(out_width))
    return tryon::fail(TRYON_E_INVALID, "resample_nearest: row stride smaller than a row");
  for (int x = 0; x < out_width; ++x)
    if (src_x[x] < 0 || src_x[x] >= width)
      return tryon::fail(TRYON_E_INVALID, "resample_nearest: src_x[" + std::to_string(x) + "] = " +
                                              std::to_string(src_x[x]) + " outside [0, " + std::to_string(width) + ")");
  for (int y = 0; y < out_height; ++y)
    if (src_y[y] < 0 || src_y[y] >= height)
      return tryon::fail(TRYON_E_INVALID, "resample_nearest: src_y[" + std::to_string(y) + "] = " +
                                              std::to_string(src_y[y]) + " outside [0, " + std::to_string(height) + ")");
  std::vector<int64_t> off(out_width);  // byte offsets of the source pixels in a row
  bool reads_last_column = false;
  for (int x = 0; x < out_width; ++x) {
    off[x] = 3 * static_cast<int64_t>(src_x[x]);
    reads_last_column |= src_x[x] == width - 1;
  }
  tryon::parallel_rows(0, out_height, num_threads, [&](int y) {
    const int next = src_y[std::min(y + 1, out_height - 1)];
    tryon::resample_row(src + src_y[y] * src_stride, src + next * src_stride, off.data(), dst + y * dst_stride,
                        out_width, !(reads_last_column && src_y[y] == height - 1));
  });
  return TRYON_OK;
}

extern "C" int tryon_resize_area_u8c3(const uint8_t* src, int height, int width, int64_t src_stride, uint8_t* dst,
                                      int out_height, int out_width, int64_t dst_stride, int num_threads) {
  if (!src || !dst) return tryon::fail(TRYON_E_INVALID, "resize_area: null pointer");
  if (height < 1 || width < 1 || out_height < 1 || out_width < 1)
    return tryon::fail(TRYON_E_INVALID, "resize_area: empty image");
  if (out_height > height || out_width > width)
    return tryon::fail(TRYON_E_INVALID, "resize_area: shrinks only, got " + std::to_string(width) + "x" +
                                            std::to_string(height) + " -> " + std::to_string(out_width) + "x" +
                                            std::to_string(out_height));
  if (src_stride < 3 * static_cast<int64_t>(width) || dst_stride < 3 * static_cast<int64_t>(out_width))
    return tryon::fail(TRYON_E_INVALID, "resize_area: row stride smaller than a row");
  std::vector<int> xs, ys;
  std::vector<tryon::AreaTap> xt, yt;
  tryon::area_taps(width, out_width, &xs, &xt);
  tryon::area_taps(height, out_height, &ys, &yt);
  const int n = 3 * width;
  // Vertical first: every source row of an output row is added, weighted, into one float row
  // (contiguous, so it vectorises and reads each source byte once); then the row is reduced
  // horizontally through the column taps.
  tryon::parallel_rows(0, out_height, num_threads, [&](int y) {
    thread_local std::vector<float> acc;
    acc.assign(n, 0.0f);
    for (int t = ys[y]; t < ys[y + 1]; ++t)
      tryon::area_accumulate_row(acc.data(), src + yt[t].src * src_stride, n, yt[t].weight);
    uint8_t* out = dst + y * dst_stride;
    for (int x = 0; x < out_width; ++x) {
      float b = 0.0f, g = 0.0f, r = 0.0f;
      for (int t = xs[x]; t < xs[x + 1]; ++t) {
        const float w = xt[t].weight;
        const float* p = acc.data() + 3 * xt[t].src;
        b += w * p[0];
        g += w * p[1];
        r += w * p[2];
      }
      out[3 * x] = tryon::round_u8(b);
      out[3 * x + 1] = tryon::round_u8(g);
      out[3 * x + 2] = tryon::round_u8(r);
    }
  });
  return TRYON_OK;
}
