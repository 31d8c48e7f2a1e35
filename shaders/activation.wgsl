// A fused activation, chosen when the pipeline is created (`#include "activation.wgsl"`).
#include "common.wgsl"

// The activation's code (see activation4 in common.wgsl), or AT_RUN: the activation in
// act_at_run, which the kernel sets from its uniform before it stores, so that one
// pipeline serves all of them (`at_run_where_cheap` in src/ops/conv.rs).
override ACT: u32 = 0u;
const AT_RUN: u32 = 255u;

// An activation read at run time, as parameters rather than a code (`ActivationAtRun`
// in src/ops/conv.rs): m * clamp(v + t, lo, hi) * scale, where m is v if times_v, else 1.
// That is none, ReLU, ReLU6, hardsigmoid and hardswish (the last two within an ulp of
// activation4's division by 6) without a branch: llvmpipe runs every case of a switch it
// cannot prove uniform, each under a mask.
struct ActAtRun {
    t: f32,
    lo: f32,
    hi: f32,
    scale: f32,
    times_v: u32,
}
var<private> act_at_run: ActAtRun;

fn activation4_at_run(a: ActAtRun, v: vec4<f32>) -> vec4<f32> {
    let m = select(vec4<f32>(1.0), v, a.times_v != 0u);
    let y = m * clamp(v + a.t, vec4<f32>(a.lo), vec4<f32>(a.hi)) * a.scale;
    return select(y, v, nan_lanes(v));
}

fn activate4(v: vec4<f32>) -> vec4<f32> {
    if (ACT == AT_RUN) {
        return activation4_at_run(act_at_run, v);
    }
    return activation4(ACT, v);
}

fn activate(v: f32) -> f32 {
    return activate4(vec4<f32>(v)).x;
}
