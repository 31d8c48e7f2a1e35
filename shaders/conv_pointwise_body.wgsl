// The body of the pointwise convolution, shared by conv_pointwise.wgsl (planes of a
// multiple of 4 pixels, vec4 loads and stores) and conv_pointwise_scalar.wgsl (any plane
// size, four scalar loads per pixel group): the including file declares the bindings
// and the tile constants Q and OC_VEC, STORE_LOOP (below), and defines
//   load_group(plane, g) -> vec4<f32>: pixels 4g .. 4g + 3 of input plane `plane`;
//   store_group(plane, g, v): writes finish4(v, residual) to pixels 4g .. of output plane
//   `plane` (those inside the plane);
//   load_weights(i) -> vec4<f32>: the i-th vec4 of the blocked weights;
// and binds `gate`, read when GATED: each input plane is scaled by
// activation4(GATE_ACT, gate[plane]) as it is read (a squeeze-and-excitation's scale,
// fused into the convolution that follows it). With ACT at AT_RUN (activation.wgsl), the
// store's activation comes from p instead.
// Invocations are numbered (n * oc_blocks + block) * tiles + tile across the whole
// dispatch, not a workgroup per (n, block): on small planes (7 x 7: 4 tiles) a workgroup
// per channel block would leave most of its invocations idle, and on a CPU adapter half
// of each SIMD register's lanes.

override GATED: bool = false;
override GATE_ACT: u32 = 0u;
// Planes of a multiple of 4 pixels: the vec4 kernels' pixel groups line up with their
// vec4s. conv_pointwise_texels.wgsl also runs other planes (two texels a group, scalar
// stores); the other kernels only use one case.
override ALIGNED: bool = true;

struct PointwiseParams {
    n: u32,
    c_in: u32,
    c_out: u32,
    hw: u32, // pixels per plane
    cout_pad: u32, // c_out padded to the weight layout's channel tile
    oc_blocks: u32, // channel tiles
    tiles: u32, // tiles of Q pixel groups per (n, block): ceil(ceil(hw / 4) / Q)
    // The store's activation at AT_RUN (see above).
    act_t: f32,
    act_lo: f32,
    act_hi: f32,
    act_scale: f32,
    act_times_v: u32,
    pact_a: f32, // the store's activation parameters (StoreArgs)
    pact_b: f32,
    then_a: f32,
    then_b: f32,
}

// acc[q] += xv[q] * w for the Q pixel groups of the tile.
fn accumulate(acc: ptr<function, array<vec4<f32>, Q>>, xv: ptr<function, array<vec4<f32>, Q>>, w: f32) {
    for (var q = 0u; q < Q; q++) {
        (*acc)[q] = fma((*xv)[q], vec4<f32>(w), (*acc)[q]);
    }
}

