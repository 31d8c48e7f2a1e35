// The parameters, bindings and reads shared by global_pool.wgsl (a workgroup per plane)
// and global_pool_planes.wgsl (a plane per invocation). The including file declares
// override SUM: bool.

struct GlobalParams {
    planes: u32,
    plane: u32, // H * W
    parts: u32, // per plane (always 1 in global_pool_planes.wgsl)
    part_len: u32, // loads (vec4 or single values) per part
}

@group(0) @binding(0) var<uniform> p: GlobalParams;
// Read as vec4s; single values are picked out of them (any plane size).
@group(0) @binding(1) var<storage, read> x: array<vec4<Act>>;
@group(0) @binding(2) var<storage, read_write> y: array<Act>;
// The second summand (SUM).
@group(0) @binding(3) var<storage, read> x2: array<vec4<Act>>;

fn value4(i: u32) -> vec4<f32> {
    if (SUM) {
        return vec4<f32>(x[i]) + vec4<f32>(x2[i]);
    }
    return vec4<f32>(x[i]);
}

fn value(i: u32) -> f32 {
    return value4(i / 4u)[i % 4u];
}

fn max_nan(a: f32, b: f32) -> f32 {
    if (b > a || is_nan(b)) {
        return b;
    }
    return a;
}
