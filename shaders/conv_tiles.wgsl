// The uniform of the register-tiled convolutions, direct and transposed
// (`#include "conv_tiles.wgsl"`; src/ops/conv.rs, `TiledConvParams`). Each invocation
// computes a strip of PX output pixels of one row (of one phase, for the transposed
// convolution) for 4 * OC_VEC output channels of one group. Workgroups are numbered
// ((n * groups + g) * oc_blocks_pg + block) * strip_blocks + strip block. The including
// file declares `p`, `bias`, PX / OC_VEC and STORE_LOOP (see store_tiles), includes
// conv_tiles_out.wgsl (`y` and `res` as scalars) or conv_tiles_out4.wgsl (as vec4s, Y4),
// and defines `load_w(i) -> vec4<f32>`, the i-th vec4 of the weights.
#include "epilogue.wgsl"

struct TiledConvParams {
    n: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    oh: u32,
    ow: u32,
    groups: u32,
    cin_pg: u32, // input channels per group
    cout_pg: u32, // output channels per group
    cout_pg_pad: u32, // cout_pg padded to the weight layout's channel tile
    oc_blocks_pg: u32, // channel tiles per group
    pad_h: u32,
    pad_w: u32,
    strips_x: u32, // strips per output row (per phase)
    strip_blocks: u32, // workgroups per (n, g, block): ceil(strips / WORKGROUP_SIZE)
    pact_a: f32, // the store's activation parameters (StoreArgs)
    pact_b: f32,
    then_a: f32,
    then_b: f32,
}

// The tile an invocation computes.
struct Tile {
    n: u32,
    g: u32,
    oc0: u32, // first output channel within the group
    strip: u32, // strip index within the (n, g, block) plane of strips
}

fn tile_of(inv: Invocation, lid: u32) -> Tile {
    let wid = workgroup_index(inv);
    let t = wid / p.strip_blocks;
    let block = t % p.oc_blocks_pg;
    let t2 = t / p.oc_blocks_pg;
    let strip = (wid % p.strip_blocks) * WORKGROUP_SIZE + lid;
    return Tile(t2 / p.groups, t2 % p.groups, block * 4u * OC_VEC, strip);
}

fn accumulate(acc: ptr<function, array<vec4<f32>, PX>>, xs: ptr<function, array<f32, PX>>, w: vec4<f32>) {
    for (var j = 0u; j < PX; j++) {
        (*acc)[j] = fma(vec4<f32>((*xs)[j]), w, (*acc)[j]);
    }
}

// acc{k} += xs * w for channel tile k (of OC_VEC) of the tap whose weights start at widx.
fn accumulate_tap(
    a0: ptr<function, array<vec4<f32>, PX>>,
    a1: ptr<function, array<vec4<f32>, PX>>,
    a2: ptr<function, array<vec4<f32>, PX>>,
    a3: ptr<function, array<vec4<f32>, PX>>,
    xs: ptr<function, array<f32, PX>>,
    widx: u32,
) {
    accumulate(a0, xs, load_w(widx));
    if (OC_VEC > 1u) {
        accumulate(a1, xs, load_w(widx + 1u));
    }
    if (OC_VEC > 2u) {
        accumulate(a2, xs, load_w(widx + 2u));
    }
    if (OC_VEC > 3u) {
        accumulate(a3, xs, load_w(widx + 3u));
    }
}

// Bias, epilogue and store of channel co (within group g) of the tile, component k of
// each pixel's accumulator: pixel j at column ox_first + j * ox_step of output row oy.
// With Y4 (rows and strips of a multiple of 4 pixels, ox_step 1), four pixels a store.
fn store_channel(acc: ptr<function, array<vec4<f32>, PX>>, k: u32, co: u32, g: u32, n: u32, oy: u32, ox_first: u32, ox_step: u32) {
    let cc = g * p.cout_pg + min(co, p.cout_pg - 1u);
    let b = f32(bias[cc]);
    let out_row = ((n * p.c_out + shuffled_channel(cc, p.c_out)) * p.oh + oy) * p.ow;
    if (Y4 == 1u) {
        for (var j = 0u; j < PX; j += 4u) {
            let ox = ox_first + j;
            if (co < p.cout_pg && ox < p.ow) {
                let i4 = (out_row + ox) / 4u;
                var r = vec4<f32>(0.0);
                if (RESIDUAL != 0u) {
                    r = load_res4(i4);
                }
                let v = vec4<f32>((*acc)[j][k], (*acc)[j + 1u][k], (*acc)[j + 2u][k], (*acc)[j + 3u][k]);
                store_y4(i4, finish4(v + b, r));
            }
        }
        return;
    }
    for (var j = 0u; j < PX; j++) {
        let ox = ox_first + j * ox_step;
        if (co < p.cout_pg && ox < p.ow) {
            let i = out_row + ox;
            var r = 0.0;
            if (RESIDUAL != 0u) {
                r = load_res(i);
            }
            store_y(i, finish((*acc)[j][k] + b, r));
        }
    }
}

// Stores the OC_VEC channel tiles of an invocation (see store_channel).
fn store_tiles(
    a0: ptr<function, array<vec4<f32>, PX>>,
    a1: ptr<function, array<vec4<f32>, PX>>,
    a2: ptr<function, array<vec4<f32>, PX>>,
    a3: ptr<function, array<vec4<f32>, PX>>,
    tile: Tile,
    oy: u32,
    ox_first: u32,
    ox_step: u32,
) {
    if (STORE_LOOP) {
        // One channel's stores in a loop that moves the accumulators down a channel each
        // time, instead of 4 * OC_VEC inlined copies (see conv_pointwise_body.wgsl: the
        // copies were most of llvmpipe's compile time).
        let channels = min(4u * OC_VEC, p.cout_pg - tile.oc0);
        for (var k = 0u; k < channels; k++) {
            store_channel(a0, 0u, tile.oc0 + k, tile.g, tile.n, oy, ox_first, ox_step);
            for (var j = 0u; j < PX; j++) {
                (*a0)[j] = vec4<f32>((*a0)[j].yzw, (*a1)[j].x);
                if (OC_VEC > 1u) {
                    (*a1)[j] = vec4<f32>((*a1)[j].yzw, (*a2)[j].x);
                }
                if (OC_VEC > 2u) {
                    (*a2)[j] = vec4<f32>((*a2)[j].yzw, (*a3)[j].x);
                }
                if (OC_VEC > 3u) {
                    (*a3)[j] = vec4<f32>((*a3)[j].yzw, 0.0);
                }
            }
        }
        return;
    }
    for (var k = 0u; k < 4u; k++) {
        store_channel(a0, k, tile.oc0 + k, tile.g, tile.n, oy, ox_first, ox_step);
        if (OC_VEC > 1u) {
            store_channel(a1, k, tile.oc0 + 4u + k, tile.g, tile.n, oy, ox_first, ox_step);
        }
        if (OC_VEC > 2u) {
            store_channel(a2, k, tile.oc0 + 8u + k, tile.g, tile.n, oy, ox_first, ox_step);
        }
        if (OC_VEC > 3u) {
            store_channel(a3, k, tile.oc0 + 12u + k, tile.g, tile.n, oy, ox_first, ox_step);
        }
    }
}
