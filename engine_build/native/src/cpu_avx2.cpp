// AVX2 versions of the CPU row kernels, 8 output pixels per step. They reproduce the
// scalar arithmetic of common.h operation by operation (double sample positions, float32
// bilinear, magic-number rounding, exact /255), so results are bit-identical; the scalar
// functions still handle row tails and groups that touch the last byte of a buffer.
//
// Per-function target attributes (not a -mavx2 flag for the file) keep every inline
// helper that is emitted out of line at the baseline ISA, so nothing compiled for AVX2
// can be picked by the linker for a caller on a CPU without it.
#include "cpu_simd.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define TRYON_HAVE_AVX2_ROWS 1
#include <immintrin.h>
#endif

namespace tryon {

#if defined(TRYON_HAVE_AVX2_ROWS)

#define TRYON_AVX2 __attribute__((target("avx2")))

namespace {

// Sample positions of 8 consecutive pixels, from 2 x 4 doubles (u_lo, u_hi): clamp to
// [-2, limit + 1] (NaN -> -2), floor by truncating u + 4, fraction to float clamped to
// [0, 1] -- split_coord() in common.h.
struct Split8 {
  __m256i i;
  __m256 f;
};

TRYON_AVX2 inline Split8 split8(__m256d u_lo, __m256d u_hi, double limit) {
  const __m256d lo = _mm256_set1_pd(-2.0), hi = _mm256_set1_pd(limit + 1.0), four = _mm256_set1_pd(4.0);
  const __m128i four_i = _mm_set1_epi32(4);
  // max_pd returns its second operand when the first is NaN, as `u > -2 ? u : -2`.
  u_lo = _mm256_min_pd(_mm256_max_pd(u_lo, lo), hi);
  u_hi = _mm256_min_pd(_mm256_max_pd(u_hi, lo), hi);
  const __m128i i_lo = _mm_sub_epi32(_mm256_cvttpd_epi32(_mm256_add_pd(u_lo, four)), four_i);
  const __m128i i_hi = _mm_sub_epi32(_mm256_cvttpd_epi32(_mm256_add_pd(u_hi, four)), four_i);
  const __m128 f_lo = _mm256_cvtpd_ps(_mm256_sub_pd(u_lo, _mm256_cvtepi32_pd(i_lo)));
  const __m128 f_hi = _mm256_cvtpd_ps(_mm256_sub_pd(u_hi, _mm256_cvtepi32_pd(i_hi)));
  Split8 s;
  s.i = _mm256_set_m128i(i_hi, i_lo);
  s.f = _mm256_min_ps(_mm256_max_ps(_mm256_set_m128(f_hi, f_lo), _mm256_setzero_ps()), _mm256_set1_ps(1.0f));
  return s;
}

// bilerp() then round_even() on one 8-bit channel (at bit `shift`) of 8 texel quads.
TRYON_AVX2 inline __m256i interp_channel(__m256i t00, __m256i t01, __m256i t10, __m256i t11, int shift, __m256 fx,
                                         __m256 fy) {
  const __m256i mask = _mm256_set1_epi32(255);
  const __m128i sh = _mm_cvtsi32_si128(shift);
  const __m256 p00 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srl_epi32(t00, sh), mask));
  const __m256 p01 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srl_epi32(t01, sh), mask));
  const __m256 p10 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srl_epi32(t10, sh), mask));
  const __m256 p11 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srl_epi32(t11, sh), mask));
  const __m256 top = _mm256_add_ps(p00, _mm256_mul_ps(_mm256_sub_ps(p01, p00), fx));
  const __m256 bot = _mm256_add_ps(p10, _mm256_mul_ps(_mm256_sub_ps(p11, p10), fx));
  const __m256 v = _mm256_add_ps(top, _mm256_mul_ps(_mm256_sub_ps(bot, top), fy));
  const __m256 magic = _mm256_set1_ps(12582912.0f);
  return _mm256_cvttps_epi32(_mm256_sub_ps(_mm256_add_ps(v, magic), magic));
}

