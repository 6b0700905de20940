// 3x3, stride 1, SAME convolutions (NHWC, float32) through oneDNN, as XLA FFI handlers.
//
// XLA:CPU's own convolutions reach about two thirds of oneDNN's speed on VGG's layers
// (docs/benchmarks.md); this file lets the jitted nstjax step call oneDNN's convolution directly.
// The weights arrive already packed in the blocked layout oneDNN's kernel wants
// ("Acdb<B>a": [ceil(O/B), 3, 3, I, B]); nstjax packs them once per optimisation, outside the
// step, so no reorder happens per call. Primitives are cached per shape; executions are
// serialised.
//
// Handlers:
//   nstjax_onednn_conv3x3: x [..., H, W, I], packed weights [..., P], bias [..., O]
//       -> y [..., H, W, O] = (relu)(conv(x, w) + bias); leading dims of x are the batch,
//       leading dims of the weights and bias must be 1 (how jax.vmap's "expand_dims" passes
//       unbatched arguments). Attributes: block (B), relu (0 or 1).
//   nstjax_onednn_matmul: a [..., M, K] (or [..., K, M] with transpose_a), b [..., K, N] (or
//       [..., N, K] with transpose_b) -> c [..., M, N] = op(a) op(b), float32, through oneDNN's
//       sgemm, one batch element after another; a batch of 1 broadcasts. For the Gram matrices
//       F^T F and their gradients, which XLA:CPU's dots run at a third of sgemm's speed when
//       C = 64.
//   nstjax_onednn_conv3x3_bf16: the same in bfloat16 (bias float32), weights "AcdB16b<B>a2b".
// C functions (ctypes): nstjax_onednn_preferred_block(n, h, w, i, o, bf16) -> the B oneDNN picks
//   for that shape with weights in "any" layout, or 0 when its choice is not one of the layouts
//   above (then nstjax does not use oneDNN for that layer in that precision);
//   nstjax_onednn_version() -> major * 10000 + minor * 100 + patch.

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;

namespace {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// The packed weight layouts nstjax produces: float32 "Acdb<B>a" = [O/B, 3, 3, I, B]; bfloat16
// "AcdB16b<B>a2b" = [O/B, 3, 3, I/32, 16, B, 2] (AMX/VNNI pairs of input channels).
bool block_tag(int64_t block, bool bf16, tag* out) {
  if (bf16) {
    switch (block) {
      case 16: *out = tag::AcdB16b16a2b; return true;
      case 32: *out = tag::AcdB16b32a2b; return true;
      case 64: *out = tag::AcdB16b64a2b; return true;
      default: return false;
    }
  }
  switch (block) {
    case 8: *out = tag::Acdb8a; return true;
    case 16: *out = tag::Acdb16a; return true;
    case 32: *out = tag::Acdb32a; return true;
    case 64: *out = tag::Acdb64a; return true;
    default: return false;
  }
}

dnnl::convolution_forward::primitive_desc make_pd(int64_t n, int64_t h, int64_t w, int64_t i,
                                                  int64_t o, bool bf16, tag weights_tag,
                                                  bool relu) {
  const auto dt = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  memory::desc src({n, i, h, w}, dt, tag::nhwc);
  memory::desc dst({n, o, h, w}, dt, tag::nhwc);
  memory::desc wei({o, i, 3, 3}, dt, weights_tag);
  memory::desc bias({o}, memory::data_type::f32, tag::a);
  dnnl::primitive_attr attr;
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  return dnnl::convolution_forward::primitive_desc(
      cpu_engine(), dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src,
      wei, bias, dst, {1, 1}, {1, 1}, {1, 1}, attr);
}

struct Key {
  int64_t n, h, w, i, o, block, relu, bf16;
  bool operator==(const Key& k) const {
    return std::tie(n, h, w, i, o, block, relu, bf16) ==
           std::tie(k.n, k.h, k.w, k.i, k.o, k.block, k.relu, k.bf16);
  }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t seed = 0;
    for (int64_t v : {k.n, k.h, k.w, k.i, k.o, k.block, k.relu, k.bf16}) {
      seed ^= std::hash<int64_t>()(v) + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2);
    }
    return seed;
  }
};

