// Weight-only linears for small batches (decoding), reading the stored weights directly instead of
// a dequantised fp32 copy: decode is bound by the bytes of weights read per token, so int8 reads a
// quarter of fp32's bytes, bf16 half, and int4 an eighth. Activations and accumulation stay fp32.
//   int8_linear: y = x @ (q * scale[:, None]).T            q (N, K) int8, scale (N,) one per row
//   bf16_linear: y = x @ w.T                               w (N, K) bf16
//   fp32_linear: y = x @ w.T                               w (N, K) float32 (decode rows only)
//   int4_linear: y = x @ ((q - zero) * scale).T per group  q (N, K/2) uint8, two codes per byte, low
//                nibble first; scale (N, K/G) float, zero (N, K/G) uint8
// Each OpenMP iteration computes four output rows: four independent accumulators hide the FMA
// latency a single chain would wait on, and each load of x serves four rows.
#include <torch/extension.h>

#include <algorithm>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LLMKIT_AVX2 1
// Streaming four rows at a time, the hardware prefetcher alone reached ~14 GB/s of this machine's
// ~23 GB/s; asking for the next block of rows while computing this one reached ~18 GB/s.
constexpr int64_t PREFETCH_ROWS = 4;
static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline __m256 load8(const uint16_t* p) {  // bf16 is the top half of an fp32
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
}
static inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
static inline __m256 load8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p)));
}
#endif

static inline float to_float(uint16_t bf16) {
  uint32_t bits = static_cast<uint32_t>(bf16) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}
static inline float to_float(int8_t q) { return static_cast<float>(q); }
static inline float to_float(float v) { return v; }

// Dot products of one input row xr with weight rows n0 .. n0 + rows - 1 (at most four; a short
// block repeats its last row) of a (N, K) matrix holding one stored value per weight: fp32, bf16
// or int8.
template <typename T>
static void dot_four_rows(const float* xr, const T* w, int64_t n0, int64_t rows, int64_t K, float a[4]) {
  const T* r[4];
  for (int i = 0; i < 4; ++i) r[i] = w + (n0 + std::min<int64_t>(i, rows - 1)) * K;
  for (int i = 0; i < 4; ++i) a[i] = 0.f;
  int64_t k = 0;
#ifdef LLMKIT_AVX2
  __m256 v[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (; k + 16 <= K; k += 16) {
    for (int i = 0; i < 4; ++i) _mm_prefetch((const char*)(r[i] + k + PREFETCH_ROWS * K), _MM_HINT_T0);
    const __m256 x0 = _mm256_loadu_ps(xr + k), x1 = _mm256_loadu_ps(xr + k + 8);
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_fmadd_ps(x0, load8(r[i] + k), v[i]);
      v[i] = _mm256_fmadd_ps(x1, load8(r[i] + k + 8), v[i]);
    }
  }
  for (; k + 8 <= K; k += 8) {
    const __m256 xv = _mm256_loadu_ps(xr + k);
    for (int i = 0; i < 4; ++i) v[i] = _mm256_fmadd_ps(xv, load8(r[i] + k), v[i]);
  }
  for (int i = 0; i < 4; ++i) a[i] = hsum(v[i]);
#endif
  for (; k < K; ++k)
    for (int i = 0; i < 4; ++i) a[i] += xr[k] * to_float(r[i][k]);
}

// Calls row_dot(m, n0, rows, out[4]) for every block of four output rows and every input row m.
template <typename RowDot>
static torch::Tensor four_rows(const torch::Tensor& x, int64_t N, RowDot row_dot) {
  const int64_t M = x.size(0);
  auto y = torch::empty({M, N}, x.options());
  float* yp = y.data_ptr<float>();
  const int64_t blocks = (N + 3) / 4;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t n0 = b * 4, rows = std::min<int64_t>(4, N - n0);
    for (int64_t m = 0; m < M; ++m) {
      float acc[4];
      row_dot(m, n0, rows, acc);
      for (int64_t i = 0; i < rows; ++i) yp[m * N + n0 + i] = acc[i];
    }
  }
  return y;
}