// 8 x int32 (0..255) -> 8 x uint16.
TRYON_AVX2 inline __m128i to_u16(__m256i v) {
  return _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

// Texel masks of the four bilinear neighbours: inside the image, and the group mask.
struct Quad8 {
  __m256i idx, m00, m01, m10, m11;
};

// pshufb masks: 24 BGR bytes (lo = bytes 0..15, hi = bytes 16..23) <-> 8 x uint16 per
// channel. -1 (0x80) writes a zero byte.
#define B_ (-1)
alignas(16) const int8_t kDeLo[3][16] = {{0, B_, 3, B_, 6, B_, 9, B_, 12, B_, 15, B_, B_, B_, B_, B_},
                                         {1, B_, 4, B_, 7, B_, 10, B_, 13, B_, B_, B_, B_, B_, B_, B_},
                                         {2, B_, 5, B_, 8, B_, 11, B_, 14, B_, B_, B_, B_, B_, B_, B_}};
alignas(16) const int8_t kDeHi[3][16] = {{B_, B_, B_, B_, B_, B_, B_, B_, B_, B_, B_, B_, 2, B_, 5, B_},
                                         {B_, B_, B_, B_, B_, B_, B_, B_, B_, B_, 0, B_, 3, B_, 6, B_},
                                         {B_, B_, B_, B_, B_, B_, B_, B_, B_, B_, 1, B_, 4, B_, 7, B_}};
// Re-interleave from bg = [b0..b7, g0..g7] and r = [r0..r7, 0 ..] into output bytes 0..15 / 16..23.
alignas(16) const int8_t kInLoBG[16] = {0, 8, B_, 1, 9, B_, 2, 10, B_, 3, 11, B_, 4, 12, B_, 5};
alignas(16) const int8_t kInLoR[16] = {B_, B_, 0, B_, B_, 1, B_, B_, 2, B_, B_, 3, B_, B_, 4, B_};
alignas(16) const int8_t kInHiBG[16] = {13, B_, 6, 14, B_, 7, 15, B_, B_, B_, B_, B_, B_, B_, B_, B_};
alignas(16) const int8_t kInHiR[16] = {B_, 5, B_, B_, 6, B_, B_, 7, B_, B_, B_, B_, B_, B_, B_, B_};
#undef B_

TRYON_AVX2 inline __m128i mask16(const int8_t* m) { return _mm_load_si128(reinterpret_cast<const __m128i*>(m)); }

// 4-byte gather of BGR texels at byte offsets `off` (lanes in `m`; others 0). Reading 4
// bytes at the buffer's last pixel (`last`) would pass its end by one byte: that texel is
// read from one byte earlier and shifted down instead.
TRYON_AVX2 inline __m256i gather_bgr(const uint8_t* frame, __m256i off, __m256i m, __m256i last) {
  const __m256i at_last = _mm256_cmpeq_epi32(off, last);  // -1 where off == last
  const __m256i t = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), reinterpret_cast<const int*>(frame),
                                                _mm256_add_epi32(off, at_last), m, 1);
  return _mm256_srlv_epi32(t, _mm256_and_si256(at_last, _mm256_set1_epi32(8)));
}

}  // namespace

bool avx2_usable() {
  static const bool ok = __builtin_cpu_supports("avx2");
  return ok;
}

