// 1×1, stride-1, unpadded, ungrouped convolution as a GEMM: y[n, o, p] = Σ_c w[o, c] x[n, c, p]
// over the flattened pixels p of every image, with the fused epilogue
// v = conv + bias; v = v*scale + shift; v = act(v); v = post_act(v + residual).
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
// addresses and are never stored. Absent epilogue operands are bound to the weights and never
// read (`flags` says which are present).

override RO_G: u32 = 4u;   // output channels per invocation / 4: 1, 2, 4 or 8
override RP_Q: u32 = 4u;   // pixels per invocation / 4: 1, 2 or 4

struct Params {
    pixels: u32,    // N * H * W
    out_hw: u32,    // H * W
    cin: u32,
    cout: u32,
    blocks: u32,    // RO_G * RP_Q
    flags: u32,     // 1 = bias, 2 = scale/shift, 4 = residual
    act: u32,       // Activation::code, after bias and affine
    post_act: u32,  // Activation::code, after the residual add
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read> shift: array<f32>;
@group(0) @binding(6) var<storage, read> residual: array<f32>;
@group(0) @binding(7) var<storage, read_write> y: array<f32>;

// a += w ⊗ v: column i gains w * v[i] (4 channels of pixel i).
fn outer(w: vec4<f32>, v: vec4<f32>, a: mat4x4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(
        fma(w, vec4(v.x), a[0]),
        fma(w, vec4(v.y), a[1]),
        fma(w, vec4(v.z), a[2]),
        fma(w, vec4(v.w), a[3]),
    );
}

// Offsets of channel 0 of pixels first..first+3 (clamped to the last pixel) in a tensor whose
// images are `plane` values apart.
fn offsets(first: u32, plane: u32) -> vec4<u32> {
    let px = min(vec4(first) + vec4(0u, 1u, 2u, 3u), vec4(p.pixels - 1u));
    let n = px / p.out_hw;
    return n * plane + (px - n * p.out_hw);
}

fn gather(i: vec4<u32>) -> vec4<f32> {
    return vec4(x[i.x], x[i.y], x[i.z], x[i.w]);
}

// Where the weight rows of channels o..o+3 start (clamped to the last channel).
fn rows(o: u32) -> vec4<u32> {
    return min(vec4(o) + vec4(0u, 1u, 2u, 3u), vec4(p.cout - 1u)) * p.cin;
}

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

    // Per pixel quad: the offset of channel 0 in x.
    let xplane = p.cin * p.out_hw;
    let xi0 = offsets(first, xplane);
    let xi1 = offsets(first + 4u, xplane);
    let xi2 = offsets(first + 8u, xplane);
    let xi3 = offsets(first + 12u, xplane);
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
        let xc = c * p.out_hw;
        var xs = Pixels(gather(xi0 + xc), vec4<f32>(), vec4<f32>(), vec4<f32>());
        if (RP_Q > 1u) { xs.x1 = gather(xi1 + xc); }
        if (RP_Q > 2u) {
            xs.x2 = gather(xi2 + xc);
            xs.x3 = gather(xi3 + xc);
        }
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
