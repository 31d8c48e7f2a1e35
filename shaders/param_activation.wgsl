// An activation with parameters after a fused activation (`#include "param_activation.wgsl"`),
// set from `Option<ParamActivation>` in src/ops/conv.rs: its kind (param_formula.wgsl) and
// parameters as override constants, A and B f32 bit patterns.
#include "param_formula.wgsl"

override PACT: u32 = 0u;
override PACT_A: u32 = 0u;
override PACT_B: u32 = 0u;

fn param_activate4(v: vec4<f32>) -> vec4<f32> {
    return param_formula4(PACT, v, bitcast<f32>(PACT_A), bitcast<f32>(PACT_B));
}
