// Weight-only int8 linear for small batches (decoding): y = x @ (q * scale[:, None]).T, reading the
// int8 weights directly (a quarter of fp32's bytes), one output row per OpenMP iteration.
#include <torch/extension.h>

#include <algorithm>

torch::Tensor int8_linear(torch::Tensor x, torch::Tensor q, torch::Tensor scale) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && q.dtype() == torch::kInt8 && scale.dtype() == torch::kFloat32,
              "int8_linear: x float32, q int8, scale float32");
  x = x.contiguous();
  const int64_t M = x.size(0), K = x.size(1), N = q.size(0);
  TORCH_CHECK(q.size(1) == K && q.is_contiguous() && scale.numel() == N, "int8_linear: shapes do not match");
  auto y = torch::empty({M, N}, x.options());
  const float* xp = x.data_ptr<float>();
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sp = scale.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  // Four output rows per iteration: four independent accumulators hide the FMA latency that a single
  // reduction chain would wait on, and each load of x serves four rows.
  const int64_t blocks = (N + 3) / 4;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t n0 = b * 4, rows = std::min<int64_t>(4, N - n0);
    const int8_t* r0 = qp + n0 * K;
    const int8_t* r1 = qp + (n0 + (rows > 1 ? 1 : 0)) * K;
    const int8_t* r2 = qp + (n0 + (rows > 2 ? 2 : 0)) * K;
    const int8_t* r3 = qp + (n0 + (rows > 3 ? 3 : 0)) * K;
    for (int64_t m = 0; m < M; ++m) {
      const float* xr = xp + m * K;
      float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
      for (int64_t k = 0; k < K; ++k) {
        const float xv = xr[k];
        a0 += xv * static_cast<float>(r0[k]);
        a1 += xv * static_cast<float>(r1[k]);
        a2 += xv * static_cast<float>(r2[k]);
        a3 += xv * static_cast<float>(r3[k]);
      }
      const float acc[4] = {a0, a1, a2, a3};
      for (int64_t i = 0; i < rows; ++i) yp[m * N + n0 + i] = acc[i] * sp[n0 + i];
    }
  }
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("int8_linear", &int8_linear, "weight-only int8 linear"); }
