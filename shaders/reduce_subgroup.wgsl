// The subgroup form of reduce.wgsl (same functions, same contract), included in its place
// when SUBGROUPS = 1: one subgroup operation combines each subgroup's values (a few
// shuffles in registers on a GPU, one vector reduction on lavapipe), and the first
// invocation of each subgroup stores the result for a short sequential sum over the
// subgroups (at most WORKGROUP_SIZE / subgroup size of them: 2-8 on GPUs). Two barriers
// instead of log2(WORKGROUP_SIZE) + 2. Subgroup operations combine in an order the driver
// chooses (the same at every run), so sums differ from the tree's by rounding only.

const SUBGROUPS: u32 = 1u; // @specialize

// NAN_BITS: see common.wgsl.

struct Lanes {
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_id) id: u32,
    @builtin(num_subgroups) count: u32,
}

var<workgroup> reduce_tree: array<vec2<f32>, WORKGROUP_SIZE>;

fn workgroup_sum2(v: vec2<f32>, lid: u32, lanes: Lanes) -> vec2<f32> {
    let s = subgroupAdd(v);
    if (lanes.lane == 0u) {
        reduce_tree[lanes.id] = s;
    }
    workgroupBarrier();
    var total = vec2<f32>(0.0);
    for (var i = 0u; i < lanes.count; i++) {
        total += reduce_tree[i];
    }
    workgroupBarrier();
    return total;
}

fn workgroup_max_nan(v: f32, lid: u32, lanes: Lanes) -> f32 {
    // Subgroup max leaves NaN to the driver: flag it separately.
    let nan = subgroupAny(is_nan(v));
    let m = select(subgroupMax(v), bitcast<f32>(NAN_BITS), nan);
    if (lanes.lane == 0u) {
        reduce_tree[lanes.id].x = m;
    }
    workgroupBarrier();
    var total = reduce_tree[0].x;
    for (var i = 1u; i < lanes.count; i++) {
        let b = reduce_tree[i].x;
        total = select(total, b, b > total || is_nan(b));
    }
    workgroupBarrier();
    return total;
}
