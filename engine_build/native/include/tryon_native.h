/*
 * tryon_native: the per-frame pixel work of the live loop as a plain C ABI.
 *
 * Two kernels, each on the CPU (always built) and in CUDA (built when CMake finds a
 * CUDA toolkit), a CPU-only nearest-neighbour resample for the preview (3., below) and a
 * CPU-only area downscale for the face detectors' input (after it, below):
 *
 *   1. crop + resize + normalise: a BGR uint8 frame, the 2x3 affine crop_from_frame
 *      (realtime.geometry.crop_from_box) and a size S -> (3, S, S) float32 RGB,
 *      ImageNet-normalised, i.e. the network's NCHW input without the batch axis.
 *      Reference: realtime.preprocess.background_input(cv2.cvtColor(
 *      realtime.geometry.warp_crop(frame, M, S), cv2.COLOR_BGR2RGB)).
 *   2. perspective warp + alpha composite, in place on a BGR uint8 frame, of a
 *      premultiplied BGRA accessory (realtime.geometry.PreparedAccessory.premul) under
 *      the 3x3 homography frame_from_fg, restricted to a box of the frame.
 *      Reference: realtime.geometry.composite_roi / composite_reference.
 *
 * Both sample bilinearly by inverse mapping with a constant 0 border (OpenCV's
 * INTER_LINEAR + BORDER_CONSTANT): sample positions in double, interpolation in float32
 * (as OpenCV 5's warp kernels; 1/32-pixel fixed-point positions as in OpenCV 4's remap
 * tables move samples enough to differ by up to 5 grey levels on sharp edges), and the
 * sampled value rounded to uint8 as cv2.warpAffine / cv2.warpPerspective do, so they
 * agree with the OpenCV references within one grey level.
 *
 * Conventions: images are row-major, interleaved channels, with a row stride in BYTES;
 * pixel centres at integer coordinates; matrices are row-major doubles named
 * <to>_from_<from>. Every function returns TRYON_OK (0) or a negative TRYON_E_* code;
 * tryon_native_last_error() then describes the failure (thread-local).
 *
 * CUDA functions take DEVICE pointers (e.g. torch.Tensor.data_ptr() of CUDA tensors),
 * so a frame can stay on the device between preprocess, inference and composite; the
 * matrices, box and normalisation constants are host values passed by value. `stream`
 * is a cudaStream_t (torch.cuda.current_stream().cuda_stream), NULL for the legacy
 * default stream. The kernels are enqueued asynchronously: synchronise the stream
 * before reading the results on the host.
 */
#ifndef TRYON_NATIVE_H
#define TRYON_NATIVE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define TRYON_API __declspec(dllexport)
#else
#define TRYON_API __attribute__((visibility("default")))
#endif

/* Bumped whenever a signature below changes; realtime/live/native.py refuses other versions. */
#define TRYON_NATIVE_ABI_VERSION 1

#define TRYON_OK 0
#define TRYON_E_INVALID (-1)    /* bad argument (null pointer, size, stride, singular matrix) */
#define TRYON_E_NO_CUDA (-2)    /* built without CUDA, or no usable CUDA device */
#define TRYON_E_CUDA (-3)       /* a CUDA runtime call failed */

TRYON_API int tryon_native_abi_version(void);
/* Human-readable build description: ABI, compiler, CUDA architectures. */
TRYON_API const char* tryon_native_build_info(void);
/* Message for the last error on this thread ("" if none). */
TRYON_API const char* tryon_native_last_error(void);
/* Hardware threads of this machine (an upper bound worth passing as num_threads). */
TRYON_API int tryon_native_max_threads(void);
/* The CPU kernels run AVX2 rows when the CPU has AVX2 (bit-identical to the scalar
 * rows); tryon_native_set_simd(0) forces the scalar rows. Returns the previous setting. */
TRYON_API int tryon_native_set_simd(int enable);
/* "avx2" or "scalar": the rows the CPU kernels run now. */
TRYON_API const char* tryon_native_cpu_path(void);