static void check_x(const torch::Tensor& x, int64_t K, const char* name) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && x.dim() == 2 && x.is_contiguous() && x.size(1) == K, name,
              ": x must be contiguous float32 (M, ", K, ")");
}

torch::Tensor int8_linear(torch::Tensor x, torch::Tensor q, torch::Tensor scale) {
  x = x.contiguous();
  const int64_t K = q.size(1), N = q.size(0);
  check_x(x, K, "int8_linear");
  TORCH_CHECK(q.dtype() == torch::kInt8 && q.is_contiguous() && scale.dtype() == torch::kFloat32 &&
                  scale.numel() == N, "int8_linear: q (N, K) int8 and scale (N,) float32");
  const float* xp = x.data_ptr<float>();
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sp = scale.data_ptr<float>();
  return four_rows(x, N, [&](int64_t m, int64_t n0, int64_t rows, float* acc) {
    dot_four_rows(xp + m * K, qp, n0, rows, K, acc);
    for (int i = 0; i < 4; ++i) acc[i] *= sp[n0 + std::min<int64_t>(i, rows - 1)];
  });
}

// y = x @ w.T for weights holding one stored value each and no scale (bf16, fp32).
template <typename T>
static torch::Tensor dense_linear(const torch::Tensor& x, const T* wp, int64_t N, int64_t K) {
  const float* xp = x.data_ptr<float>();
  return four_rows(x, N, [&](int64_t m, int64_t n0, int64_t rows, float* acc) {
    dot_four_rows(xp + m * K, wp, n0, rows, K, acc);
  });
}

torch::Tensor bf16_linear(torch::Tensor x, torch::Tensor w) {
  x = x.contiguous();
  const int64_t K = w.size(1), N = w.size(0);
  check_x(x, K, "bf16_linear");
  TORCH_CHECK(w.dtype() == torch::kBFloat16 && w.is_contiguous(), "bf16_linear: w must be contiguous bf16 (N, K)");
  return dense_linear(x, reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()), N, K);
}

// fp32 weights: the same streaming loop beats the BLAS GEMM at one to a few rows (decode), where
// the GEMM's packing and blocking are overhead and the weights are read once.
torch::Tensor fp32_linear(torch::Tensor x, torch::Tensor w) {
  x = x.contiguous();
  const int64_t K = w.size(1), N = w.size(0);
  check_x(x, K, "fp32_linear");
  TORCH_CHECK(w.dtype() == torch::kFloat32 && w.is_contiguous(), "fp32_linear: w must be contiguous float32 (N, K)");
  return dense_linear(x, w.data_ptr<float>(), N, K);
}

