// Any 2-D convolution as a register-tiled implicit GEMM that shares weights across a subgroup
// (operands in conv2d_general_io.wgsl; for devices with subgroups).
//
// The tile and workgroups are conv2d_general's, the reduction conv2d_gemm_sg's: for each
// kernel tap the group's input channels run in chunks of one channel per subgroup lane; each
// lane loads the tile's weights of its own channel at that tap, and every lane takes each
// channel's weights from its lane by shuffles, loading only its own activations.
//
// Shuffles need the whole subgroup: lanes past the last pixel compute clamped pixels and do
// not store; only subgroups entirely past it leave early.

override RO_G: u32 = 16u;   // output channels per invocation / 4: 1 to 16
override RP_Q: u32 = 2u;    // output pixels per invocation / 4: 1 to 4

// The tile's weights at reduction offset `off` (input channel · ksize + tap) of group g, whose
// channels start at c0 within the group.
fn chunk(g: u32, c0: u32, ksize: u32, off: u32) -> Chunk {
    var w: Chunk;
    w.w0 = weights(rows(g, c0, ksize) + off);
    if (RO_G > 1u) { w.w1 = weights(rows(g, c0 + 4u, ksize) + off); }
    if (RO_G > 2u) { w.w2 = weights(rows(g, c0 + 8u, ksize) + off); }
    if (RO_G > 3u) { w.w3 = weights(rows(g, c0 + 12u, ksize) + off); }
    if (RO_G > 4u) { w.w4 = weights(rows(g, c0 + 16u, ksize) + off); }
    if (RO_G > 5u) { w.w5 = weights(rows(g, c0 + 20u, ksize) + off); }
    if (RO_G > 6u) { w.w6 = weights(rows(g, c0 + 24u, ksize) + off); }
    if (RO_G > 7u) { w.w7 = weights(rows(g, c0 + 28u, ksize) + off); }
    if (RO_G > 8u) { w.w8 = weights(rows(g, c0 + 32u, ksize) + off); }
    if (RO_G > 9u) { w.w9 = weights(rows(g, c0 + 36u, ksize) + off); }
    if (RO_G > 10u) { w.w10 = weights(rows(g, c0 + 40u, ksize) + off); }
    if (RO_G > 11u) { w.w11 = weights(rows(g, c0 + 44u, ksize) + off); }
    if (RO_G > 12u) { w.w12 = weights(rows(g, c0 + 48u, ksize) + off); }
    if (RO_G > 13u) { w.w13 = weights(rows(g, c0 + 52u, ksize) + off); }
    if (RO_G > 14u) { w.w14 = weights(rows(g, c0 + 56u, ksize) + off); }
    if (RO_G > 15u) { w.w15 = weights(rows(g, c0 + 60u, ksize) + off); }
    return w;
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) lanes: u32,
) {
    let first = first_pixel(wid, nwg, li);
    if (subgroupAll(first >= p.pixels)) {
        return;
    }
    let g = wid.y / p.blocks;
    let c0 = (wid.y - g * p.blocks) * (4u * RO_G);   // first channel within the group
    let o0 = g * p.cout_g + c0;
    let win = window(first, g);
    let ksize = p.kh * p.kw;
    let in_hw = p.in_h * p.in_w;

    var tile = zero_tile();
    for (var ka = 0u; ka < p.kh; ka++) {
        for (var kb = 0u; kb < p.kw; kb++) {
            let t = taps(win, ka * p.dh, kb * p.dw);
            let k = ka * p.kw + kb;
            for (var c = 0u; c < p.cin_g; c += lanes) {
                let w = chunk(g, c0, ksize, min(c + lane, p.cin_g - 1u) * ksize + k);
                let count = min(lanes, p.cin_g - c);
                for (var j = 0u; j < count; j++) {
                    let xs = pixels(t, (c + j) * in_hw);
                    tile = accumulate_lane(tile, w, j, xs);
                }
            }
        }
    }

    // One channel quad at a time (a loop on a parameter, so it is not unrolled: see nth_row),
    // its epilogue operands shared across the subgroup.
    let last = g * p.cout_g + p.cout_g - 1u;   // the group's last channel
    for (var cq = 0u; cq < p.tile_blocks / RP_Q; cq++) {
        let o = o0 + 4u * cq;
        let count = min(room(c0 + 4u * cq), 4u);
        let t = shared_terms(o, last, lane);
        let r = nth_row16(cq, tile);
        for (var q = 0u; q < RP_Q; q++) {
            let px = first + 4u * q;
            if (count > 0u) {
                store_quad(block(r, q), o, count, px, quad(px), t);
            }
        }
    }
}