/* ---- CPU ----------------------------------------------------------------------------
 * frame: (height, width, 3) BGR uint8 with row stride frame_stride bytes.
 * crop_from_frame: 2x3 affine (row-major) mapping frame pixels into the S x S crop.
 * mean_rgb / inv_std_rgb: per-channel constants in grey levels, RGB order
 *   (realtime.preprocess: (x - mean) * inv_std, computed in float32).
 * out: (3, size, size) float32 planes R, G, B (contiguous).
 * num_threads: <= 1 runs on the calling thread; n > 1 splits the rows into n bands, n - 1
 *   of them on threads started for this call (no pool, so nothing spins between frames). */
TRYON_API int tryon_preprocess_crop_u8c3(const uint8_t* frame, int height, int width, int64_t frame_stride,
                                         const double crop_from_frame[6], int size, const float mean_rgb[3],
                                         const float inv_std_rgb[3], float* out, int num_threads);

/* frame: (height, width, 3) uint8, modified in place inside box only.
 * premul: (fg_height, fg_width, 4) uint8, colour premultiplied by alpha (channel 3),
 *   colour channels in the frame's order.
 * frame_from_fg: 3x3 homography accessory pixels -> frame pixels.
 * box: x0, y0, x1, y1 (exclusive ends) of the frame region to process, e.g.
 *   realtime.geometry.footprint_box; clipped to the frame. Pixels whose inverse-mapped
 *   sample falls entirely outside the accessory are left untouched, so any box that
 *   covers the footprint gives the same frame. */
TRYON_API int tryon_composite_u8c3(uint8_t* frame, int height, int width, int64_t frame_stride,
                                   const uint8_t* premul, int fg_height, int fg_width, int64_t premul_stride,
                                   const double frame_from_fg[9], const int box[4], int num_threads);

/* Nearest-neighbour resample through index tables (the live window's reduced preview):
 * dst(y, x) = src(src_y[y], src_x[x]) for (height, width, 3) uint8 pixels, so any
 * reduction and a mirror (a descending src_x) are one pass that reads only the rows and
 * pixels it keeps. src_x: out_width column indices in [0, width); src_y: out_height row
 * indices in [0, height) (checked). dst must not overlap src. Added after ABI 1 without
 * changing it: a loader treats the symbol as optional. */
TRYON_API int tryon_resample_nearest_u8c3(const uint8_t* src, int height, int width, int64_t src_stride,
                                          uint8_t* dst, int out_height, int out_width, int64_t dst_stride,
                                          const int32_t* src_x, const int32_t* src_y, int num_threads);

/* Area (box-filter) downscale, OpenCV's cv2.resize(..., INTER_AREA) for a shrink: each dst
 * pixel is the mean of the src pixels its footprint [x * sx, (x + 1) * sx) x [y * sy, (y + 1) * sy)
 * overlaps (sx = width / out_width, sy = height / out_height), partial pixels weighted by
 * their overlap, in float32, rounded to nearest; within one grey level of OpenCV (the sums
 * run in another order). Vertical pass first, so every src byte is read once. Shrinks only
 * (out_width <= width, out_height <= height). dst must not overlap src. Added after ABI 1
 * without changing it: a loader treats the symbol as optional. */
TRYON_API int tryon_resize_area_u8c3(const uint8_t* src, int height, int width, int64_t src_stride,
                                     uint8_t* dst, int out_height, int out_width, int64_t dst_stride,
                                     int num_threads);

/* ---- CUDA (device pointers) ------------------------------------------------------------ */
/* 1 when this library was compiled with the CUDA kernels, else 0. */
TRYON_API int tryon_native_has_cuda(void);
/* Number of usable CUDA devices (0 when built without CUDA or without a driver). */
TRYON_API int tryon_cuda_device_count(void);
/* Same contracts as the CPU functions; frame, premul and out are device pointers. */
TRYON_API int tryon_cuda_preprocess_crop_u8c3(const uint8_t* frame, int height, int width, int64_t frame_stride,
                                              const double crop_from_frame[6], int size, const float mean_rgb[3],
                                              const float inv_std_rgb[3], float* out, void* stream);
TRYON_API int tryon_cuda_composite_u8c3(uint8_t* frame, int height, int width, int64_t frame_stride,
                                        const uint8_t* premul, int fg_height, int fg_width, int64_t premul_stride,
                                        const double frame_from_fg[9], const int box[4], void* stream);

#ifdef __cplusplus
}
#endif

#endif /* TRYON_NATIVE_H */
