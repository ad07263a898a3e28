// The activation hook of conv2d_mm.wgsl for a conv whose input is used as it is.

fn gated(v: f32, n: u32, c: u32, ih: u32, iw: u32) -> f32 {
    return v;
}
