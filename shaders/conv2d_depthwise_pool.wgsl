// The pool hooks of conv2d_depthwise.wgsl for a conv whose output Coordinate Attention pools:
// while the strip's values are in registers, each invocation writes the partial sums of
// both means (WGSL has no float atomics, so coord_pool_finish.wgsl adds the parts up).
// Per image, for its C channels: first the row parts [C, out_h, quads] (a row's sum over one
// quad of columns), then the column parts [C, strips, out_w] (a column's sum over one strip
// of rows).

@group(0) @binding(8) var<storage, read_write> partials: array<f32>;

fn partials_per_image() -> u32 {
    return p.channels * (p.out_h * p.quads + p.strips * p.out_w);
}

// Where image n's parts start, and channel c's within each half.
fn row_part(nc: u32, oh: u32, quad: u32) -> u32 {
    let n = nc / p.channels;
    let c = nc % p.channels;
    return n * partials_per_image() + (c * p.out_h + oh) * p.quads + quad;
}

fn column_part(nc: u32, strip: u32, ow: u32) -> u32 {
    let n = nc / p.channels;
    let c = nc % p.channels;
    let row_half = p.channels * p.out_h * p.quads;
    return n * partials_per_image() + row_half + (c * p.strips + strip) * p.out_w + ow;
}

fn pool_row(nc: u32, oh: u32, quad: u32, stored: vec4<f32>) {
    if (oh < p.out_h) {
        partials[row_part(nc, oh, quad)] = stored.x + stored.y + stored.z + stored.w;
    }
}

fn pool_columns(nc: u32, strip: u32, ow: u32, sums: vec4<f32>) {
    let at = column_part(nc, strip, ow);
    for (var j = 0u; j < 4u; j++) {
        if (ow + j < p.out_w) {
            partials[at + j] = sums[j];
        }
    }
}