// A convolution for one shape. Normally its weights are the packed ones as they come. When
// oneDNN has no fast kernel for the packed layout at this shape (it would fall back to its
// reference implementation, e.g. bf16 with a batch of 8 at 32x32x256), the primitive takes the
// layout oneDNN prefers instead and the packed weights are reordered into `weights` per call.
struct Conv {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward primitive;
  bool reorder = false;
  dnnl::reorder to_preferred;
  memory::desc packed_desc;
  memory weights;
};

bool is_reference(const dnnl::convolution_forward::primitive_desc& pd) {
  return std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
}

const Conv& cached_conv(const Key& key, tag weights_tag) {
  static std::mutex mutex;
  static std::unordered_map<Key, Conv, KeyHash> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end()) {
    const bool bf16 = key.bf16 != 0, relu = key.relu != 0;
    auto pd = make_pd(key.n, key.h, key.w, key.i, key.o, bf16, weights_tag, relu);
    Conv conv{pd, dnnl::convolution_forward(pd)};
    if (is_reference(pd)) {
      auto preferred = make_pd(key.n, key.h, key.w, key.i, key.o, bf16, tag::any, relu);
      if (!is_reference(preferred)) {
        conv.pd = preferred;
        conv.primitive = dnnl::convolution_forward(preferred);
        conv.reorder = true;
        conv.packed_desc = pd.weights_desc();
        conv.weights = memory(preferred.weights_desc(), cpu_engine());
        conv.to_preferred = dnnl::reorder(memory(conv.packed_desc, cpu_engine()), conv.weights);
      }
    }
    it = cache.emplace(key, std::move(conv)).first;
  }
  return it->second;
}

// One oneDNN call at a time: each already uses every core through OpenMP, and oneDNN's shared
// scratchpad is not meant for concurrent executions (XLA may run independent custom calls, or
// several CPU devices, side by side).
std::mutex& execution_mutex() {
  static std::mutex mutex;
  return mutex;
}

int64_t leading(ffi::AnyBuffer::Dimensions dims, size_t keep) {
  int64_t product = 1;
  for (size_t d = 0; d + keep < dims.size(); ++d) product *= dims[d];
  return product;
}

