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
    let c = min(o + (lane & 3u), last);
    var b = 0.0;
    var s = 1.0;
    var h = 0.0;
    if ((p.flags & 1u) != 0u) {
        b = bias[c];
    }
    if ((p.flags & 2u) != 0u) {
        s = scale[c];
        h = shift[c];
    }
    return Terms(spread(b), spread(s), spread(h));
}
