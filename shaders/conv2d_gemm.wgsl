// 1×1 convolution as a register-tiled GEMM (operands in conv2d_gemm_io.wgsl).
//
// Register blocking: one invocation owns a tile of 4·RO_G output channels × 4·RP_Q consecutive
// pixels (mat4x4 blocks: columns are pixels, rows channels). On lavapipe a storage load costs
// as much as dozens of FMAs (llvmpipe fetches it lane by lane), so the tile is large (up to
// 32 × 16, the fastest measured): per input channel it loads 4·RP_Q activations and 4·RO_G
// weights for 16·RO_G·RP_Q FMAs. Workgroups are pixel blocks (x, spilling into z) × channel
// blocks (y), so the weight addresses are the same across a workgroup.
//
// The `if`s on RO_G and RP_Q fold away once the pipeline is specialized. Lanes past the last
// pixel return at once; pixels and channels past the end inside a tile load clamped (valid)
// addresses and are never stored.

override RO_G: u32 = 4u;   // output channels per invocation / 4: 1, 2, 4 or 8
override RP_Q: u32 = 4u;   // pixels per invocation / 4: 1, 2 or 4

// Stores a 4-channel × 4-pixel block; `first` is the block's first pixel.
fn store_block(a: mat4x4<f32>, o: u32, first: u32, oi: vec4<u32>) {
    if (o >= p.cout) {
        return;
    }
    let count = min(p.cout - o, 4u);
    let t = terms(min(vec4(o) + vec4(0u, 1u, 2u, 3u), vec4(p.cout - 1u)));
    let base = o * p.out_hw;
    if (first < p.pixels) { store_pixel(pre_residual(a[0], t), count, oi.x + base); }
    if (first + 1u < p.pixels) { store_pixel(pre_residual(a[1], t), count, oi.y + base); }
    if (first + 2u < p.pixels) { store_pixel(pre_residual(a[2], t), count, oi.z + base); }
    if (first + 3u < p.pixels) { store_pixel(pre_residual(a[3], t), count, oi.w + base); }
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    // Pixel blocks spill from x into z past the per-dimension workgroup limit.
    let block_id = wid.x + wid.z * nwg.x;
    let first = (block_id * 64u + li) * (4u * RP_Q);
    if (first >= p.pixels) {
        return;
    }
    let o0 = wid.y * (4u * RO_G);
    let xi = quads(first);
    // Weight row starts of the 4 channels of each quad.
    let w0 = rows(o0);
    let w1 = rows(o0 + 4u);
    let w2 = rows(o0 + 8u);
    let w3 = rows(o0 + 12u);
    let w4 = rows(o0 + 16u);
    let w5 = rows(o0 + 20u);
    let w6 = rows(o0 + 24u);
    let w7 = rows(o0 + 28u);

    var r0 = zero_row(); var r1 = zero_row(); var r2 = zero_row(); var r3 = zero_row();
    var r4 = zero_row(); var r5 = zero_row(); var r6 = zero_row(); var r7 = zero_row();
    for (var c = 0u; c < p.cin; c++) {
        let xs = pixels(xi, c);
        r0 = accumulate(r0, weights(w0 + c), xs);
        if (RO_G > 1u) { r1 = accumulate(r1, weights(w1 + c), xs); }
        if (RO_G > 2u) {
            r2 = accumulate(r2, weights(w2 + c), xs);
            r3 = accumulate(r3, weights(w3 + c), xs);
        }
        if (RO_G > 4u) {
            r4 = accumulate(r4, weights(w4 + c), xs);
            r5 = accumulate(r5, weights(w5 + c), xs);
            r6 = accumulate(r6, weights(w6 + c), xs);
            r7 = accumulate(r7, weights(w7 + c), xs);
        }
    }

    // The stores and epilogue are written once, for the block a loop picks: unrolled over all
    // blocks they would multiply the pipeline's compile time by RO_G * RP_Q (the loop bound is
    // a parameter, so the compiler keeps the loop).
    let yplane = p.cout * p.out_hw;
    for (var t = 0u; t < p.blocks; t++) {
        let g = t / RP_Q;
        let q = t - g * RP_Q;
        var r = r0;
        switch (g) {
            case 1u: { r = r1; }
            case 2u: { r = r2; }
            case 3u: { r = r3; }
            case 4u: { r = r4; }
            case 5u: { r = r5; }
            case 6u: { r = r6; }
            case 7u: { r = r7; }
            default: {}
        }
        let px = first + 4u * q;
        store_block(block(r, q), o0 + 4u * g, px, offsets(px, yplane));
    }
}
