// Elementwise ops over NCHW tensors, PX elements of one (n, c) plane per invocation:
// MODE 0 y = act(a)                                 (activation)
// MODE 1 y = act(a + b)                             (residual add)
// MODE 2 y = act(a * gate(s[n, c]))                 (channel attention scale; s is [N, C])
// MODE 3 y = act(a * gate(s[n, 0, h, w]))           (spatial attention scale; s is [N, 1, H, W])
// MODE 4 y = act(b * t + a * (1 - t)), t = gate(s)  (highway; s the transform-gate logits)
// MODE 5 y = act((1 + s) * b + a)                   (residual attention; s the mask)
// ACT is the output activation, GATE the activation applied to s (0 = none), so an
// attention block's sigmoid is applied in the same pass that reads the feature map.
#include "common.wgsl"

override MODE: u32 = 0u;
override GATE: u32 = 0u;
const PX: u32 = 16u;

struct ElementwiseParams {
    c: u32,
    hw: u32,
    strips: u32, // ceil(hw / PX)
    total: u32, // n * c * strips
}

@group(0) @binding(0) var<uniform> p: ElementwiseParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> s_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn gate(v: f32) -> f32 {
    return activation4(GATE, vec4<f32>(v)).x;
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let st = linear_workgroup(wg, nwg) * 64u + lid;
    if (st >= p.total) {
        return;
    }
    let plane = st / p.strips;
    let p0 = (st % p.strips) * PX;
    let n = plane / p.c;
    let base = plane * p.hw;
    var channel_gate = 0.0;
    if (MODE == 2u) {
        channel_gate = gate(s_in[plane]);
    }
    for (var k = 0u; k < PX; k++) {
        let i = p0 + k;
        if (i < p.hw) {
            let e = base + i;
            var v: f32;
            switch MODE {
                case 0u: { v = a[e]; }
                case 1u: { v = a[e] + b[e]; }
                case 2u: { v = a[e] * channel_gate; }
                case 3u: { v = a[e] * gate(s_in[n * p.hw + i]); }
                case 4u: {
                    let t = gate(s_in[e]);
                    v = b[e] * t + a[e] * (1.0 - t);
                }
                default: { v = (1.0 + s_in[e]) * b[e] + a[e]; }
            }
            y[e] = activate(v);
        }
    }
}
