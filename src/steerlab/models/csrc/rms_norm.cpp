// RMSNorm of a few rows in one call: weight * (x / sqrt(mean(x^2) + eps)), float32, as transformers'
// Llama norm computes it. A decode step has 61 norms of one row per sequence; torch's composite rms_norm
// spends most of its ~25-70 us a call dispatching its five operations.
#include <ATen/ATen.h>
#include <torch/library.h>
#include <immintrin.h>

#include <cmath>

namespace {

at::Tensor rms_norm(const at::Tensor& x_in, const at::Tensor& weight_in, double eps) {
  TORCH_CHECK(x_in.scalar_type() == at::kFloat && weight_in.scalar_type() == at::kFloat && x_in.device().is_cpu(),
              "rms_norm: float32 CPU tensors");
  const int64_t d = weight_in.numel();
  TORCH_CHECK(x_in.dim() >= 1 && x_in.size(-1) == d && d % 16 == 0, "rms_norm: x's last dimension must be the weight's ",
              d, " (a multiple of 16)");
  auto x = x_in.contiguous();
  auto weight = weight_in.contiguous();
  auto y = at::empty_like(x);
  const int64_t rows = x.numel() / d;
  const float* X = x.data_ptr<float>();
  const float* W = weight.data_ptr<float>();
  float* Y = y.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = X + r * d;
    __m512 squares = _mm512_setzero_ps();
    for (int64_t k = 0; k < d; k += 16) {
      __m512 v = _mm512_loadu_ps(xr + k);
      squares = _mm512_fmadd_ps(v, v, squares);
    }
    const float scale = 1.0f / std::sqrt(_mm512_reduce_add_ps(squares) / static_cast<float>(d) + static_cast<float>(eps));
    const __m512 s = _mm512_set1_ps(scale);
    for (int64_t k = 0; k < d; k += 16)
      _mm512_storeu_ps(Y + r * d + k, _mm512_mul_ps(_mm512_loadu_ps(W + k), _mm512_mul_ps(_mm512_loadu_ps(xr + k), s)));
  }
  return y;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(steerlab_cpu, m) {
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor");
}

TORCH_LIBRARY_IMPL(steerlab_cpu, CPU, m) {
  m.impl("rms_norm", rms_norm);
}
