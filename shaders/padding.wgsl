// Convolution padding modes (`#include "padding.wgsl"`).
#include "common.wgsl"

// PyTorch's padding_mode: 0 zeros, 1 reflect, 2 replicate, 3 circular. For modes 1-3
// every tap reads a real input, at pad_index(i, n); for zeros the caller skips or zeroes
// taps outside the input.
override PAD_MODE: u32 = 0u;

// Maps a possibly out-of-range index (at most one size away, as the padding limits
// guarantee) into 0..n for the non-zero padding modes. Only non-negative integers are
// divided: `%` on negative integers differs between backends.
fn pad_index(i: i32, n: i32) -> i32 {
    switch PAD_MODE {
        case 1u: {
            if (i < 0) {
                return -i;
            }
            if (i >= n) {
                return 2 * n - 2 - i;
            }
            return i;
        }
        case 2u: { return clamp(i, 0, n - 1); }
        case 3u: { return i32(u32(i + n) % u32(n)); }
        default: { return i; }
    }
}
