// Decode attention read straight from KV-cache blocks (PagedAttention, arXiv 2309.06180), CPU.
//
// One query token per sequence. Keys are visited through the block table:
// slot = table[t / block_size] * block_size + t % block_size, so a sequence's blocks may lie
// anywhere in the pool and nothing is gathered into a temporary copy. The cache is slot-major
// (slots, Hkv, D): one work item takes a sequence and a contiguous range of its KV heads and
// streams each slot's row once for all the query heads of that range, which keeps the reads
// sequential (the bandwidth limit is the whole cost). Softmax is exact: scores, their max, exp
// and sum, then the weighted sum of values. KV may be stored as float or bfloat16.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

// Widening loads: bf16 is the top half of an fp32, so a shift converts it; written with plain
// integer ops so that the compiler vectorises the loops (c10::BFloat16's conversion does not).
static inline float widen(float x) { return x; }
static inline float widen(uint16_t bits) {
  const uint32_t word = static_cast<uint32_t>(bits) << 16;
  float out;
  std::memcpy(&out, &word, sizeof(out));
  return out;
}

template <typename kv_t>
static void decode_item(const float* q, const kv_t* k_cache, const kv_t* v_cache, const int64_t* table,
                        int64_t len, int64_t first, int64_t block_size, int64_t kv_heads, int64_t group,
                        int64_t dim, int64_t kh_begin, int64_t kh_end, float scale, float* out) {
  const int64_t n = len - first;
  const int64_t heads = (kh_end - kh_begin) * group;  // query heads handled here
  const int64_t h0 = kh_begin * group;
  std::vector<float> scores(heads * n);
  std::vector<float> acc(heads * dim, 0.f);
  for (int64_t t = first; t < len; ++t) {
    const int64_t slot = table[t / block_size] * block_size + t % block_size;
    const kv_t* row = k_cache + slot * kv_heads * dim;
    for (int64_t h = 0; h < heads; ++h) {
      const float* qv = q + (h0 + h) * dim;
      const kv_t* kv = row + (kh_begin + h / group) * dim;
      float s = 0.f;
#pragma omp simd reduction(+ : s)
      for (int64_t d = 0; d < dim; ++d) s += qv[d] * widen(kv[d]);
      scores[h * n + (t - first)] = s * scale;
    }
  }
  std::vector<float> total(heads);
  for (int64_t h = 0; h < heads; ++h) {
    float* sh = scores.data() + h * n;
    const float best = *std::max_element(sh, sh + n);
    float sum = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      sh[i] = std::exp(sh[i] - best);
      sum += sh[i];
    }
    total[h] = sum;
  }
  for (int64_t t = first; t < len; ++t) {
    const int64_t slot = table[t / block_size] * block_size + t % block_size;
    const kv_t* row = v_cache + slot * kv_heads * dim;
    for (int64_t h = 0; h < heads; ++h) {
      const kv_t* vv = row + (kh_begin + h / group) * dim;
      const float w = scores[h * n + (t - first)];
      float* a = acc.data() + h * dim;
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) a[d] += w * widen(vv[d]);
    }
  }
  for (int64_t h = 0; h < heads; ++h) {
    const float inv = total[h] > 0.f ? 1.f / total[h] : 0.f;
    for (int64_t d = 0; d < dim; ++d) out[(h0 + h) * dim + d] = acc[h * dim + d] * inv;
  }
}

template <typename kv_t>
static void decode_all(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                       const torch::Tensor& tables, const torch::Tensor& lens, int64_t block_size, float scale,
                       int64_t window, torch::Tensor& out) {
  const int64_t batch = q.size(0), heads = q.size(1), dim = q.size(2);
  const int64_t kv_heads = k_cache.size(1), group = heads / kv_heads, max_blocks = tables.size(1);
  // Enough work items for every thread even at batch 1: split a sequence's KV heads into chunks.
  const int64_t want = 2 * at::get_num_threads();
  const int64_t chunks = std::min<int64_t>(kv_heads, std::max<int64_t>(1, (want + batch - 1) / batch));
  const float* qp = q.data_ptr<float>();
  const kv_t* kp = static_cast<const kv_t*>(k_cache.data_ptr());
  const kv_t* vp = static_cast<const kv_t*>(v_cache.data_ptr());
  const int64_t* tp = tables.data_ptr<int64_t>();
  const int64_t* lp = lens.data_ptr<int64_t>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, batch * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / chunks, c = item % chunks;
      const int64_t kh_begin = kv_heads * c / chunks, kh_end = kv_heads * (c + 1) / chunks;
      const int64_t len = lp[b];
      const int64_t first = window > 0 ? std::max<int64_t>(0, len - window) : 0;
      decode_item<kv_t>(qp + b * heads * dim, kp, vp, tp + b * max_blocks, len, first, block_size, kv_heads,
                        group, dim, kh_begin, kh_end, scale, op + b * heads * dim);
    }
  });
}

torch::Tensor paged_decode_attention(torch::Tensor q, torch::Tensor k_cache, torch::Tensor v_cache,
                                     torch::Tensor block_tables, torch::Tensor context_lens,
                                     int64_t block_size, double scale, int64_t window) {
  TORCH_CHECK(q.dim() == 3 && k_cache.dim() == 3, "q (B, H, D) and caches (slots, Hkv, D) expected");
  TORCH_CHECK(q.scalar_type() == torch::kFloat, "float32 queries only");
  TORCH_CHECK(k_cache.scalar_type() == v_cache.scalar_type(), "k and v caches must share a dtype");
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(), "caches must be contiguous");
  q = q.contiguous();
  auto tables = block_tables.to(torch::kLong).contiguous();
  auto lens = context_lens.to(torch::kLong).contiguous();
  auto out = torch::empty_like(q);
  const float fscale = static_cast<float>(scale);
  if (k_cache.scalar_type() == torch::kFloat) {
    decode_all<float>(q, k_cache, v_cache, tables, lens, block_size, fscale, window, out);
  } else if (k_cache.scalar_type() == torch::kBFloat16) {
    decode_all<uint16_t>(q, k_cache, v_cache, tables, lens, block_size, fscale, window, out);
  } else {
    TORCH_CHECK(false, "KV cache dtype must be float32 or bfloat16");
  }
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("paged_decode_attention", &paged_decode_attention, "decode attention over paged KV blocks (CPU)");
}