TRYON_AVX2 void composite_row_avx2(uint8_t* row, const uint8_t* premul, int fg_w, int fg_h, int64_t premul_stride,
                                   const Homography& h, int y, int x0, int x1) {
  const double yd = y;
  const double x_row = h.m[1] * yd + h.m[2], y_row = h.m[4] * yd + h.m[5], w_row = h.m[7] * yd + h.m[8];
  const __m256d xr = _mm256_set1_pd(x_row), yr = _mm256_set1_pd(y_row), wr = _mm256_set1_pd(w_row);
  const __m256d m0 = _mm256_set1_pd(h.m[0]), m3 = _mm256_set1_pd(h.m[3]), m6 = _mm256_set1_pd(h.m[6]);
  const __m256d zero_d = _mm256_setzero_pd(), one_d = _mm256_set1_pd(1.0), step = _mm256_set_pd(3, 2, 1, 0);
  const __m256i minus1 = _mm256_set1_epi32(-1), w_i = _mm256_set1_epi32(fg_w), h_i = _mm256_set1_epi32(fg_h);
  const __m256i w1_i = _mm256_set1_epi32(fg_w - 1), h1_i = _mm256_set1_epi32(fg_h - 1);
  const __m256i stride4 = _mm256_set1_epi32(static_cast<int>(premul_stride / 4)), one_i = _mm256_set1_epi32(1);
  const int* base = reinterpret_cast<const int*>(premul);
  const bool gather_ok = premul_stride % 4 == 0 && premul_stride / 4 * static_cast<int64_t>(fg_h) < (1LL << 31);
  int x = x0;
  for (; gather_ok && x + 8 <= x1; x += 8) {
    // Sample positions, double precision (homography_coords()).
    __m256d u[2], v[2];
    for (int k = 0; k < 2; ++k) {
      const __m256d xd = _mm256_add_pd(_mm256_set1_pd(static_cast<double>(x + 4 * k)), step);
      const __m256d w = _mm256_add_pd(wr, _mm256_mul_pd(m6, xd));
      const __m256d nz = _mm256_cmp_pd(w, zero_d, _CMP_NEQ_UQ);
      const __m256d iw = _mm256_and_pd(_mm256_div_pd(one_d, w), nz);
      u[k] = _mm256_mul_pd(_mm256_add_pd(xr, _mm256_mul_pd(m0, xd)), iw);
      v[k] = _mm256_mul_pd(_mm256_add_pd(yr, _mm256_mul_pd(m3, xd)), iw);
    }
    const Split8 sx = split8(u[0], u[1], fg_w), sy = split8(v[0], v[1], fg_h);
    const __m256i cx = sx.i, cy = sy.i;
    // Inside: -1 <= c < size on both axes; texel validity per neighbour.
    const __m256i in = _mm256_andnot_si256(
        _mm256_or_si256(_mm256_or_si256(_mm256_cmpgt_epi32(minus1, cx), _mm256_cmpgt_epi32(cx, _mm256_sub_epi32(w_i, one_i))),
                        _mm256_or_si256(_mm256_cmpgt_epi32(minus1, cy), _mm256_cmpgt_epi32(cy, _mm256_sub_epi32(h_i, one_i)))),
        minus1);
    if (_mm256_testz_si256(in, in)) continue;  // all 8 entirely outside: frame unchanged
    const __m256i vx0 = _mm256_cmpgt_epi32(cx, minus1), vx1 = _mm256_cmpgt_epi32(w1_i, cx);
    const __m256i vy0 = _mm256_cmpgt_epi32(cy, minus1), vy1 = _mm256_cmpgt_epi32(h1_i, cy);
    const __m256i idx = _mm256_add_epi32(_mm256_mullo_epi32(cy, stride4), cx);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i t00 = _mm256_mask_i32gather_epi32(zero, base, idx, _mm256_and_si256(in, _mm256_and_si256(vx0, vy0)), 4);
    const __m256i t01 = _mm256_mask_i32gather_epi32(zero, base, _mm256_add_epi32(idx, one_i),
                                                    _mm256_and_si256(in, _mm256_and_si256(vx1, vy0)), 4);
    const __m256i idx1 = _mm256_add_epi32(idx, stride4);
    const __m256i t10 = _mm256_mask_i32gather_epi32(zero, base, idx1, _mm256_and_si256(in, _mm256_and_si256(vx0, vy1)), 4);
    const __m256i t11 = _mm256_mask_i32gather_epi32(zero, base, _mm256_add_epi32(idx1, one_i),
                                                    _mm256_and_si256(in, _mm256_and_si256(vx1, vy1)), 4);
    const __m256i any = _mm256_or_si256(_mm256_or_si256(t00, t01), _mm256_or_si256(t10, t11));
    if (_mm256_testz_si256(any, any)) continue;  // all 8 transparent: frame unchanged
    // Warped premultiplied BGRA, rounded (composite_pixel()); outside lanes are 0 -> bg kept.
    const __m128i pb = to_u16(interp_channel(t00, t01, t10, t11, 0, sx.f, sy.f));
    const __m128i pg = to_u16(interp_channel(t00, t01, t10, t11, 8, sx.f, sy.f));
    const __m128i pr = to_u16(interp_channel(t00, t01, t10, t11, 16, sx.f, sy.f));
    const __m128i pa = to_u16(interp_channel(t00, t01, t10, t11, 24, sx.f, sy.f));
    // Blend: min(255, round(bg * (255 - a) / 255) + p) on 8 x uint16 per channel.
    uint8_t* px = row + static_cast<int64_t>(x) * 3;
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(px));
    const __m128i hi = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(px + 16));
    const __m128i inv_a = _mm_sub_epi16(_mm_set1_epi16(255), pa);
    const __m128i c128 = _mm_set1_epi16(128), c255 = _mm_set1_epi16(255);
    __m128i out[3];
    const __m128i p[3] = {pb, pg, pr};
    for (int c = 0; c < 3; ++c) {
      const __m128i bg = _mm_or_si128(_mm_shuffle_epi8(lo, mask16(kDeLo[c])), _mm_shuffle_epi8(hi, mask16(kDeHi[c])));
      const __m128i t = _mm_add_epi16(_mm_mullo_epi16(bg, inv_a), c128);
      const __m128i q = _mm_srli_epi16(_mm_add_epi16(t, _mm_srli_epi16(t, 8)), 8);
      out[c] = _mm_min_epu16(_mm_add_epi16(q, p[c]), c255);
    }
    const __m128i bgp = _mm_packus_epi16(out[0], out[1]);          // b0..b7 g0..g7
    const __m128i rp = _mm_packus_epi16(out[2], _mm_setzero_si128());  // r0..r7
    const __m128i o_lo = _mm_or_si128(_mm_shuffle_epi8(bgp, mask16(kInLoBG)), _mm_shuffle_epi8(rp, mask16(kInLoR)));
    const __m128i o_hi = _mm_or_si128(_mm_shuffle_epi8(bgp, mask16(kInHiBG)), _mm_shuffle_epi8(rp, mask16(kInHiR)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(px), o_lo);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(px + 16), o_hi);
  }
  for (; x < x1; ++x) {  // tail: the scalar pixel
    int cx, cy;
    float fx, fy;
    homography_coords(h, x_row, y_row, w_row, static_cast<double>(x), fg_w, fg_h, &cx, &fx, &cy, &fy);
    composite_pixel(row + static_cast<int64_t>(x) * 3, premul, fg_w, fg_h, premul_stride, cx, fx, cy, fy);
  }
}

