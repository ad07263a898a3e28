// Reading Coordinate Attention's means from the partial sums a depthwise conv wrote
// (conv2d_depthwise_pool.wgsl: per image, row parts [C, H, quads] then column parts
// [C, strips, W]), for coord_pool_finish.wgsl and coord_excite.wgsl, whose params both
// name C, H, W, quads and strips `c`, `h`, `w`, `quads`, `strips`.

// The mean at pooled position l of channel c in image n: over W of row l (l < H), else over H
// of column l - H, its parts added in order.
fn parts_mean(n: u32, c: u32, l: u32) -> f32 {
    let image = n * p.c * (p.h * p.quads + p.strips * p.w);
    var sum = 0.0;
    if (l < p.h) {
        let at = image + (c * p.h + l) * p.quads;
        for (var q = 0u; q < p.quads; q++) {
            sum += partials[at + q];
        }
        return sum / f32(p.w);
    }
    let at = image + p.c * p.h * p.quads + c * p.strips * p.w + (l - p.h);
    for (var s = 0u; s < p.strips; s++) {
        sum += partials[at + s * p.w];
    }
    return sum / f32(p.h);
}