template <ffi::DataType T>
ffi::Error Conv3x3(ffi::Buffer<T> x, ffi::Buffer<T> weights, ffi::Buffer<ffi::F32> bias,
                   ffi::ResultBuffer<T> y, int64_t block, int64_t relu) {
  constexpr bool bf16 = T == ffi::DataType::BF16;
  auto xd = x.dimensions();
  auto yd = y->dimensions();
  if (xd.size() < 3 || yd.size() != xd.size()) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "conv3x3: x and y must be [..., H, W, C]");
  }
  const size_t r = xd.size();
  const int64_t n = leading(xd, 3), h = xd[r - 3], w = xd[r - 2], i = xd[r - 1];
  const int64_t o = yd[r - 1];
  if (yd[r - 3] != h || yd[r - 2] != w || leading(yd, 3) != n) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "conv3x3: y's shape does not match x's");
  }
  const int64_t padded = (o + block - 1) / block * block;
  const int64_t padded_in = bf16 ? (i + 31) / 32 * 32 : i;
  if (weights.element_count() != padded * 9 * padded_in || bias.element_count() != o) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "conv3x3: packed weights or bias of the wrong size (batched weights are "
                      "not supported)");
  }
  tag weights_tag;
  if (!block_tag(block, bf16, &weights_tag)) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "conv3x3: unsupported block");
  }
  try {
    const Conv& conv = cached_conv(Key{n, h, w, i, o, block, relu, bf16}, weights_tag);
    auto& engine = cpu_engine();
    memory src(conv.pd.src_desc(), engine, const_cast<void*>(static_cast<const void*>(x.typed_data())));
    void* packed = const_cast<void*>(static_cast<const void*>(weights.typed_data()));
    memory wei = conv.reorder ? conv.weights : memory(conv.pd.weights_desc(), engine, packed);
    memory b(conv.pd.bias_desc(), engine, const_cast<float*>(bias.typed_data()));
    memory dst(conv.pd.dst_desc(), engine, static_cast<void*>(y->typed_data()));
    std::lock_guard<std::mutex> lock(execution_mutex());
    dnnl::stream stream(engine);
    if (conv.reorder) {
      memory from(conv.packed_desc, engine, packed);
      dnnl::reorder(conv.to_preferred).execute(stream, from, wei);
    }
    conv.primitive.execute(stream, {{DNNL_ARG_SRC, src},
                                    {DNNL_ARG_WEIGHTS, wei},
                                    {DNNL_ARG_BIAS, b},
                                    {DNNL_ARG_DST, dst}});
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Matmul(ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> c,
                  int64_t transpose_a, int64_t transpose_b) {
  auto ad = a.dimensions();
  auto bd = b.dimensions();
  auto cd = c->dimensions();
  if (ad.size() < 2 || bd.size() < 2 || cd.size() < 2) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "matmul: operands must be matrices");
  }
  const int64_t m = cd[cd.size() - 2], n = cd[cd.size() - 1];
  const int64_t a0 = ad[ad.size() - 2], a1 = ad[ad.size() - 1];
  const int64_t b0 = bd[bd.size() - 2], b1 = bd[bd.size() - 1];
  const int64_t k = transpose_a ? a0 : a1;
  if ((transpose_a ? a1 : a0) != m || (transpose_b ? b1 : b0) != k || (transpose_b ? b0 : b1) != n) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "matmul: shapes do not match");
  }
  const int64_t batch = leading(cd, 2), batch_a = leading(ad, 2), batch_b = leading(bd, 2);
  if ((batch_a != 1 && batch_a != batch) || (batch_b != 1 && batch_b != batch)) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "matmul: batch sizes do not match");
  }
  std::lock_guard<std::mutex> lock(execution_mutex());
  for (int64_t i = 0; i < batch; ++i) {
    const float* pa = a.typed_data() + (batch_a == 1 ? 0 : i * a0 * a1);
    const float* pb = b.typed_data() + (batch_b == 1 ? 0 : i * b0 * b1);
    float* pc = c->typed_data() + i * m * n;
    dnnl_status_t status = dnnl_sgemm(transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', m, n, k,
                                      1.0f, pa, a1, pb, b1, 0.0f, pc, n);
    if (status != dnnl_success) {
      return ffi::Error(ffi::ErrorCode::kInternal, "oneDNN: sgemm failed");
    }
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(nstjax_onednn_matmul, Matmul,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("transpose_a")
                                  .Attr<int64_t>("transpose_b"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(nstjax_onednn_conv3x3_bf16, Conv3x3<ffi::DataType::BF16>,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::BF16>>()
                                  .Attr<int64_t>("block")
                                  .Attr<int64_t>("relu"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(nstjax_onednn_conv3x3, Conv3x3<ffi::DataType::F32>,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("block")
                                  .Attr<int64_t>("relu"));

extern "C" int64_t nstjax_onednn_preferred_block(int64_t n, int64_t h, int64_t w, int64_t i,
                                                 int64_t o, int64_t bf16) {
  try {
    auto pd = make_pd(n, h, w, i, o, bf16 != 0, tag::any, true);
    const auto dt = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
    for (int64_t block : {8, 16, 32, 64}) {
      tag t;
      if (block_tag(block, bf16 != 0, &t) && pd.weights_desc() == memory::desc({o, i, 3, 3}, dt, t)) {
        return block;
      }
    }
  } catch (const dnnl::error&) {
  }
  return 0;
}

extern "C" int64_t nstjax_onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return v->major * 10000 + v->minor * 100 + v->patch;
}
