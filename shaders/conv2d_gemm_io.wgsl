// The operands of the 1×1 convolution kernels (conv2d_gemm and conv2d_gemm_sg): a 1×1,
// stride-1, unpadded, ungrouped convolution as a GEMM, y[n, o, p] = Σ_c w[o, c] x[n, c, p] over
// the flattened pixels p of every image, with the fused epilogue (conv2d_epilogue.wgsl). How
// an invocation loads its activations (`quads`, `pixels`) comes after this file:
// conv2d_gemm_load.wgsl, or conv2d_gemm_load_gated.wgsl for Coordinate Attention's input.

struct Params {
    pixels: u32,    // N * H * W
    out_hw: u32,    // H * W
    cin: u32,
    cout: u32,
    blocks: u32,    // RO_G * RP_Q, the store loop's trip count
    flags: u32,     // 1 = bias, 2 = scale/shift, 4 = residual
    act: u32,       // Activation::code, after bias and affine
    post_act: u32,  // Activation::code, after the residual add
    width: u32,     // W (the gated kernels locate each pixel's gates by it)
};

// Offsets of channel 0 of pixels first..first+3 (clamped to the last pixel) in a tensor whose
// images are `plane` values apart.
fn offsets(first: u32, plane: u32) -> vec4<u32> {
    let px = min(vec4(first) + vec4(0u, 1u, 2u, 3u), vec4(p.pixels - 1u));
    let n = px / p.out_hw;
    return n * plane + (px - n * p.out_hw);
}

fn gather(i: vec4<u32>) -> vec4<f32> {
    return vec4(f32(x[i.x]), f32(x[i.y]), f32(x[i.z]), f32(x[i.w]));
}

// Stores a 4-channel × 4-pixel block with its channels' epilogue operands `t`; `first` is the
// block's first pixel, `oi` the channel-0 output offsets of its pixels.
fn store_block(a: mat4x4<f32>, o: u32, first: u32, oi: vec4<u32>, t: Terms) {
    if (o < p.cout) {
        store_block_pixels(a, t, min(p.cout - o, 4u), first, oi + vec4(o * p.out_hw));
    }
}

// Where the weight rows of channels o..o+3 start (clamped to the last channel).
fn rows(o: u32) -> vec4<u32> {
    return min(vec4(o) + vec4(0u, 1u, 2u, 3u), vec4(p.cout - 1u)) * p.cin;
}
