// CTest for libtryon_native.
//
//   test_tryon_native cpu   CPU kernels vs a straightforward double-precision reference
//                           (exact bilinear, round, blend) on generated frames: quads
//                           partly outside the frame, several sizes, 1 and 2 threads.
//   test_tryon_native cuda  CUDA kernels vs the CPU kernels; exits 77 (CTest "skipped")
//                           when the library has no CUDA or no GPU is present.
//
// Tolerance: one grey level (the fixed-point weights move a sample by at most 1/4096 px).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tryon_native.h"

#if defined(TRYON_TEST_CUDA)
#include <cuda_runtime.h>
#endif

namespace {

constexpr int kSkip = 77;
// ImageNet mean / std in grey levels (realtime/config.py IMAGENET_MEAN_RGB / STD_RGB).
const float kMean[3] = {0.485f * 255.0f, 0.456f * 255.0f, 0.406f * 255.0f};
const float kInvStd[3] = {1.0f / (0.229f * 255.0f), 1.0f / (0.224f * 255.0f), 1.0f / (0.225f * 255.0f)};

int g_failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("FAIL: %s\n", what.c_str());
    ++g_failures;
  }
}

struct Mat3 {
  double m[9];
};

Mat3 mul(const Mat3& a, const Mat3& b) {
  Mat3 r{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) r.m[i * 3 + j] += a.m[i * 3 + k] * b.m[k * 3 + j];
  return r;
}

Mat3 translate(double tx, double ty) { return {{1, 0, tx, 0, 1, ty, 0, 0, 1}}; }
Mat3 rotate_scale(double deg, double s) {
  const double t = deg * M_PI / 180.0;
  return {{s * std::cos(t), -s * std::sin(t), 0, s * std::sin(t), s * std::cos(t), 0, 0, 0, 1}};
}
// Elementary perspective and its exact inverse.
Mat3 tilt(double px, double py) { return {{1, 0, 0, 0, 1, 0, px, py, 1}}; }

// A homography built from factors, with its inverse built from the inverted factors, so
// the reference never shares the library's matrix inversion.
struct Warp {
  Mat3 fwd, inv;
};

Warp make_warp(double cx, double cy, double deg, double s, double px, double py, double fg_w, double fg_h) {
  // frame_from_fg = T(c) * R(deg) S(s) * P(px, py) * T(-fg centre)
  Warp w;
  w.fwd = mul(translate(cx, cy), mul(rotate_scale(deg, s), mul(tilt(px, py), translate(-fg_w / 2, -fg_h / 2))));
  w.inv = mul(translate(fg_w / 2, fg_h / 2), mul(tilt(-px, -py), mul(rotate_scale(-deg, 1.0 / s), translate(-cx, -cy))));
  return w;
}

std::vector<uint8_t> make_frame(int h, int w, std::mt19937& rng) {
  std::vector<uint8_t> f(static_cast<size_t>(h) * w * 3);
  std::uniform_int_distribution<int> noise(0, 255);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        // Half of the frame smooth gradients, half noise (the worst case for rounding).
        const int smooth = (x * (c + 1) + y * 2) % 256;
        f[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>(x < w / 2 ? smooth : noise(rng));
      }
  return f;
}

// Premultiplied BGRA accessory: random colours, alpha 0 at the margins, soft edges.
std::vector<uint8_t> make_premul(int h, int w, std::mt19937& rng) {
  std::vector<uint8_t> p(static_cast<size_t>(h) * w * 4);
  std::uniform_int_distribution<int> any(0, 255);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const double dx = (x - w / 2.0) / (w * 0.45), dy = (y - h / 2.0) / (h * 0.45);
      const double r = std::sqrt(dx * dx + dy * dy);
      int a = r > 1.0 ? 0 : (r > 0.85 ? static_cast<int>((1.0 - r) / 0.15 * 255.0) : 255);
      if (a == 255 && (x / 7 + y / 5) % 3 == 0) a = any(rng);  // translucent patches
      uint8_t* px = &p[(static_cast<size_t>(y) * w + x) * 4];
      for (int c = 0; c < 3; ++c) px[c] = static_cast<uint8_t>((any(rng) * a + 127) / 255);
      px[3] = static_cast<uint8_t>(a);
    }
  return p;
}

