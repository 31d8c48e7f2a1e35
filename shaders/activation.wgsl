// A fused activation, chosen when the pipeline is created (`#include "activation.wgsl"`).
#include "common.wgsl"

// The activation's code (see activation4 in common.wgsl).
override ACT: u32 = 0u;

fn activate4(v: vec4<f32>) -> vec4<f32> {
    return activation4(ACT, v);
}

fn activate(v: f32) -> f32 {
    return activate4(vec4<f32>(v)).x;
}
