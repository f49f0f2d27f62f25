// edgepose: crop + resize + colour order + normalise + layout for a batch of face boxes.
//
// One thread = one output pixel of one face (blockIdx.z = face).  The arithmetic is copied
// from edgepose.preprocess and mirrored line by line in
// edgepose.jetson.gpu_preprocess.reference_crop_resize_normalize (tested on the CPU):
//
//   1. source point from the face's 2x3 affine (edgepose.preprocess.crop_affine):
//        sx = a00 * (x) + a01 * (y) + a02      (for unrotated boxes: origin + (dst+0.5)*side/S - 0.5)
//   2. bilinear sample of each frame channel; neighbours outside the frame read `fill`;
//      the sample is rounded to uint8 (the NumPy path crops to a uint8 image first);
//   3. colour: mode 0 keeps BGR, 1 swaps to RGB, 2 converts BGR -> GRAY with OpenCV's
//      fixed-point weights ((4899 R + 9617 G + 1868 B + 8192) >> 14); GRAY frames replicate;
//   4. y = (v * pixel_scale - mean[c]) / std[c], written NCHW (or NHWC).
//
// __fmul_rn / __fadd_rn stop nvcc from contracting a*b+c into an FMA, so the float results
// equal the float32 NumPy reference bit for bit and a rounding tie cannot flip a uint8 level.

extern "C" __global__ void crop_resize_normalize(
    const unsigned char* __restrict__ frame, int height, int width, int row_stride, int in_channels,
    const float* __restrict__ affines,  // num_faces x 6: a00 a01 a02 a10 a11 a12
    int num_faces, int out_size, int out_channels, int color_mode,
    float pixel_scale, const float* __restrict__ mean, const float* __restrict__ stdev,
    float fill, int nhwc, float* __restrict__ out)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int f = blockIdx.z;
    if (x >= out_size || y >= out_size || f >= num_faces) return;

    const float* A = affines + 6 * f;
    const float fx = (float)x, fy = (float)y;
    const float sx = __fadd_rn(__fadd_rn(__fmul_rn(A[0], fx), __fmul_rn(A[1], fy)), A[2]);
    const float sy = __fadd_rn(__fadd_rn(__fmul_rn(A[3], fx), __fmul_rn(A[4], fy)), A[5]);
    const float x0f = floorf(sx), y0f = floorf(sy);
    const float wx = __fadd_rn(sx, -x0f), wy = __fadd_rn(sy, -y0f);
    const int x0 = (int)x0f, y0 = (int)y0f;

    float px[3];
    for (int c = 0; c < in_channels && c < 3; ++c) {
        float v[4];
        for (int k = 0; k < 4; ++k) {
            const int xx = x0 + (k & 1), yy = y0 + (k >> 1);
            v[k] = (xx >= 0 && xx < width && yy >= 0 && yy < height)
                ? (float)frame[(size_t)yy * row_stride + (size_t)xx * in_channels + c] : fill;
        }
        const float top = __fadd_rn(v[0], __fmul_rn(wx, __fadd_rn(v[1], -v[0])));
        const float bot = __fadd_rn(v[2], __fmul_rn(wx, __fadd_rn(v[3], -v[2])));
        const float s = __fadd_rn(top, __fmul_rn(wy, __fadd_rn(bot, -top)));
        px[c] = fminf(fmaxf(floorf(__fadd_rn(s, 0.5f)), 0.0f), 255.0f);  // uint8 crop
    }

    const size_t plane = (size_t)out_size * out_size;
    for (int c = 0; c < out_channels; ++c) {
        float v;
        if (in_channels == 1) {
            v = px[0];
        } else if (color_mode == 2) {
            const int b = (int)px[0], g = (int)px[1], r = (int)px[2];
            v = (float)((4899 * r + 9617 * g + 1868 * b + 8192) >> 14);
        } else {
            v = px[color_mode == 1 ? 2 - c : c];
        }
        const float yv = __fdiv_rn(__fadd_rn(__fmul_rn(v, pixel_scale), -mean[c]), stdev[c]);
        const size_t idx = nhwc ? ((size_t)f * plane + (size_t)y * out_size + x) * out_channels + c
                                : ((size_t)f * out_channels + c) * plane + (size_t)y * out_size + x;
        out[idx] = yv;
    }
}