// Exact bilinear sample with a constant 0 border (double precision).
double bilinear(const uint8_t* img, int h, int w, int channels, int c, double u, double v) {
  const double fx0 = std::floor(u), fy0 = std::floor(v);
  const int x0 = static_cast<int>(fx0), y0 = static_cast<int>(fy0);
  const double ax = u - fx0, ay = v - fy0;
  auto at = [&](int x, int y) -> double {
    return (x >= 0 && x < w && y >= 0 && y < h) ? img[(static_cast<size_t>(y) * w + x) * channels + c] : 0.0;
  };
  return (at(x0, y0) * (1 - ax) + at(x0 + 1, y0) * ax) * (1 - ay) + (at(x0, y0 + 1) * (1 - ax) + at(x0 + 1, y0 + 1) * ax) * ay;
}

// Whole-frame reference composite: warp (rounded to uint8, as cv2.warpPerspective), then
// round(bg * (255 - a) / 255) + premul, saturated (realtime.geometry.composite_roi).
void reference_composite(std::vector<uint8_t>& frame, int h, int w, const std::vector<uint8_t>& premul, int fh,
                         int fw, const Mat3& fg_from_frame) {
  const double* m = fg_from_frame.m;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const double wz = m[6] * x + m[7] * y + m[8];
      const double u = (m[0] * x + m[1] * y + m[2]) / wz, v = (m[3] * x + m[4] * y + m[5]) / wz;
      if (!(u > -1 && u < fw && v > -1 && v < fh)) continue;
      int s[4];
      for (int c = 0; c < 4; ++c) s[c] = static_cast<int>(std::lround(bilinear(premul.data(), fh, fw, 4, c, u, v)));
      uint8_t* px = &frame[(static_cast<size_t>(y) * w + x) * 3];
      for (int c = 0; c < 3; ++c) {
        const int o = static_cast<int>(std::lround(px[c] * (255.0 - s[3]) / 255.0)) + s[c];
        px[c] = static_cast<uint8_t>(o > 255 ? 255 : o);
      }
    }
}

void reference_preprocess(const std::vector<uint8_t>& frame, int h, int w, const Mat3& frame_from_crop, int size,
                          std::vector<float>& out) {
  const double* m = frame_from_crop.m;
  out.assign(static_cast<size_t>(3) * size * size, 0.f);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      const double u = m[0] * x + m[1] * y + m[2], v = m[3] * x + m[4] * y + m[5];
      for (int c = 0; c < 3; ++c) {  // RGB plane c <- BGR channel 2 - c
        const int g = static_cast<int>(std::lround(bilinear(frame.data(), h, w, 3, 2 - c, u, v)));
        out[(static_cast<size_t>(c) * size + y) * size + x] = (static_cast<float>(g) - kMean[c]) * kInvStd[c];
      }
    }
}

// Footprint box of the warped accessory corners (realtime.geometry.footprint_box).
void footprint(const Mat3& f, int fh, int fw, int h, int w, int box[4]) {
  double xs[4], ys[4];
  const double cx[4] = {0, fw - 1.0, fw - 1.0, 0}, cy[4] = {0, 0, fh - 1.0, fh - 1.0};
  for (int i = 0; i < 4; ++i) {
    const double z = f.m[6] * cx[i] + f.m[7] * cy[i] + f.m[8];
    xs[i] = (f.m[0] * cx[i] + f.m[1] * cy[i] + f.m[2]) / z;
    ys[i] = (f.m[3] * cx[i] + f.m[4] * cy[i] + f.m[5]) / z;
  }
  double x0 = xs[0], x1 = xs[0], y0 = ys[0], y1 = ys[0];
  for (int i = 1; i < 4; ++i) {
    x0 = std::fmin(x0, xs[i]);
    x1 = std::fmax(x1, xs[i]);
    y0 = std::fmin(y0, ys[i]);
    y1 = std::fmax(y1, ys[i]);
  }
  box[0] = std::max(static_cast<int>(std::floor(x0)) - 1, 0);
  box[1] = std::max(static_cast<int>(std::floor(y0)) - 1, 0);
  box[2] = std::min(static_cast<int>(std::ceil(x1)) + 2, w);
  box[3] = std::min(static_cast<int>(std::ceil(y1)) + 2, h);
}

