// The sliding window of the convolutions and poolings (`#include "window.wgsl"`): kernel
// size, stride and dilation per axis, set from `Window` in src/ops/mod.rs.
override KH: u32 = 3u;
override KW: u32 = 3u;
override SH: u32 = 1u;
override SW: u32 = 1u;
override DH: u32 = 1u;
override DW: u32 = 1u;
