// Where a binding read as texels (`launch::Access::Texels`: a buffer's vec4s copied into a
// 2-D texture, TEXEL_ROW to a row) keeps its i-th vec4.

// Texels per texture row (`launch::TEXEL_ROW`).
const TEXEL_ROW: u32 = 4096u;

fn texel_at(i: u32) -> vec2<u32> {
    return vec2<u32>(i % TEXEL_ROW, i / TEXEL_ROW);
}
