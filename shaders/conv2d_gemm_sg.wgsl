// 1×1 convolution as a register-tiled GEMM that shares weights across a subgroup (operands in
// conv2d_gemm_io.wgsl; for devices with subgroups).
//
// One invocation owns 4·RO_G output channels × 4·RP_Q consecutive pixels, like conv2d_gemm,
// and every invocation of a workgroup has the same channels. The reduction runs in chunks of
// one input channel per subgroup lane: each lane loads the tile's weights of its own input
// channel (4·RO_G loads), then for every channel of the chunk all lanes take that channel's
// weights from its lane by shuffles and load only their own 4·RP_Q activations. Per input
// channel a lane thus loads 4·RP_Q + 4·RO_G / subgroup size values for 16·RO_G·RP_Q FMAs
// (a 64 × 16 tile on 8 lanes: 24 loads for 1,024 FMAs, against 48 for 512 in conv2d_gemm's
// 32 × 16).
//
// Shuffles need the whole subgroup: lanes past the last pixel compute clamped pixels and do
// not store; only subgroups entirely past it leave early.

override RO_G: u32 = 16u;   // output channels per invocation / 4: 1 to 16
override RP_Q: u32 = 2u;    // pixels per invocation / 4: 1 to 4

// The tile's weights at input channel c.
fn chunk(o0: u32, c: u32) -> Chunk {
    var w: Chunk;
    w.w0 = weights(rows(o0) + c);
    if (RO_G > 1u) { w.w1 = weights(rows(o0 + 4u) + c); }
    if (RO_G > 2u) { w.w2 = weights(rows(o0 + 8u) + c); }
    if (RO_G > 3u) { w.w3 = weights(rows(o0 + 12u) + c); }
    if (RO_G > 4u) { w.w4 = weights(rows(o0 + 16u) + c); }
    if (RO_G > 5u) { w.w5 = weights(rows(o0 + 20u) + c); }
    if (RO_G > 6u) { w.w6 = weights(rows(o0 + 24u) + c); }
    if (RO_G > 7u) { w.w7 = weights(rows(o0 + 28u) + c); }
    if (RO_G > 8u) { w.w8 = weights(rows(o0 + 32u) + c); }
    if (RO_G > 9u) { w.w9 = weights(rows(o0 + 36u) + c); }
    if (RO_G > 10u) { w.w10 = weights(rows(o0 + 40u) + c); }
    if (RO_G > 11u) { w.w11 = weights(rows(o0 + 44u) + c); }
    if (RO_G > 12u) { w.w12 = weights(rows(o0 + 48u) + c); }
    if (RO_G > 13u) { w.w13 = weights(rows(o0 + 52u) + c); }
    if (RO_G > 14u) { w.w14 = weights(rows(o0 + 56u) + c); }
    if (RO_G > 15u) { w.w15 = weights(rows(o0 + 60u) + c); }
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
    let o0 = wid.y * (4u * RO_G);
    let xi = quads(first);

    var tile = zero_tile();
    for (var c0 = 0u; c0 < p.cin; c0 += lanes) {
        let w = chunk(o0, min(c0 + lane, p.cin - 1u));
        let count = min(lanes, p.cin - c0);
        for (var k = 0u; k < count; k++) {
            let xs = pixels(xi, c0 + k);
            tile = accumulate_lane(tile, w, k, xs);
        }
    }

    // One channel quad at a time (a loop on a parameter, so it is not unrolled: see nth_row),
    // its epilogue operands shared across the subgroup.
    let yplane = p.cout * p.out_hw;
    for (var g = 0u; g < p.blocks / RP_Q; g++) {
        let o = o0 + 4u * g;
        let t = shared_terms(o, p.cout - 1u, lane);
        let r = nth_row16(g, tile);
        for (var q = 0u; q < RP_Q; q++) {
            let px = first + 4u * q;
            store_block(block(r, q), o, px, offsets(px, yplane), t);
        }
    }
}
