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

// `nth_row` over a tile of 16 rows.
fn nth_row16(
    i: u32,
    r0: Row, r1: Row, r2: Row, r3: Row, r4: Row, r5: Row, r6: Row, r7: Row,
    r8: Row, r9: Row, r10: Row, r11: Row, r12: Row, r13: Row, r14: Row, r15: Row,
) -> Row {
    if (i < 8u) {
        return nth_row(i, r0, r1, r2, r3, r4, r5, r6, r7);
    }
    return nth_row(i - 8u, r8, r9, r10, r11, r12, r13, r14, r15);
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
