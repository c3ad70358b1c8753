// y = x . W^T for float32 activations and weights stored compactly but *exactly*: decode reads every weight
// once per token, so bytes per weight set its speed on a CPU (see steerlab/models/packed_linear.py).
//
//   bf16:  W as bfloat16 (checkpoints saved in bf16: the fp32 model holds exactly these values)
//   q8:    W[n, k] = q[n, k] * scale[n, k / 32] + offset[n, k / 32], q int8 (GGUF Q4_0/Q4_1/Q8_0 checkpoints
//          de-quantized to float: the same products and sums gguf's de-quantizer computes, so the same floats)
//
// Each thread takes tiles of 4 weight rows. For up to 4 activation rows (decode with few sequences) the
// weights are widened in registers and used at once; for more, each tile is widened once into a float32
// buffer in L1 and dotted with every activation row, so the widening costs the same at 5 rows as at 32.
// In registers, a q8 block's product is scale * sum(x * q) + offset * sum(x): the same value as summing
// x * (q * scale + offset), rounded in another order.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace {

constexpr int64_t kBlock = 32;  // q8 weights per scale/offset pair
constexpr int64_t kRows = 4;    // weight rows per tile
constexpr int64_t kAhead = 16;  // rows ahead to prefetch (past the end only prefetches: never faults)

inline void widen_bf16_row(const uint16_t* w, float* out, int64_t K) {
  for (int64_t k = 0; k < K; k += 16) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k));
    _mm512_storeu_ps(out + k, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)));
  }
}

inline void widen_q8_row(const int8_t* q, const float* scale, const float* offset, float* out, int64_t K) {
  for (int64_t k = 0; k < K; k += 16) {
    __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k))));
    // multiply, then add: two roundings, as the de-quantizer's (d * q) + m
    v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(scale[k / kBlock])), _mm512_set1_ps(offset[k / kBlock]));
    _mm512_storeu_ps(out + k, v);
  }
}

