// An activation with parameters after a fused activation (`#include "param_activation.wgsl"`),
// set from `Option<ParamActivation>` in src/ops/conv.rs: its kind (param_formula.wgsl) an
// override constant, its parameters read at run time.
#include "param_formula.wgsl"

override PACT: u32 = 0u;

// The parameters of the store's activations with parameters: PACT's, and THEN_PACT's of
// epilogue.wgsl. Each kernel copies them from its uniform's `pact_a`, `pact_b`, `then_a`
// and `then_b` before it stores (`store_args = StoreArgs(...)` at the top of `main`), so
// that layers that differ only in them (each PReLU's learned slope) share one pipeline.
struct StoreArgs {
    pact_a: f32,
    pact_b: f32,
    then_a: f32,
    then_b: f32,
}
var<private> store_args: StoreArgs;

fn param_activate4(v: vec4<f32>) -> vec4<f32> {
    return param_formula4(PACT, v, store_args.pact_a, store_args.pact_b);
}
