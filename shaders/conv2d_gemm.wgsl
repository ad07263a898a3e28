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

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let first = first_pixel(wid, nwg, li);
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

    // One block at a time (a loop on a parameter, so the compiler keeps it: see nth_row).
    let yplane = p.cout * p.out_hw;
    for (var t = 0u; t < p.blocks; t++) {
        let g = t / RP_Q;
        let q = t - g * RP_Q;
        let r = nth_row(g, r0, r1, r2, r3, r4, r5, r6, r7);
        let o = o0 + 4u * g;
        let px = first + 4u * q;
        let epilogue = terms(min(vec4(o) + vec4(0u, 1u, 2u, 3u), vec4(p.cout - 1u)));
        store_block(block(r, q), o, px, offsets(px, yplane), epilogue);
    }
}
