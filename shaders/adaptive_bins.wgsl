// The bins of adaptive pooling, PyTorch's: output o of `n` along an axis of length `len`
// covers floor(o * len / n) .. ceil((o + 1) * len / n). Written with the quotient and
// remainder of len / n so that no product exceeds 32 bits where the plain formula would:
// an axis that keeps its length (the first pass of a two-pass pooling, n = len) over
// 65,536 long overflowed `(o + 1) * len` and read the wrong columns.
// AdaptiveAvgPool2dParams::output_shape checks n * (len % n) + n - 1 < 2^32.

fn bin_start(o: u32, len: u32, n: u32) -> u32 {
    return o * (len / n) + (o * (len % n)) / n;
}

fn bin_end(o: u32, len: u32, n: u32) -> u32 {
    return (o + 1u) * (len / n) + ((o + 1u) * (len % n) + n - 1u) / n;
}
