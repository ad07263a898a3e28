// Helpers of the subgroup conv kernels (conv2d_gemm_sg, conv2d_general_sg), prepended after
// conv2d_tile.wgsl. On lavapipe a storage load costs about 40 vec4 FMAs while a subgroup
// shuffle costs under one, so values every lane of a subgroup needs (the weights of the
// workgroup's channels, the epilogue operands) are loaded once per subgroup, a different one
// by each lane, and handed round with shuffles.

// The weights one lane loads for a chunk of the reduction: one input position for each of
// the tile's 4·RO_G channels (its lane index picks which position).
struct Chunk {
    w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>,
    w4: vec4<f32>, w5: vec4<f32>, w6: vec4<f32>, w7: vec4<f32>,
    w8: vec4<f32>, w9: vec4<f32>, w10: vec4<f32>, w11: vec4<f32>,
    w12: vec4<f32>, w13: vec4<f32>, w14: vec4<f32>, w15: vec4<f32>,
};

// The accumulators of a subgroup kernel: 4·RO_G channels (rows r0..r15, those below RO_G used).
struct Tile {
    r0: Row, r1: Row, r2: Row, r3: Row, r4: Row, r5: Row, r6: Row, r7: Row,
    r8: Row, r9: Row, r10: Row, r11: Row, r12: Row, r13: Row, r14: Row, r15: Row,
};

fn zero_tile() -> Tile {
    let z = zero_row();
    return Tile(z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z);
}

// t += (the weights lane `k` loaded) ⊗ xs, for the tile's RO_G rows.
fn accumulate_lane(t: Tile, w: Chunk, k: u32, xs: Pixels) -> Tile {
    var s = t;
    s.r0 = accumulate(s.r0, subgroupShuffle(w.w0, k), xs);
    if (RO_G > 1u) { s.r1 = accumulate(s.r1, subgroupShuffle(w.w1, k), xs); }
    if (RO_G > 2u) { s.r2 = accumulate(s.r2, subgroupShuffle(w.w2, k), xs); }
    if (RO_G > 3u) { s.r3 = accumulate(s.r3, subgroupShuffle(w.w3, k), xs); }
    if (RO_G > 4u) { s.r4 = accumulate(s.r4, subgroupShuffle(w.w4, k), xs); }
    if (RO_G > 5u) { s.r5 = accumulate(s.r5, subgroupShuffle(w.w5, k), xs); }
    if (RO_G > 6u) { s.r6 = accumulate(s.r6, subgroupShuffle(w.w6, k), xs); }
    if (RO_G > 7u) { s.r7 = accumulate(s.r7, subgroupShuffle(w.w7, k), xs); }
    if (RO_G > 8u) { s.r8 = accumulate(s.r8, subgroupShuffle(w.w8, k), xs); }
    if (RO_G > 9u) { s.r9 = accumulate(s.r9, subgroupShuffle(w.w9, k), xs); }
    if (RO_G > 10u) { s.r10 = accumulate(s.r10, subgroupShuffle(w.w10, k), xs); }
    if (RO_G > 11u) { s.r11 = accumulate(s.r11, subgroupShuffle(w.w11, k), xs); }
    if (RO_G > 12u) { s.r12 = accumulate(s.r12, subgroupShuffle(w.w12, k), xs); }
    if (RO_G > 13u) { s.r13 = accumulate(s.r13, subgroupShuffle(w.w13, k), xs); }
    if (RO_G > 14u) { s.r14 = accumulate(s.r14, subgroupShuffle(w.w14, k), xs); }
    if (RO_G > 15u) { s.r15 = accumulate(s.r15, subgroupShuffle(w.w15, k), xs); }
    return s;
}

// `nth_row` over the 16 rows of a tile.
fn nth_row16(i: u32, t: Tile) -> Row {
    if (i < 8u) {
        return nth_row(i, t.r0, t.r1, t.r2, t.r3, t.r4, t.r5, t.r6, t.r7);
    }
    return nth_row(i - 8u, t.r8, t.r9, t.r10, t.r11, t.r12, t.r13, t.r14, t.r15);
}

// The values of `v` in lanes 0-3, in every lane.
fn spread(v: f32) -> vec4<f32> {
    return vec4(
        subgroupShuffle(v, 0u),
        subgroupShuffle(v, 1u),
        subgroupShuffle(v, 2u),
        subgroupShuffle(v, 3u),
    );
}

// The epilogue operands of channels o..o+3 (clamped to `last`): lanes 0-3 load one channel
// each. Must be reached by the whole subgroup.
fn shared_terms(o: u32, last: u32, lane: u32) -> Terms {
    let t = channel_terms(min(o + (lane & 3u), last));
    return Terms(spread(t.x), spread(t.y), spread(t.z));
}