// sum_k x_k (q_k - z) s = s (sum_k x_k q_k - z sum_k x_k) per group: the zero point costs one
// multiply per group, given each group's sum of x (computed once per call).
torch::Tensor int4_linear(torch::Tensor x, torch::Tensor q, torch::Tensor scale, torch::Tensor zero, int64_t group) {
  x = x.contiguous();
  const int64_t N = q.size(0), K = q.size(1) * 2, G = K / group;
  check_x(x, K, "int4_linear");
  TORCH_CHECK(q.dtype() == torch::kUInt8 && q.is_contiguous() && group % 16 == 0 && K % group == 0,
              "int4_linear: q (N, K/2) uint8 with groups of a multiple of 16 inputs");
  TORCH_CHECK(scale.dtype() == torch::kFloat32 && scale.is_contiguous() && scale.size(0) == N && scale.size(1) == G &&
                  zero.dtype() == torch::kUInt8 && zero.is_contiguous(), "int4_linear: scale (N, G) float32, zero (N, G) uint8");
  const int64_t M = x.size(0);
  // x split into even and odd inputs (the low and high nibbles' partners), and each group's sum
  auto split = torch::empty({M, 2, K / 2}, x.options());
  auto sums = torch::empty({M, G}, x.options());
  const float* xp = x.data_ptr<float>();
  float* ep = split.data_ptr<float>();
  float* gp = sums.data_ptr<float>();
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t j = 0; j < K / 2; ++j) {
      ep[m * K + j] = xp[m * K + 2 * j];
      ep[m * K + K / 2 + j] = xp[m * K + 2 * j + 1];
    }
    for (int64_t g = 0; g < G; ++g) {
      float s = 0.f;
      for (int64_t k = g * group; k < (g + 1) * group; ++k) s += xp[m * K + k];
      gp[m * G + g] = s;
    }
  }
  const uint8_t* qp = q.data_ptr<uint8_t>();
  const float* sp = scale.data_ptr<float>();
  const uint8_t* zp = zero.data_ptr<uint8_t>();
  const int64_t half = group / 2;
  return four_rows(x, N, [&](int64_t m, int64_t n0, int64_t rows, float* acc) {
    int64_t n[4];
    for (int i = 0; i < 4; ++i) n[i] = n0 + std::min<int64_t>(i, rows - 1);
    const float* xe = ep + m * K;
    const float* xo = xe + K / 2;
    float zero_terms[4] = {0.f, 0.f, 0.f, 0.f};
#ifdef LLMKIT_AVX2
    // the scale is applied to each group's 8-lane partial dot, so each row needs one horizontal sum
    __m256 v[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m256i low4 = _mm256_set1_epi32(0x0F);
#else
    float a[4] = {0.f, 0.f, 0.f, 0.f};
#endif
    for (int64_t g = 0; g < G; ++g) {
      const int64_t j0 = g * half;
      for (int i = 0; i < 4; ++i) {
        const uint8_t* r = qp + n[i] * (K / 2) + j0;
        const float s = sp[n[i] * G + g];
        zero_terms[i] += s * static_cast<float>(zp[n[i] * G + g]) * gp[m * G + g];
#ifdef LLMKIT_AVX2
        _mm_prefetch((const char*)(r + PREFETCH_ROWS * (K / 2)), _MM_HINT_T0);
        __m256 dot = _mm256_setzero_ps();
        for (int64_t j = 0; j < half; j += 8) {  // half is a multiple of 8
          const __m256i codes = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(r + j)));
          dot = _mm256_fmadd_ps(_mm256_loadu_ps(xe + j0 + j), _mm256_cvtepi32_ps(_mm256_and_si256(codes, low4)), dot);
          dot = _mm256_fmadd_ps(_mm256_loadu_ps(xo + j0 + j), _mm256_cvtepi32_ps(_mm256_srli_epi32(codes, 4)), dot);
        }
        v[i] = _mm256_fmadd_ps(_mm256_set1_ps(s), dot, v[i]);
#else
        float dot = 0.f;
        for (int64_t j = 0; j < half; ++j) dot += xe[j0 + j] * (r[j] & 0x0F) + xo[j0 + j] * (r[j] >> 4);
        a[i] += s * dot;
#endif
      }
    }
#ifdef LLMKIT_AVX2
    float a[4];
    for (int i = 0; i < 4; ++i) a[i] = hsum(v[i]);
#endif
    for (int i = 0; i < 4; ++i) a[i] -= zero_terms[i];
    for (int i = 0; i < 4; ++i) acc[i] = a[i];
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("int8_linear", &int8_linear, "weight-only int8 linear, one scale per output row");
  m.def("bf16_linear", &bf16_linear, "bf16-weight linear with fp32 activations");
  m.def("fp32_linear", &fp32_linear, "fp32 linear for a few rows (decode)");
  m.def("int4_linear", &int4_linear, "weight-only group-wise int4 linear (asymmetric)");
}
