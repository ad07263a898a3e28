// The pool hooks of conv2d_depthwise.wgsl when the conv feeds no fused pool: nothing.

fn pool_row(nc: u32, oh: u32, quad: u32, stored: vec4<f32>) {}

fn pool_columns(nc: u32, strip: u32, ow: u32, sums: vec4<f32>) {}
