// Normalise with per-segment statistics and apply the affine transform:
// y = (x - mean[seg]) / sqrt(var[seg] + eps) * gamma[aff] + beta[aff].
// MODE 0 batch norm (seg = c, aff = c), 1 group norm (seg = n * G + c / (C / G), aff = c),
// 2 layer norm over the trailing seg_len elements of each row (seg = flat / seg_len,
// aff = flat % seg_len: an elementwise affine over normalized_shape), 3 instance norm
// (seg = n * C + c, aff = c), 4 AdaIN (seg = n * C + c; gamma and beta are the style's
// standard deviation sqrt(var + eps) and mean, read from `style` at seg).
// Each invocation handles PX elements of one (n, c) plane, decoding indices once.
// ACT (activation.wgsl) is applied last, so BN + ReLU of a pre-activation block is one pass.
#include "activation.wgsl"

override MODE: u32 = 0u;
const PX: u32 = 16u;

struct ApplyParams {
    planes: u32, // N * C
    c: u32,
    hw: u32,
    cpg: u32, // channels per group (group norm)
    groups: u32,
    strips: u32, // ceil(hw / PX)
    total: u32, // planes * strips
    eps: f32,
    seg_len: u32, // elements per segment (layer norm)
}

@group(0) @binding(0) var<uniform> p: ApplyParams;
@group(0) @binding(1) var<storage, read> x: array<Act>;
// Statistics, gamma and beta are f32 buffers (alloc_f32, running statistics, layer
// parameters), kept f32.
@group(0) @binding(2) var<storage, read> stats: array<f32>;
// The affine scale (for AdaIN: the style's statistics [mean, var] per segment).
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
// The affine shift (not read by AdaIN).
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<Act>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    let s = thread_index(inv, lid);
    if (s >= p.total) {
        return;
    }
    let plane = s / p.strips;
    let p0 = (s % p.strips) * PX;
    let c = plane % p.c;
    let n = plane / p.c;
    var seg: u32;
    switch MODE {
        case 0u: { seg = c; }
        case 1u: { seg = n * p.groups + c / p.cpg; }
        case 2u: { seg = (plane * p.hw + p0) / p.seg_len; }
        default: { seg = plane; }
    }
    var mean = stats[2u * seg];
    var invstd = inverseSqrt(stats[2u * seg + 1u] + p.eps);
    var g = 0.0;
    var b = 0.0;
    if (MODE == 4u) {
        g = sqrt(gamma[2u * seg + 1u] + p.eps);
        b = gamma[2u * seg];
    } else if (MODE != 2u) {
        g = gamma[c];
        b = beta[c];
    }
    let base = plane * p.hw;
    for (var j = 0u; j < PX; j++) {
        let i = p0 + j;
        if (i < p.hw) {
            if (MODE == 2u) {
                // A strip may cross into the next segment when seg_len < H * W.
                let flat = base + i;
                let s2 = flat / p.seg_len;
                if (s2 != seg) {
                    seg = s2;
                    mean = stats[2u * seg];
                    invstd = inverseSqrt(stats[2u * seg + 1u] + p.eps);
                }
                let a = flat % p.seg_len;
                g = gamma[a];
                b = beta[a];
            }
            y[base + i] = Act(activate((f32(x[base + i]) - mean) * invstd * g + b));
        }
    }
}