fn store(acc: ptr<function, array<vec4<f32>, Q>>, co: u32, n: u32, q0: u32, p4: u32) {
    let cc = min(co, p.c_out - 1u);
    let b = f32(bias[cc]);
    let plane = n * p.c_out + shuffled_channel(cc, p.c_out);
    for (var q = 0u; q < Q; q++) {
        if (co < p.c_out && q0 + q < p4) {
            store_group(plane, q0 + q, (*acc)[q] + b);
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(inv: Invocation, @builtin(local_invocation_index) lid: u32) {
    store_args = StoreArgs(p.pact_a, p.pact_b, p.then_a, p.then_b);
    let flat = thread_index(inv, lid);
    let tile = flat % p.tiles;
    let t = flat / p.tiles;
    let block = t % p.oc_blocks;
    let n = t / p.oc_blocks;
    if (n >= p.n) {
        return;
    }
    let p4 = (p.hw + 3u) / 4u;
    let q0 = tile * Q;
    let oc0 = block * 4u * OC_VEC;
    let oc_pad4 = p.cout_pad / 4u;
    act_at_run = ActAtRun(p.act_t, p.act_lo, p.act_hi, p.act_scale, p.act_times_v);

    // a{k}: output channel oc0 + k. Function-scope variables start zeroed in WGSL.
    var a0: array<vec4<f32>, Q>;
    var a1: array<vec4<f32>, Q>;
    var a2: array<vec4<f32>, Q>;
    var a3: array<vec4<f32>, Q>;
    var a4: array<vec4<f32>, Q>;
    var a5: array<vec4<f32>, Q>;
    var a6: array<vec4<f32>, Q>;
    var a7: array<vec4<f32>, Q>;
    var a8: array<vec4<f32>, Q>;
    var a9: array<vec4<f32>, Q>;
    var a10: array<vec4<f32>, Q>;
    var a11: array<vec4<f32>, Q>;
    var a12: array<vec4<f32>, Q>;
    var a13: array<vec4<f32>, Q>;
    var a14: array<vec4<f32>, Q>;
    var a15: array<vec4<f32>, Q>;
    var xv: array<vec4<f32>, Q>;

    for (var ci = 0u; ci < p.c_in; ci++) {
        let plane = n * p.c_in + ci;
        // Pixel groups past the end of the plane re-read its last group (harmless; they
        // are not stored).
        for (var q = 0u; q < Q; q++) {
            xv[q] = load_group(plane, min(q0 + q, p4 - 1u));
        }
        if (GATED) {
            let s = activation4(GATE_ACT, vec4<f32>(f32(gate[plane]))).x;
            for (var q = 0u; q < Q; q++) {
                xv[q] *= s;
            }
        }
        let widx = ci * oc_pad4 + oc0 / 4u;
        let w0 = load_weights(widx + 0u);
        accumulate(&a0, &xv, w0.x);
        accumulate(&a1, &xv, w0.y);
        accumulate(&a2, &xv, w0.z);
        accumulate(&a3, &xv, w0.w);
        if (OC_VEC > 1u) {
            let w1 = load_weights(widx + 1u);
            accumulate(&a4, &xv, w1.x);
            accumulate(&a5, &xv, w1.y);
            accumulate(&a6, &xv, w1.z);
            accumulate(&a7, &xv, w1.w);
        }
        if (OC_VEC > 2u) {
            let w2 = load_weights(widx + 2u);
            accumulate(&a8, &xv, w2.x);
            accumulate(&a9, &xv, w2.y);
            accumulate(&a10, &xv, w2.z);
            accumulate(&a11, &xv, w2.w);
        }
        if (OC_VEC > 3u) {
            let w3 = load_weights(widx + 3u);
            accumulate(&a12, &xv, w3.x);
            accumulate(&a13, &xv, w3.y);
            accumulate(&a14, &xv, w3.z);
            accumulate(&a15, &xv, w3.w);
        }
    }

    if (STORE_LOOP) {
        // One channel's stores in a loop that moves the accumulators down a channel each
        // time, instead of 4 * OC_VEC inlined copies: llvmpipe compiles each copy (with
        // its lane-by-lane scatter and residual gather) separately, and they were most of
        // the kernel's compile time at its first dispatch (lavapipe: 0.36-1.8 s per
        // pipeline before, a third of that after; run time unchanged). A GPU keeps the
        // unrolled stores (STORE_LOOP false), its accumulators in registers.
        let channels = min(4u * OC_VEC, p.c_out - oc0);
        for (var k = 0u; k < channels; k++) {
            store(&a0, oc0 + k, n, q0, p4);
            a0 = a1;
            a1 = a2;
            a2 = a3;
            if (OC_VEC > 1u) {
                a3 = a4;
                a4 = a5;
                a5 = a6;
                a6 = a7;
            }
            if (OC_VEC > 2u) {
                a7 = a8;
                a8 = a9;
                a9 = a10;
                a10 = a11;
            }
            if (OC_VEC > 3u) {
                a11 = a12;
                a12 = a13;
                a13 = a14;
                a14 = a15;
            }
        }
        return;
    }
    store(&a0, oc0, n, q0, p4);
    store(&a1, oc0 + 1u, n, q0, p4);
    store(&a2, oc0 + 2u, n, q0, p4);
    store(&a3, oc0 + 3u, n, q0, p4);
    if (OC_VEC > 1u) {
        store(&a4, oc0 + 4u, n, q0, p4);
        store(&a5, oc0 + 5u, n, q0, p4);
        store(&a6, oc0 + 6u, n, q0, p4);
        store(&a7, oc0 + 7u, n, q0, p4);
    }
    if (OC_VEC > 2u) {
        store(&a8, oc0 + 8u, n, q0, p4);
        store(&a9, oc0 + 9u, n, q0, p4);
        store(&a10, oc0 + 10u, n, q0, p4);
        store(&a11, oc0 + 11u, n, q0, p4);
    }
    if (OC_VEC > 3u) {
        store(&a12, oc0 + 12u, n, q0, p4);
        store(&a13, oc0 + 13u, n, q0, p4);
        store(&a14, oc0 + 14u, n, q0, p4);
        store(&a15, oc0 + 15u, n, q0, p4);
    }
}
