// Decode attention read straight from KV-cache blocks (PagedAttention, arXiv 2309.06180), CPU.
//
// One query token per sequence. For each (sequence, head) the keys are visited through the block
// table: slot = table[t / block_size] * block_size + t % block_size, so a sequence's blocks may
// lie anywhere in the pool and nothing is gathered into a temporary copy. Softmax is exact
// (scores for the visible keys, their max, exp and sum, then the weighted sum of values).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

torch::Tensor paged_decode_attention(torch::Tensor q, torch::Tensor k_cache, torch::Tensor v_cache,
                                     torch::Tensor block_tables, torch::Tensor context_lens,
                                     int64_t block_size, double scale, int64_t window) {
  TORCH_CHECK(q.dim() == 3 && k_cache.dim() == 3, "q (B, H, D) and caches (slots, Hkv, D) expected");
  TORCH_CHECK(q.scalar_type() == torch::kFloat && k_cache.scalar_type() == torch::kFloat, "float32 only");
  q = q.contiguous();
  block_tables = block_tables.to(torch::kLong).contiguous();
  context_lens = context_lens.to(torch::kLong).contiguous();
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(), "caches must be contiguous");
  const int64_t batch = q.size(0), heads = q.size(1), dim = q.size(2);
  const int64_t kv_heads = k_cache.size(1), group = heads / kv_heads;
  const int64_t max_blocks = block_tables.size(1);
  auto out = torch::empty_like(q);
  const float* qp = q.data_ptr<float>();
  const float* kp = k_cache.data_ptr<float>();
  const float* vp = v_cache.data_ptr<float>();
  const int64_t* tables = block_tables.data_ptr<int64_t>();
  const int64_t* lens = context_lens.data_ptr<int64_t>();
  float* op = out.data_ptr<float>();
  const float fscale = static_cast<float>(scale);

  at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    std::vector<float> acc(dim);
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t b = idx / heads, h = idx % heads, kh = h / group;
      const int64_t len = lens[b];
      const int64_t first = window > 0 ? std::max<int64_t>(0, len - window) : 0;
      const float* qv = qp + idx * dim;
      scores.resize(len - first);
      float best = -INFINITY;
      for (int64_t t = first; t < len; ++t) {
        const int64_t slot = tables[b * max_blocks + t / block_size] * block_size + t % block_size;
        const float* kv = kp + (slot * kv_heads + kh) * dim;
        float s = 0.f;
#pragma omp simd reduction(+ : s)
        for (int64_t d = 0; d < dim; ++d) s += qv[d] * kv[d];
        s *= fscale;
        scores[t - first] = s;
        best = std::max(best, s);
      }
      float total = 0.f;
      for (auto& s : scores) {
        s = std::exp(s - best);
        total += s;
      }
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t t = first; t < len; ++t) {
        const int64_t slot = tables[b * max_blocks + t / block_size] * block_size + t % block_size;
        const float* vv = vp + (slot * kv_heads + kh) * dim;
        const float w = scores[t - first];
#pragma omp simd
        for (int64_t d = 0; d < dim; ++d) acc[d] += w * vv[d];
      }
      float* o = op + idx * dim;
      const float inv = total > 0.f ? 1.f / total : 0.f;
      for (int64_t d = 0; d < dim; ++d) o[d] = acc[d] * inv;
    }
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("paged_decode_attention", &paged_decode_attention, "decode attention over paged KV blocks (CPU, fp32)");
}
