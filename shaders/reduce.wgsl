// Workgroup-wide reductions, every invocation of the workgroup calling them in uniform
// control flow and getting the result. This file combines the invocations' values in a
// tree in workgroup memory (log2(WORKGROUP_SIZE) barriers); with SUBGROUPS = 1 the
// preprocessor (src/shaders.rs) includes reduce_subgroup.wgsl instead, which combines
// each subgroup's values with one subgroup operation and the subgroups' results in
// workgroup memory (two barriers). Both combine in a fixed order: results are
// deterministic for a given device.
// A kernel that includes this file takes `lanes: Lanes` as a second entry-point
// argument and passes it on.

// 1: reduce_subgroup.wgsl is included instead of this file (the adapter's SUBGROUP
// feature; see `DeviceCaps::reduction`).
const SUBGROUPS: u32 = 0u; // @specialize

// The builtins the subgroup form needs; this form needs none (any builtin the kernels'
// `Invocation` does not bind will do as a placeholder).
struct Lanes {
    @builtin(local_invocation_id) unused: vec3<u32>,
}

var<workgroup> reduce_tree: array<vec2<f32>, WORKGROUP_SIZE>;

// The workgroup's sums of v.x and of v.y.
fn workgroup_sum2(v: vec2<f32>, lid: u32, lanes: Lanes) -> vec2<f32> {
    reduce_tree[lid] = v;
    for (var width = WORKGROUP_SIZE / 2u; width > 0u; width = width / 2u) {
        workgroupBarrier();
        if (lid < width) {
            reduce_tree[lid] = reduce_tree[lid] + reduce_tree[lid + width];
        }
    }
    workgroupBarrier();
    let total = reduce_tree[0];
    // The array is free again only once every invocation has read the total.
    workgroupBarrier();
    return total;
}

// The workgroup's largest value, NaN if any value is NaN (PyTorch's max).
fn workgroup_max_nan(v: f32, lid: u32, lanes: Lanes) -> f32 {
    reduce_tree[lid].x = v;
    for (var width = WORKGROUP_SIZE / 2u; width > 0u; width = width / 2u) {
        workgroupBarrier();
        if (lid < width) {
            let a = reduce_tree[lid].x;
            let b = reduce_tree[lid + width].x;
            reduce_tree[lid].x = select(a, b, b > a || is_nan(b));
        }
    }
    workgroupBarrier();
    let total = reduce_tree[0].x;
    workgroupBarrier();
    return total;
}
