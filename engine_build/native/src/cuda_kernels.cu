// CUDA kernels: the same per-pixel arithmetic as the CPU path (common.h), one thread per
// output pixel, on device pointers so frames stay on the GPU between preprocess,
// inference and composite. Compiled with --fmad=false (CMakeLists) so the float sample
// positions and interpolated values round exactly as on the CPU.
#include <cuda_runtime.h>

#include <string>

#include "common.h"

namespace tryon {
namespace {

constexpr int kBlock = 16;  // 16 x 16 threads per block

struct Norm {
  float mean[3];
  float inv_std[3];
};

__global__ void preprocess_kernel(const uint8_t* __restrict__ frame, int h, int w, int64_t stride, Affine a,
                                  int size, Norm n, float* __restrict__ out) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= size || y >= size) return;
  const double xd = x, yd = y;
  const double x_row = a.m[1] * yd + a.m[2], y_row = a.m[4] * yd + a.m[5];
  int cx, cy, bgr[3];
  float fx, fy;
  split_coord(x_row + a.m[0] * xd, w, &cx, &fx);
  split_coord(y_row + a.m[3] * xd, h, &cy, &fy);
  sample_bgr(frame, stride, w, h, cx, fx, cy, fy, bgr);
  const int64_t plane = static_cast<int64_t>(size) * size;
  float* o = out + static_cast<int64_t>(y) * size + x;  // BGR frame -> RGB planes
  o[0] = normalise(bgr[2], n.mean[0], n.inv_std[0]);
  o[plane] = normalise(bgr[1], n.mean[1], n.inv_std[1]);
  o[2 * plane] = normalise(bgr[0], n.mean[2], n.inv_std[2]);
}

__global__ void composite_kernel(uint8_t* __restrict__ frame, int64_t stride, const uint8_t* __restrict__ premul,
                                 int fg_w, int fg_h, int64_t premul_stride, Homography hm, int x0, int y0, int x1,
                                 int y1) {
  const int x = x0 + blockIdx.x * blockDim.x + threadIdx.x;
  const int y = y0 + blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= x1 || y >= y1) return;
  const double yd = y;
  const double x_row = hm.m[1] * yd + hm.m[2], y_row = hm.m[4] * yd + hm.m[5], w_row = hm.m[7] * yd + hm.m[8];
  int cx, cy;
  float fx, fy;
  homography_coords(hm, x_row, y_row, w_row, static_cast<double>(x), fg_w, fg_h, &cx, &fx, &cy, &fy);
  composite_pixel(frame + y * stride + x * 3, premul, fg_w, fg_h, premul_stride, cx, fx, cy, fy);
}

int cuda_fail(cudaError_t err, const char* what) {
  return fail(TRYON_E_CUDA, std::string(what) + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

unsigned blocks(int n) { return static_cast<unsigned>((n + kBlock - 1) / kBlock); }

}  // namespace
}  // namespace tryon

extern "C" int tryon_native_has_cuda(void) { return 1; }

extern "C" int tryon_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

extern "C" int tryon_cuda_preprocess_crop_u8c3(const uint8_t* frame, int height, int width, int64_t frame_stride,
                                               const double crop_from_frame[6], int size, const float mean_rgb[3],
                                               const float inv_std_rgb[3], float* out, void* stream) {
  tryon::Affine a;
  const int rc = tryon::check_preprocess_args(frame, height, width, frame_stride, crop_from_frame, size, mean_rgb,
                                              inv_std_rgb, out, &a);
  if (rc != TRYON_OK) return rc;
  tryon::Norm n;
  for (int c = 0; c < 3; ++c) {
    n.mean[c] = mean_rgb[c];
    n.inv_std[c] = inv_std_rgb[c];
  }
  const dim3 block(tryon::kBlock, tryon::kBlock);
  const dim3 grid(tryon::blocks(size), tryon::blocks(size));
  tryon::preprocess_kernel<<<grid, block, 0, static_cast<cudaStream_t>(stream)>>>(frame, height, width,
                                                                                  frame_stride, a, size, n, out);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? TRYON_OK : tryon::cuda_fail(err, "preprocess kernel launch");
}

extern "C" int tryon_cuda_composite_u8c3(uint8_t* frame, int height, int width, int64_t frame_stride,
                                         const uint8_t* premul, int fg_height, int fg_width, int64_t premul_stride,
                                         const double frame_from_fg[9], const int box[4], void* stream) {
  tryon::Homography h;
  int b[4];
  bool empty = false;
  const int rc = tryon::check_composite_args(frame, height, width, frame_stride, premul, fg_height, fg_width,
                                             premul_stride, frame_from_fg, box, &h, b, &empty);
  if (rc != TRYON_OK || empty) return rc;
  const dim3 block(tryon::kBlock, tryon::kBlock);
  const dim3 grid(tryon::blocks(b[2] - b[0]), tryon::blocks(b[3] - b[1]));
  tryon::composite_kernel<<<grid, block, 0, static_cast<cudaStream_t>(stream)>>>(
      frame, frame_stride, premul, fg_width, fg_height, premul_stride, h, b[0], b[1], b[2], b[3]);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? TRYON_OK : tryon::cuda_fail(err, "composite kernel launch");
}
