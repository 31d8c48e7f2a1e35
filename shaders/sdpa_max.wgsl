// The largest finite maximum among the key splits' per-query maxima of `sdpa.wgsl`
// (SPLIT = 1), as `sdpa_combine.wgsl` and `sdpa_global.wgsl` both need it: a NaN maximum
// (a NaN or +inf score) poisons the result; a -inf one (no finite score in that split)
// is passed over.
#include "common.wgsl"

struct SplitMaximum {
    top: f32,
    // Whether any split had a finite score.
    seen: bool,
    poisoned: bool,
}

fn split_maximum_start() -> SplitMaximum {
    return SplitMaximum(0.0, false, false);
}

fn split_maximum_add(state: SplitMaximum, mx: f32) -> SplitMaximum {
    var next = state;
    if (is_nan(mx)) {
        next.poisoned = true;
    } else if (is_finite(mx) && (!state.seen || mx > state.top)) {
        next.top = mx;
        next.seen = true;
    }
    return next;
}