template <typename T>
int max_abs_diff(const std::vector<T>& a, const std::vector<T>& b, double scale, long* count_nonzero) {
  double worst = 0;
  long n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])) * scale;
    if (d > 1e-3) ++n;
    worst = std::fmax(worst, d);
  }
  *count_nonzero = n;
  return static_cast<int>(std::ceil(worst - 1e-3));
}

struct Case {
  int h, w, fh, fw;
  double cx, cy, deg, s, px, py;
};

// Quads inside, across each edge and corner, tilted, rotated, scaled up and down.
const Case kCases[] = {
    {720, 1280, 80, 200, 640, 360, 0, 1.5, 0, 0},          {720, 1280, 80, 200, 30, 360, 12, 1.7, 4e-4, 0},
    {720, 1280, 120, 300, 1270, 700, -25, 1.0, 0, 6e-4},   {480, 640, 64, 160, 320, -10, 95, 2.3, -5e-4, 3e-4},
    {1080, 1920, 320, 800, 960, 540, 5, 1.0, 2e-4, -1e-4}, {1080, 1920, 90, 240, 5, 5, 180, 0.6, 0, 0},
    {97, 131, 33, 47, 60, 50, 33, 1.9, 1e-3, 1e-3},
};

int run_cpu() {
  std::mt19937 rng(1234);
  for (const Case& k : kCases) {
    const std::string name = std::to_string(k.w) + "x" + std::to_string(k.h) + " fg " + std::to_string(k.fw) + "x" +
                             std::to_string(k.fh) + " at (" + std::to_string(static_cast<int>(k.cx)) + "," +
                             std::to_string(static_cast<int>(k.cy)) + ")";
    const std::vector<uint8_t> frame = make_frame(k.h, k.w, rng);
    const std::vector<uint8_t> premul = make_premul(k.fh, k.fw, rng);
    const Warp warp = make_warp(k.cx, k.cy, k.deg, k.s, k.px, k.py, k.fw, k.fh);
    std::vector<uint8_t> ref = frame;
    reference_composite(ref, k.h, k.w, premul, k.fh, k.fw, warp.inv);
    int box[4];
    footprint(warp.fwd, k.fh, k.fw, k.h, k.w, box);
    for (int threads : {1, 2}) {
      std::vector<uint8_t> out = frame;
      const int rc = tryon_composite_u8c3(out.data(), k.h, k.w, k.w * 3, premul.data(), k.fh, k.fw, k.fw * 4,
                                          warp.fwd.m, box, threads);
      check(rc == TRYON_OK, "composite rc " + std::to_string(rc) + " " + tryon_native_last_error());
      long n = 0;
      const int d = max_abs_diff(out, ref, 1.0, &n);
      std::printf("composite  %-40s threads=%d max|diff|=%d (%ld px values differ)\n", name.c_str(), threads, d, n);
      check(d <= 1, "composite " + name + " differs from the reference by " + std::to_string(d));
      check(out != frame, "composite " + name + " changed nothing");
    }
    // The AVX2 rows (when the CPU runs them) are bit-identical to the scalar rows.
    {
      std::vector<uint8_t> simd = frame, scalar = frame;
      const int prev = tryon_native_set_simd(1);
      tryon_composite_u8c3(simd.data(), k.h, k.w, k.w * 3, premul.data(), k.fh, k.fw, k.fw * 4, warp.fwd.m, box, 1);
      tryon_native_set_simd(0);
      tryon_composite_u8c3(scalar.data(), k.h, k.w, k.w * 3, premul.data(), k.fh, k.fw, k.fw * 4, warp.fwd.m, box, 1);
      tryon_native_set_simd(prev);
      check(simd == scalar, "composite " + name + ": SIMD rows differ from the scalar rows");
    }
    // A box covering the whole frame gives the same frame as the tight footprint.
    std::vector<uint8_t> tight = frame, whole = frame;
    const int all[4] = {-5, -5, k.w + 5, k.h + 5};
    tryon_composite_u8c3(tight.data(), k.h, k.w, k.w * 3, premul.data(), k.fh, k.fw, k.fw * 4, warp.fwd.m, box, 1);
    tryon_composite_u8c3(whole.data(), k.h, k.w, k.w * 3, premul.data(), k.fh, k.fw, k.fw * 4, warp.fwd.m, all, 1);
    check(tight == whole, "composite " + name + ": whole-frame box differs from the footprint box");

    // Preprocess: crop a square around the quad's centre (partly outside near edges).
    for (int size : {64, 224, 257}) {
      const double side = 0.8 * k.fw * k.s;
      const double sc = size / side, deg = k.deg, c = (size - 1) / 2.0;
      // crop_from_frame = T(c) R(-deg) S(sc) T(-centre); frame_from_crop the inverse factors.
      const Mat3 crop_from_frame = mul(translate(c, c), mul(rotate_scale(-deg, sc), translate(-k.cx, -k.cy)));
      const Mat3 frame_from_crop = mul(translate(k.cx, k.cy), mul(rotate_scale(deg, 1.0 / sc), translate(-c, -c)));
      std::vector<float> ref_in, out_in(static_cast<size_t>(3) * size * size);
      reference_preprocess(frame, k.h, k.w, frame_from_crop, size, ref_in);
      for (int threads : {1, 2}) {
        const int rc = tryon_preprocess_crop_u8c3(frame.data(), k.h, k.w, k.w * 3, crop_from_frame.m, size, kMean,
                                                  kInvStd, out_in.data(), threads);
        check(rc == TRYON_OK, "preprocess rc " + std::to_string(rc) + " " + tryon_native_last_error());
        long n = 0;
        // Back to grey levels: |diff| * std * 255.
        double worst = 0;
        for (size_t i = 0; i < out_in.size(); ++i) {
          const int c = static_cast<int>(i / (static_cast<size_t>(size) * size));
          const double d = std::fabs(out_in[i] - ref_in[i]) / kInvStd[c];
          if (d > 1e-3) ++n;
          worst = std::fmax(worst, d);
        }
        std::printf("preprocess %-40s S=%d threads=%d max|diff|=%.3f grey (%ld values differ)\n", name.c_str(), size,
                    threads, worst, n);
        check(worst <= 1.0 + 1e-3, "preprocess " + name + " S=" + std::to_string(size) + " differs by " +
                                       std::to_string(worst) + " grey levels");
      }
      std::vector<float> scalar_in(out_in.size());
      const int prev = tryon_native_set_simd(0);
      tryon_preprocess_crop_u8c3(frame.data(), k.h, k.w, k.w * 3, crop_from_frame.m, size, kMean, kInvStd,
                                 scalar_in.data(), 1);
      tryon_native_set_simd(prev);
      check(std::memcmp(scalar_in.data(), out_in.data(), out_in.size() * sizeof(float)) == 0,
            "preprocess " + name + ": SIMD rows differ from the scalar rows");
    }
  }
  // Nearest resample through index tables: mirrored reductions (the last column read, the
  // 4-byte moves' edge cases: the last pixel of the last row, widths that are not a multiple
  // of the 4-pixel step), tables in no order with repeats, a padded output stride, 1 and 2
  // threads, vs a plain gather. The source vector holds exactly the image (a sanitizer build
  // sees a read past it).
  const int resample_sizes[][5] = {{540, 960, 229, 408, 0}, {97, 131, 40, 61, 0}, {5, 7, 5, 7, 0},
                                   {3, 4, 1, 1, 0},          {9, 13, 9, 13, 1},   {31, 17, 23, 11, 2}};
  for (const auto& sz : resample_sizes) {
    const int h = sz[0], w = sz[1], oh = sz[2], ow = sz[3];  // (h, w) -> (out h, out w)
    const std::vector<uint8_t> src = make_frame(h, w, rng);
    std::vector<int32_t> xs(ow), ys(oh);
    for (int x = 0; x < ow; ++x) xs[ow - 1 - x] = std::min(w - 1, static_cast<int>((x + 0.5) * w / ow));
    for (int y = 0; y < oh; ++y) ys[y] = std::min(h - 1, static_cast<int>((y + 0.5) * h / oh));
    if (ow == w) xs[0] = w - 1;  // the identity mirror reads the last column first
    if (sz[4] == 1) ys[oh - 1] = h - 1, ys[0] = h - 1;  // the last row, read first and last
    if (sz[4] == 2) {  // any table: random indices, the last row and column among them
      for (auto& v : xs) v = static_cast<int32_t>(rng() % w);
      for (auto& v : ys) v = static_cast<int32_t>(rng() % h);
      xs[ow / 2] = w - 1, xs[ow - 1] = w - 1, ys[oh / 3] = h - 1;
    }
    const int64_t dstride = 3 * static_cast<int64_t>(ow) + 5;
    for (int threads : {1, 2}) {
      std::vector<uint8_t> out(static_cast<size_t>(dstride) * oh, 77);
      const int rc = tryon_resample_nearest_u8c3(src.data(), h, w, 3 * w, out.data(), oh, ow, dstride, xs.data(),
                                                 ys.data(), threads);
      check(rc == TRYON_OK, std::string("resample rc ") + tryon_native_last_error());
      bool same = true, pad = true;
      for (int y = 0; y < oh; ++y) {
        for (int x = 0; x < ow; ++x)
          for (int c = 0; c < 3; ++c)
            same &= out[y * dstride + 3 * x + c] == src[(static_cast<int64_t>(ys[y]) * w + xs[x]) * 3 + c];
        for (int64_t b = 3 * ow; b < dstride; ++b) pad &= out[y * dstride + b] == 77;
      }
      std::printf("resample   %dx%d -> %dx%d threads=%d %s\n", w, h, ow, oh, threads, same && pad ? "equal" : "DIFFERS");
      check(same, "resample " + std::to_string(w) + "x" + std::to_string(h) + " differs from the gather");
      check(pad, "resample wrote past the end of an output row");
    }
  }
  {
    uint8_t img[12] = {0}, out[12] = {0};
    const int32_t bad_x[2] = {0, 2}, ok_y[2] = {0, 1};
    check(tryon_resample_nearest_u8c3(img, 2, 2, 6, out, 2, 2, 6, bad_x, ok_y, 1) == TRYON_E_INVALID &&
              std::strstr(tryon_native_last_error(), "src_x[1] = 2") != nullptr,
          "out-of-range resample index not refused");
  }
  // Area downscale vs the definition in double: each output pixel the mean of the source
  // pixels over its footprint [x * sx, (x + 1) * sx) x [y * sy, (y + 1) * sy) (clipped to the
  // image), each weighted by its overlap; integer and non-integer factors, 1-pixel outputs, a
  // padded source stride, 1 and 2 threads (the same bytes).
  const int area_sizes[][4] = {{1158, 1158, 128, 128}, {480, 640, 96, 128}, {97, 131, 40, 61},
                               {64, 64, 16, 16},      {7, 5, 1, 1},        {33, 9, 33, 4}};
  for (const auto& sz : area_sizes) {
    const int h = sz[0], w = sz[1], oh = sz[2], ow = sz[3];
    const int64_t sstride = 3 * static_cast<int64_t>(w) + 7, dstride = 3 * static_cast<int64_t>(ow) + 5;
    std::vector<uint8_t> src(static_cast<size_t>(sstride) * (h - 1) + 3 * w);
    for (auto& v : src) v = static_cast<uint8_t>(rng() & 255);
    const double sx = static_cast<double>(w) / ow, sy = static_cast<double>(h) / oh;
    auto overlap = [](double a0, double a1, int i) { return std::max(0.0, std::min(a1, i + 1.0) - std::max(a0, 1.0 * i)); };
    std::vector<uint8_t> outs[2];
    for (int threads : {1, 2}) {
      std::vector<uint8_t> out(static_cast<size_t>(dstride) * oh, 77);
      const int rc = tryon_resize_area_u8c3(src.data(), h, w, sstride, out.data(), oh, ow, dstride, threads);
      check(rc == TRYON_OK, std::string("resize_area rc ") + tryon_native_last_error());
      int worst = 0;
      bool pad = true;
      for (int y = 0; y < oh; ++y) {
        const double y0 = y * sy, y1 = std::min((y + 1) * sy, static_cast<double>(h));
        for (int x = 0; x < ow; ++x) {
          const double x0 = x * sx, x1 = std::min((x + 1) * sx, static_cast<double>(w));
          for (int c = 0; c < 3; ++c) {
            double sum = 0.0;
            for (int i = static_cast<int>(y0); i < h && i < y1; ++i)
              for (int j = static_cast<int>(x0); j < w && j < x1; ++j)
                sum += overlap(y0, y1, i) * overlap(x0, x1, j) * src[i * sstride + 3 * j + c];
            const double ref = sum / ((y1 - y0) * (x1 - x0));
            worst = std::max(worst, static_cast<int>(std::ceil(std::abs(out[y * dstride + 3 * x + c] - ref) - 0.5)));
          }
        }
        for (int64_t b = 3 * ow; b < dstride; ++b) pad &= out[y * dstride + b] == 77;
      }
      std::printf("area       %dx%d -> %dx%d threads=%d: max error over rounding %d\n", w, h, ow, oh, threads,
                  worst);
      check(worst == 0, "resize_area " + std::to_string(w) + "x" + std::to_string(h) + " off the definition");
      check(pad, "resize_area wrote past the end of an output row");
      outs[threads - 1] = out;
    }
    check(outs[0] == outs[1], "resize_area: 2 threads differ from 1");
  }
  {
    uint8_t img[12] = {0}, out[48] = {0};
    check(tryon_resize_area_u8c3(img, 2, 2, 6, out, 4, 4, 12, 1) == TRYON_E_INVALID &&
              std::strstr(tryon_native_last_error(), "shrinks only") != nullptr,
          "resize_area enlargement not refused");
  }
  // Bad input is refused with a message.
  uint8_t px[12] = {0};
  const double singular[9] = {1, 2, 0, 2, 4, 0, 0, 0, 1};
  const int box[4] = {0, 0, 2, 2};
  check(tryon_composite_u8c3(px, 2, 2, 6, px, 1, 1, 4, singular, box, 1) == TRYON_E_INVALID &&
            std::strstr(tryon_native_last_error(), "singular") != nullptr,
        "singular homography not refused");
  check(tryon_composite_u8c3(px, 2, 2, 2, px, 1, 1, 4, singular, box, 1) == TRYON_E_INVALID, "short stride not refused");
  check(tryon_preprocess_crop_u8c3(nullptr, 2, 2, 6, singular, 4, kMean, kInvStd, nullptr, 1) == TRYON_E_INVALID,
        "null frame not refused");
  std::printf("%s (CPU rows: %s; %s)\n", g_failures ? "FAILED" : "OK", tryon_native_cpu_path(),
              tryon_native_build_info());
  return g_failures ? 1 : 0;
}