TRYON_AVX2 void preprocess_row_avx2(const uint8_t* frame, int h, int w, int64_t stride, const Affine& a, int size,
                                    int y, const float* mean, const float* inv_std, float* out) {
  const double yd = y;
  const double x_row = a.m[1] * yd + a.m[2], y_row = a.m[4] * yd + a.m[5];
  const __m256d xr = _mm256_set1_pd(x_row), yr = _mm256_set1_pd(y_row);
  const __m256d m0 = _mm256_set1_pd(a.m[0]), m3 = _mm256_set1_pd(a.m[3]), step = _mm256_set_pd(3, 2, 1, 0);
  const int64_t plane = static_cast<int64_t>(size) * size;
  float* out_r = out + static_cast<int64_t>(y) * size;
  float* out_g = out_r + plane;
  float* out_b = out_g + plane;
  const __m256i minus1 = _mm256_set1_epi32(-1), one_i = _mm256_set1_epi32(1);
  const __m256i w1_i = _mm256_set1_epi32(w - 1), h1_i = _mm256_set1_epi32(h - 1);
  const __m256i stride_i = _mm256_set1_epi32(static_cast<int>(stride)), three = _mm256_set1_epi32(3);
  const int64_t last64 = (static_cast<int64_t>(h) - 1) * stride + (static_cast<int64_t>(w) - 1) * 3;
  const bool gather_ok = last64 + 3 < (1LL << 31) && last64 >= 1;
  const __m256i last = _mm256_set1_epi32(static_cast<int>(last64));
  const __m256 mean_v[3] = {_mm256_set1_ps(mean[0]), _mm256_set1_ps(mean[1]), _mm256_set1_ps(mean[2])};
  const __m256 inv_v[3] = {_mm256_set1_ps(inv_std[0]), _mm256_set1_ps(inv_std[1]), _mm256_set1_ps(inv_std[2])};
  int x = 0;
  for (; gather_ok && x + 8 <= size; x += 8) {
    __m256d u[2], v[2];
    for (int k = 0; k < 2; ++k) {
      const __m256d xd = _mm256_add_pd(_mm256_set1_pd(static_cast<double>(x + 4 * k)), step);
      u[k] = _mm256_add_pd(xr, _mm256_mul_pd(m0, xd));
      v[k] = _mm256_add_pd(yr, _mm256_mul_pd(m3, xd));
    }
    const Split8 sx = split8(u[0], u[1], w), sy = split8(v[0], v[1], h);
    const __m256i cx = sx.i, cy = sy.i;
    // Texel validity: x in [0, w), y in [0, h) for each neighbour (0 border otherwise).
    const __m256i vx0 = _mm256_and_si256(_mm256_cmpgt_epi32(cx, minus1), _mm256_cmpgt_epi32(_mm256_add_epi32(w1_i, one_i), cx));
    const __m256i vx1 = _mm256_and_si256(_mm256_cmpgt_epi32(cx, _mm256_set1_epi32(-2)), _mm256_cmpgt_epi32(w1_i, cx));
    const __m256i vy0 = _mm256_and_si256(_mm256_cmpgt_epi32(cy, minus1), _mm256_cmpgt_epi32(_mm256_add_epi32(h1_i, one_i), cy));
    const __m256i vy1 = _mm256_and_si256(_mm256_cmpgt_epi32(cy, _mm256_set1_epi32(-2)), _mm256_cmpgt_epi32(h1_i, cy));
    const __m256i off = _mm256_add_epi32(_mm256_mullo_epi32(cy, stride_i), _mm256_mullo_epi32(cx, three));
    const __m256i t00 = gather_bgr(frame, off, _mm256_and_si256(vx0, vy0), last);
    const __m256i t01 = gather_bgr(frame, _mm256_add_epi32(off, three), _mm256_and_si256(vx1, vy0), last);
    const __m256i off1 = _mm256_add_epi32(off, stride_i);
    const __m256i t10 = gather_bgr(frame, off1, _mm256_and_si256(vx0, vy1), last);
    const __m256i t11 = gather_bgr(frame, _mm256_add_epi32(off1, three), _mm256_and_si256(vx1, vy1), last);
    float* dst[3] = {out_b, out_g, out_r};  // BGR channel c -> RGB plane 2 - c
    const int plane_of[3] = {2, 1, 0};
    for (int c = 0; c < 3; ++c) {
      const __m256 g = _mm256_cvtepi32_ps(interp_channel(t00, t01, t10, t11, 8 * c, sx.f, sy.f));
      const int p = plane_of[c];
      _mm256_storeu_ps(dst[c] + x, _mm256_mul_ps(_mm256_sub_ps(g, mean_v[p]), inv_v[p]));
    }
  }
  for (; x < size; ++x) {  // tail: the scalar pixel
    int cx, cy, bgr[3];
    float fx, fy;
    split_coord(x_row + a.m[0] * static_cast<double>(x), w, &cx, &fx);
    split_coord(y_row + a.m[3] * static_cast<double>(x), h, &cy, &fy);
    sample_bgr(frame, stride, w, h, cx, fx, cy, fy, bgr);
    out_r[x] = normalise(bgr[2], mean[0], inv_std[0]);
    out_g[x] = normalise(bgr[1], mean[1], inv_std[1]);
    out_b[x] = normalise(bgr[0], mean[2], inv_std[2]);
  }
}

#else  // no AVX2 rows on this compiler / architecture

bool avx2_usable() { return false; }

void composite_row_avx2(uint8_t*, const uint8_t*, int, int, int64_t, const Homography&, int, int, int) {}

void preprocess_row_avx2(const uint8_t*, int, int, int64_t, const Affine&, int, int, const float*, const float*,
                         float*) {}

#endif

}  // namespace tryon
