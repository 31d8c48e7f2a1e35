// Elementwise ops over NCHW tensors, on vec4s of the flat element index (VEC vec4s per
// invocation; buffers are padded to 16 bytes, so the last vec4 may run past the tensor
// into padding that nobody reads):
// MODE 0 y = act(a)                                 (activation)
// MODE 1 y = act(a + b)                             (residual add)
// MODE 2 y = act(a * gate(s[n, c]))                 (channel attention scale; s is [N, C])
// MODE 3 y = act(a * gate(s[n, 0, h, w]))           (spatial attention scale; s is [N, 1, H, W])
// MODE 4 y = act(b * t + a * (1 - t)), t = gate(s)  (highway; s the transform-gate logits)
// MODE 5 y = act((1 + s) * b + a)                   (residual attention; s the mask)
// MODE 6 y = act(a * gate(s[n, c]) + b)             (channel-gated skip plus a branch)
// MODE 7 y = act(b * t + a * (1 - t)), t = gate(s[n, c]) (channel-gated blend: two paths'
//        softmax weights as a sigmoid of their logits' difference, Selective Kernel)
// MODE 8 y = act(a + s[n, c])                       (a bias per sample and channel)
// MODE 9 y = act(a + s[c, h, w])                    (a [1, C, H, W] map added to every
//        sample: a vision transformer's position embedding)
// MODE 10 y = act(a * b)                            (product of two maps)
// MODE 11 y = act(s - a * b)                        (a guided filter's covariance)
// MODE 12 y = act(a * b + s)                        (a guided filter's output)
// MODE 13 y = act(a / (b + eps))                    (a guided filter's coefficients)
// MODE 14 y = act(b * t + a * (1 - t)), t = gate(s[n, 0, h, w]) (a blend weighted per
//        pixel: PIDNet's pixel-attention-guided fusion)
// MODE 15 y = act(a * (1 - t) + b), t = gate(s)      (the two gated sums of PIDNet's
// MODE 16 y = act(a + b * t), t = gate(s)             light boundary-attention fusion)
// ACT is the output activation, GATE the activation applied to s (0 = none), so an
// attention block's sigmoid is applied in the same pass that reads the feature map.
#include "activation.wgsl"

override MODE: u32 = 0u;
override GATE: u32 = 0u;
// H * W is a multiple of 4 (or the mode reads no gate): each vec4 lies in one plane.
override HW4: bool = true;
const VEC: u32 = 4u;

struct ElementwiseParams {
    c: u32,
    hw: u32,
    len4: u32, // ceil(N * C * H * W / 4)
    total: u32, // ceil(len4 / VEC)
    eps: f32, // MODE 13's
}

@group(0) @binding(0) var<uniform> p: ElementwiseParams;
@group(0) @binding(1) var<storage, read> a: array<vec4<Act>>;
// The second operand (MODE 1, 4 to 7, 10 to 16).
@group(0) @binding(2) var<storage, read> b: array<vec4<Act>>;
// The gate, mask or added values (MODE 2 to 9, 14 to 16), the third operand (MODE 11, 12).
@group(0) @binding(3) var<storage, read> s_in: array<Act>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<Act>>;

fn gate4(v: vec4<f32>) -> vec4<f32> {
    return activation4(GATE, v);
}

// The gate values of MODE 2, 6, 7 and 8 (per plane) or MODE 3 and 14 (per pixel) for the
// four elements starting at flat index e0. When H * W is a multiple of 4 one plane holds
// all four.
fn gate_values(e0: u32) -> vec4<f32> {
    let per_pixel = MODE == 3u || MODE == 14u;
    var g: vec4<f32>;
    if (HW4) {
        let plane = e0 / p.hw;
        if (!per_pixel) {
            return gate4(vec4<f32>(f32(s_in[plane])));
        }
        let n = plane / p.c;
        let i = e0 % p.hw;
        let base = n * p.hw + i;
        return gate4(vec4<f32>(f32(s_in[base]), f32(s_in[base + 1u]), f32(s_in[base + 2u]), f32(s_in[base + 3u])));
    }
    for (var k = 0u; k < 4u; k++) {
        let e = e0 + k;
        let plane = e / p.hw;
        if (!per_pixel) {
            g[k] = f32(s_in[plane]);
        } else {
            g[k] = f32(s_in[(plane / p.c) * p.hw + e % p.hw]);
        }
    }
    return gate4(g);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let t = thread_index(inv, lid);
    if (t >= p.total) {
        return;
    }
    for (var k = 0u; k < VEC; k++) {
        let i = t * VEC + k;
        if (i < p.len4) {
            let av = vec4<f32>(a[i]);
            var v = vec4<f32>();
            switch MODE {
                case 0u: { v = av; }
                case 1u: { v = av + vec4<f32>(b[i]); }
                case 10u: { v = av * vec4<f32>(b[i]); }
                case 13u: { v = av / (vec4<f32>(b[i]) + p.eps); }
                case 11u, 12u: {
                    let e = 4u * i;
                    let sv = vec4<f32>(f32(s_in[e]), f32(s_in[e + 1u]), f32(s_in[e + 2u]), f32(s_in[e + 3u]));
                    let product = av * vec4<f32>(b[i]);
                    if (MODE == 11u) {
                        v = sv - product;
                    } else {
                        v = product + sv;
                    }
                }
                case 2u, 3u: { v = av * gate_values(4u * i); }
                case 6u: { v = av * gate_values(4u * i) + vec4<f32>(b[i]); }
                case 7u, 14u: {
                    let g = gate_values(4u * i);
                    v = vec4<f32>(b[i]) * g + av * (1.0 - g);
                }
                case 8u: { v = av + gate_values(4u * i); }
                case 9u: {
                    // Modulo one sample's size: the padding past the last vec4 stays in
                    // bounds too.
                    let chw = p.c * p.hw;
                    let e = 4u * i;
                    v = av + vec4<f32>(f32(s_in[e % chw]), f32(s_in[(e + 1u) % chw]), f32(s_in[(e + 2u) % chw]), f32(s_in[(e + 3u) % chw]));
                }
                case 4u, 15u, 16u: {
                    let e = 4u * i;
                    let g = gate4(vec4<f32>(f32(s_in[e]), f32(s_in[e + 1u]), f32(s_in[e + 2u]), f32(s_in[e + 3u])));
                    let bv = vec4<f32>(b[i]);
                    if (MODE == 4u) {
                        v = bv * g + av * (1.0 - g);
                    } else if (MODE == 15u) {
                        v = av * (1.0 - g) + bv;
                    } else {
                        v = av + bv * g;
                    }
                }
                default: {
                    let e = 4u * i;
                    let m = vec4<f32>(f32(s_in[e]), f32(s_in[e + 1u]), f32(s_in[e + 2u]), f32(s_in[e + 3u]));
                    v = (1.0 + m) * vec4<f32>(b[i]) + av;
                }
            }
            y[i] = vec4<Act>(activate4(v));
        }
    }
}
