// Register-tile helpers shared by the GEMM-shaped conv kernels (conv2d_gemm, conv2d_general
// and their subgroup variants; src/kernels/conv.rs prepends this file after
// conv2d_epilogue.wgsl): accumulators and stores. They read the kernel's own `p` (pixels,
// out_hw) and its `RP_Q`.

// The first output pixel of an invocation's tile (workgroups of 64): pixel blocks spill from
// x into z past the per-dimension workgroup limit.
fn first_pixel(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return ((wid.x + wid.z * nwg.x) * 64u + li) * (4u * RP_Q);
}

fn weights(r: vec4<u32>) -> vec4<f32> {
    return vec4(f32(wt[r.x]), f32(wt[r.y]), f32(wt[r.z]), f32(wt[r.w]));
}

// a += w ⊗ v: column i gains w * v[i] (4 channels of pixel i).
fn outer(w: vec4<f32>, v: vec4<f32>, a: mat4x4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(
        fma(w, vec4(v.x), a[0]),
        fma(w, vec4(v.y), a[1]),
        fma(w, vec4(v.z), a[2]),
        fma(w, vec4(v.w), a[3]),
    );
}

// One channel quad's accumulators: a 4-channel × 4-pixel block per pixel quad.
struct Row {
    q0: mat4x4<f32>,
    q1: mat4x4<f32>,
    q2: mat4x4<f32>,
    q3: mat4x4<f32>,
};

// The activations of one input channel at the tile's pixel quads.
struct Pixels {
    x0: vec4<f32>,
    x1: vec4<f32>,
    x2: vec4<f32>,
    x3: vec4<f32>,
};

fn zero_row() -> Row {
    return Row(mat4x4<f32>(), mat4x4<f32>(), mat4x4<f32>(), mat4x4<f32>());
}

// r += w ⊗ xs over the RP_Q pixel quads.
fn accumulate(r: Row, w: vec4<f32>, xs: Pixels) -> Row {
    var s = r;
    s.q0 = outer(w, xs.x0, s.q0);
    if (RP_Q > 1u) { s.q1 = outer(w, xs.x1, s.q1); }
    if (RP_Q > 2u) {
        s.q2 = outer(w, xs.x2, s.q2);
        s.q3 = outer(w, xs.x3, s.q3);
    }
    return s;
}

// Row i of a tile's rows: the stores and epilogue are written once, for the row a loop picks;
// unrolled over every row they would multiply the pipeline's compile time by the tile's size.
fn nth_row(i: u32, r0: Row, r1: Row, r2: Row, r3: Row, r4: Row, r5: Row, r6: Row, r7: Row) -> Row {
    switch (i) {
        case 1u: { return r1; }
        case 2u: { return r2; }
        case 3u: { return r3; }
        case 4u: { return r4; }
        case 5u: { return r5; }
        case 6u: { return r6; }
        case 7u: { return r7; }
        default: { return r0; }
    }
}

fn block(r: Row, q: u32) -> mat4x4<f32> {
    switch (q) {
        case 1u: { return r.q1; }
        case 2u: { return r.q2; }
        case 3u: { return r.q3; }
        default: { return r.q0; }
    }
}

// Stores channels o..o+count-1 (count ≤ 4) of the pixels first..first+3 of a 4-channel ×
// 4-pixel block, those inside the output, whose channel-o output indices are `oi`.
fn store_block_pixels(a: mat4x4<f32>, t: Terms, count: u32, first: u32, oi: vec4<u32>) {
    if (first < p.pixels) { store_pixel(pre_residual(a[0], t), count, oi.x); }
    if (first + 1u < p.pixels) { store_pixel(pre_residual(a[1], t), count, oi.y); }
    if (first + 2u < p.pixels) { store_pixel(pre_residual(a[2], t), count, oi.z); }
    if (first + 3u < p.pixels) { store_pixel(pre_residual(a[3], t), count, oi.w); }
}

// Stores channels o..o+count-1 (count ≤ 4) of one pixel whose channel-o output index is `oi`.
fn store_pixel(v: vec4<f32>, count: u32, oi: u32) {
    for (var j = 0u; j < 4u; j++) {
        if (j < count) {
            let i = oi + j * p.out_hw;
            y[i] = Elem(post_residual(v[j], i));
        }
    }
}