#if defined(TRYON_TEST_CUDA)
#define CUDA_OK(call)                                                                          \
  do {                                                                                         \
    cudaError_t e_ = (call);                                                                   \
    if (e_ != cudaSuccess) {                                                                   \
      std::printf("FAIL: %s: %s\n", #call, cudaGetErrorString(e_));                           \
      return 1;                                                                                \
    }                                                                                          \
  } while (0)

int run_cuda() {
  if (!tryon_native_has_cuda() || tryon_cuda_device_count() < 1) {
    std::printf("SKIP: no CUDA device (%s)\n", tryon_native_build_info());
    return kSkip;
  }
  std::mt19937 rng(99);
  for (const Case& k : kCases) {
    const std::vector<uint8_t> frame = make_frame(k.h, k.w, rng);
    const std::vector<uint8_t> premul = make_premul(k.fh, k.fw, rng);
    const Warp warp = make_warp(k.cx, k.cy, k.deg, k.s, k.px, k.py, k.fw, k.fh);
    int box[4];
    footprint(warp.fwd, k.fh, k.fw, k.h, k.w, box);
    std::vector<uint8_t> cpu = frame, gpu(frame.size());
    tryon_composite_u8c3(cpu.data(), k.h, k.w, k.w * 3, premul.data(), k.fh, k.fw, k.fw * 4, warp.fwd.m, box, 1);
    uint8_t *d_frame = nullptr, *d_premul = nullptr;
    CUDA_OK(cudaMalloc(&d_frame, frame.size()));
    CUDA_OK(cudaMalloc(&d_premul, premul.size()));
    CUDA_OK(cudaMemcpy(d_frame, frame.data(), frame.size(), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(d_premul, premul.data(), premul.size(), cudaMemcpyHostToDevice));
    int rc = tryon_cuda_composite_u8c3(d_frame, k.h, k.w, k.w * 3, d_premul, k.fh, k.fw, k.fw * 4, warp.fwd.m, box,
                                       nullptr);
    check(rc == TRYON_OK, std::string("cuda composite: ") + tryon_native_last_error());
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(gpu.data(), d_frame, gpu.size(), cudaMemcpyDeviceToHost));
    long n = 0;
    const int d = max_abs_diff(gpu, cpu, 1.0, &n);
    std::printf("cuda composite  %dx%d: max|diff| vs CPU = %d (%ld values differ)\n", k.w, k.h, d, n);
    check(d <= 1, "cuda composite differs from the CPU kernel");

    const int size = 224;
    const double sc = size / (0.8 * k.fw * k.s), c = (size - 1) / 2.0;
    const Mat3 crop_from_frame = mul(translate(c, c), mul(rotate_scale(-k.deg, sc), translate(-k.cx, -k.cy)));
    std::vector<float> cpu_in(static_cast<size_t>(3) * size * size), gpu_in(cpu_in.size());
    tryon_preprocess_crop_u8c3(frame.data(), k.h, k.w, k.w * 3, crop_from_frame.m, size, kMean, kInvStd,
                               cpu_in.data(), 1);
    float* d_out = nullptr;
    CUDA_OK(cudaMemcpy(d_frame, frame.data(), frame.size(), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMalloc(&d_out, gpu_in.size() * sizeof(float)));
    rc = tryon_cuda_preprocess_crop_u8c3(d_frame, k.h, k.w, k.w * 3, crop_from_frame.m, size, kMean, kInvStd, d_out,
                                         nullptr);
    check(rc == TRYON_OK, std::string("cuda preprocess: ") + tryon_native_last_error());
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(gpu_in.data(), d_out, gpu_in.size() * sizeof(float), cudaMemcpyDeviceToHost));
    double worst = 0;
    for (size_t i = 0; i < gpu_in.size(); ++i) worst = std::fmax(worst, std::fabs(gpu_in[i] - cpu_in[i]) * 0.229 * 255);
    std::printf("cuda preprocess %dx%d: max|diff| vs CPU = %.3f grey\n", k.w, k.h, worst);
    check(worst <= 1.0 + 1e-3, "cuda preprocess differs from the CPU kernel");
    cudaFree(d_frame);
    cudaFree(d_premul);
    cudaFree(d_out);
  }
  std::printf("%s (%s)\n", g_failures ? "FAILED" : "OK", tryon_native_build_info());
  return g_failures ? 1 : 0;
}
#else
int run_cuda() {
  std::printf("SKIP: tryon_native built without CUDA (%s)\n", tryon_native_build_info());
  return kSkip;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "cpu";
  if (mode == "cpu") return run_cpu();
  if (mode == "cuda") return run_cuda();
  std::fprintf(stderr, "usage: %s cpu|cuda\n", argv[0]);
  return 2;
}