inline __m512 bf16_chunk(const uint16_t* p) {
  __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

inline __m512 q8_chunk(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

// Y[0 : MB, n : n+R] straight from bf16 rows, widened in registers.
template <int MB, int R>
inline void bf16_direct(const float* X, const uint16_t* W, float* Y, int64_t K, int64_t N, int64_t n) {
  __m512 acc[MB][R];
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < R; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    if (k % 32 == 0)
      for (int j = 0; j < R; ++j) _mm_prefetch(reinterpret_cast<const char*>(W + (n + j + kAhead) * K + k), _MM_HINT_T0);
    __m512 w[R];
    for (int j = 0; j < R; ++j) w[j] = bf16_chunk(W + (n + j) * K + k);
    for (int i = 0; i < MB; ++i) {
      __m512 x = _mm512_loadu_ps(X + i * K + k);
      for (int j = 0; j < R; ++j) acc[i][j] = _mm512_fmadd_ps(x, w[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < R; ++j) Y[i * N + n + j] = _mm512_reduce_add_ps(acc[i][j]);
}

// Y[0 : MB, n : n+R] straight from q8 rows: per lane, sum over blocks of scale * (x * q); the offsets'
// share is offset . block sums of x (XS, [MB, K / 32]).
template <int MB, int R>
inline void q8_direct(const float* X, const float* XS, const int8_t* Q, const float* S, const float* O, float* Y,
                      int64_t K, int64_t N, int64_t n) {
  const int64_t blocks = K / kBlock;
  __m512 acc[MB][R];
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < R; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    if (k % 64 == 0)  // rows a few tiles ahead: rows are short, so the hardware prefetcher starts too late
      for (int j = 0; j < R; ++j) _mm_prefetch(reinterpret_cast<const char*>(Q + (n + j + kAhead) * K + k), _MM_HINT_T0);
    __m512 q[R], d[R];
    for (int j = 0; j < R; ++j) {
      q[j] = q8_chunk(Q + (n + j) * K + k);
      d[j] = _mm512_set1_ps(S[(n + j) * blocks + k / kBlock]);
    }
    for (int i = 0; i < MB; ++i) {
      __m512 x = _mm512_loadu_ps(X + i * K + k);
      for (int j = 0; j < R; ++j) acc[i][j] = _mm512_fmadd_ps(_mm512_mul_ps(x, q[j]), d[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < R; ++j) {
      float offsets = 0.f;
      for (int64_t b = 0; b < blocks; ++b) offsets += O[(n + j) * blocks + b] * XS[i * blocks + b];
      Y[i * N + n + j] = _mm512_reduce_add_ps(acc[i][j]) + offsets;
    }
}

// Y [M <= 4, N], each thread over its tiles of 4 weight rows (then single rows at the end):
// tile(mb, r, n, Y) with mb = M and r = rows in the tile as compile-time constants.
template <typename Tile>
at::Tensor run_direct(const at::Tensor& x, int64_t N, Tile tile) {
  const int64_t M = x.size(0);
  auto y = at::empty({M, N}, x.options());
  float* Y = y.data_ptr<float>();
  at::parallel_for(0, (N + kRows - 1) / kRows, 8, [&](int64_t t0, int64_t t1) {
    const int64_t n1 = std::min(N, t1 * kRows);
    auto rows = [&](auto mb) {
      int64_t n = t0 * kRows;
      for (; n + 4 <= n1; n += 4) tile(mb, std::integral_constant<int, 4>{}, n, Y);
      for (; n < n1; ++n) tile(mb, std::integral_constant<int, 1>{}, n, Y);
    };
    switch (M) {
      case 4: rows(std::integral_constant<int, 4>{}); break;
      case 3: rows(std::integral_constant<int, 3>{}); break;
      case 2: rows(std::integral_constant<int, 2>{}); break;
      default: rows(std::integral_constant<int, 1>{}); break;
    }
  });
  return y;
}

// Y[m0 : m0+MB, n : n+R] = X[m0 : m0+MB] . B[0 : R]^T, B the widened rows.
template <int MB, int R>
inline void dot_tile(const float* X, const float* B, float* Y, int64_t K, int64_t N, int64_t m0, int64_t n) {
  __m512 acc[MB][R];
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < R; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    __m512 b[R];
    for (int j = 0; j < R; ++j) b[j] = _mm512_loadu_ps(B + j * K + k);
    for (int i = 0; i < MB; ++i) {
      __m512 x = _mm512_loadu_ps(X + (m0 + i) * K + k);
      for (int j = 0; j < R; ++j) acc[i][j] = _mm512_fmadd_ps(x, b[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < R; ++j) Y[(m0 + i) * N + n + j] = _mm512_reduce_add_ps(acc[i][j]);
}

template <int R>
void dot_rows(const float* X, const float* B, float* Y, int64_t M, int64_t K, int64_t N, int64_t n) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) dot_tile<4, R>(X, B, Y, K, N, m, n);
  switch (M - m) {
    case 3: dot_tile<3, R>(X, B, Y, K, N, m, n); break;
    case 2: dot_tile<2, R>(X, B, Y, K, N, m, n); break;
    case 1: dot_tile<1, R>(X, B, Y, K, N, m, n); break;
    default: break;
  }
}

template <typename Widen>
at::Tensor run(const at::Tensor& x, int64_t N, Widen widen) {
  const int64_t M = x.size(0), K = x.size(1);
  auto y = at::empty({M, N}, x.options());
  const float* X = x.data_ptr<float>();
  float* Y = y.data_ptr<float>();
  at::parallel_for(0, (N + kRows - 1) / kRows, 8, [&](int64_t t0, int64_t t1) {
    std::vector<float> buffer(kRows * K);
    for (int64_t n = t0 * kRows; n < std::min(N, t1 * kRows); n += kRows) {
      const int64_t rows = std::min(kRows, N - n);
      for (int64_t j = 0; j < rows; ++j) widen(n + j, buffer.data() + j * K);
      switch (rows) {
        case 4: dot_rows<4>(X, buffer.data(), Y, M, K, N, n); break;
        case 3: dot_rows<3>(X, buffer.data(), Y, M, K, N, n); break;
        case 2: dot_rows<2>(X, buffer.data(), Y, M, K, N, n); break;
        default: dot_rows<1>(X, buffer.data(), Y, M, K, N, n); break;
      }
    }
  });
  return y;
}

void check_x(const at::Tensor& x, int64_t K, int64_t multiple) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.device().is_cpu(), "x must be float32 [M, K] on the CPU");
  TORCH_CHECK(x.size(1) == K && K % multiple == 0, "x has ", x.size(1), " columns; the weights have ", K,
              " (a multiple of ", multiple, " is needed)");
}

at::Tensor linear_bf16(const at::Tensor& x_in, const at::Tensor& w_in) {
  TORCH_CHECK(w_in.dim() == 2 && w_in.scalar_type() == at::kBFloat16, "w must be bfloat16 [N, K]");
  check_x(x_in, w_in.size(1), 16);
  auto x = x_in.contiguous();
  auto w = w_in.contiguous();
  const int64_t K = w.size(1), N = w.size(0), M = x.size(0);
  const uint16_t* W = reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>());
  if (M <= 4) {
    const float* X = x.data_ptr<float>();
    return run_direct(x, N, [&](auto mb, auto r, int64_t n, float* Y) {
      bf16_direct<decltype(mb)::value, decltype(r)::value>(X, W, Y, K, N, n);
    });
  }
  return run(x, N, [&](int64_t n, float* out) { widen_bf16_row(W + n * K, out, K); });
}

at::Tensor linear_q8(const at::Tensor& x_in, const at::Tensor& q_in, const at::Tensor& scale_in,
                     const at::Tensor& offset_in) {
  TORCH_CHECK(q_in.dim() == 2 && q_in.scalar_type() == at::kChar, "q must be int8 [N, K]");
  const int64_t N = q_in.size(0), K = q_in.size(1);
  check_x(x_in, K, kBlock);
  for (const auto* t : {&scale_in, &offset_in})
    TORCH_CHECK(t->scalar_type() == at::kFloat && t->dim() == 2 && t->size(0) == N && t->size(1) == K / kBlock,
                "scale and offset must be float32 [N, K / 32]");
  auto x = x_in.contiguous();
  auto q = q_in.contiguous();
  auto scale = scale_in.contiguous();
  auto offset = offset_in.contiguous();
  const int8_t* Q = q.data_ptr<int8_t>();
  const float* S = scale.data_ptr<float>();
  const float* O = offset.data_ptr<float>();
  const int64_t blocks = K / kBlock, M = x.size(0);
  if (M <= 4) {
    const float* X = x.data_ptr<float>();
    std::vector<float> sums(M * blocks);  // [M, K / 32]: each block's sum of x, for the offsets
    for (int64_t i = 0; i < M; ++i)
      for (int64_t b = 0; b < blocks; ++b)
        sums[i * blocks + b] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(X + i * K + b * kBlock),
                                                                  _mm512_loadu_ps(X + i * K + b * kBlock + 16)));
    const float* XS = sums.data();
    return run_direct(x, N, [&](auto mb, auto r, int64_t n, float* Y) {
      q8_direct<decltype(mb)::value, decltype(r)::value>(X, XS, Q, S, O, Y, K, N, n);
    });
  }
  return run(x, N, [&](int64_t n, float* out) { widen_q8_row(Q + n * K, S + n * blocks, O + n * blocks, out, K); });
}

// The float32 weight [N, K] from its q8 form, rows in parallel (for long prefills, where MKL's blocked
// product on float32 weights beats the kernels above; ~3x faster than the same in separate torch ops).
at::Tensor unpack_q8(const at::Tensor& q_in, const at::Tensor& scale_in, const at::Tensor& offset_in) {
  TORCH_CHECK(q_in.dim() == 2 && q_in.scalar_type() == at::kChar && q_in.size(1) % kBlock == 0,
              "q must be int8 [N, K] with K a multiple of 32");
  auto q = q_in.contiguous();
  auto scale = scale_in.contiguous();
  auto offset = offset_in.contiguous();
  const int64_t N = q.size(0), K = q.size(1), blocks = K / kBlock;
  TORCH_CHECK(scale.sizes() == offset.sizes() && scale.size(0) == N && scale.size(1) == blocks &&
                  scale.scalar_type() == at::kFloat && offset.scalar_type() == at::kFloat,
              "scale and offset must be float32 [N, K / 32]");
  auto w = at::empty({N, K}, scale.options());
  const int8_t* Q = q.data_ptr<int8_t>();
  const float* S = scale.data_ptr<float>();
  const float* O = offset.data_ptr<float>();
  float* W = w.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) widen_q8_row(Q + n * K, S + n * blocks, O + n * blocks, W + n * K, K);
  });
  return w;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(steerlab_cpu, m) {
  m.def("linear_bf16(Tensor x, Tensor w) -> Tensor");
  m.def("linear_q8(Tensor x, Tensor q, Tensor scale, Tensor offset) -> Tensor");
  m.def("unpack_q8(Tensor q, Tensor scale, Tensor offset) -> Tensor");
}

TORCH_LIBRARY_IMPL(steerlab_cpu, CPU, m) {
  m.impl("linear_bf16", linear_bf16);
  m.impl("linear_q8", linear_q8);
  m.impl("unpack_q8", unpack_q8);
}
