// Register-tile helpers shared by the GEMM-shaped conv kernels (conv2d_gemm, conv2d_general
// and their subgroup variants; src/kernels/conv.rs prepends this file): accumulators, the
// fused epilogue and stores. They read the kernel's own `p` (flags, act, post_act, out_hw),
// its `RP_Q` and its bias/scale/shift/residual/y.

fn weights(r: vec4<u32>) -> vec4<f32> {
    return vec4(wt[r.x], wt[r.y], wt[r.z], wt[r.w]);
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

fn block(r: Row, q: u32) -> mat4x4<f32> {
    switch (q) {
        case 1u: { return r.q1; }
        case 2u: { return r.q2; }
        case 3u: { return r.q3; }
        default: { return r.q0; }
    }
}

// The per-channel epilogue operands of 4 channels: zero bias and shift, unit scale where absent.
struct Terms {
    bias: vec4<f32>,
    scale: vec4<f32>,
    shift: vec4<f32>,
};

fn terms(o: vec4<u32>) -> Terms {
    var t = Terms(vec4(0.0), vec4(1.0), vec4(0.0));
    if ((p.flags & 1u) != 0u) {
        t.bias = vec4(bias[o.x], bias[o.y], bias[o.z], bias[o.w]);
    }
    if ((p.flags & 2u) != 0u) {
        t.scale = vec4(scale[o.x], scale[o.y], scale[o.z], scale[o.w]);
        t.shift = vec4(shift[o.x], shift[o.y], shift[o.z], shift[o.w]);
    }
    return t;
}

// The epilogue up to the residual: act((conv + bias)·scale + shift), 4 values at a time.
fn pre_residual(conv: vec4<f32>, t: Terms) -> vec4<f32> {
    let v = (conv + t.bias) * t.scale + t.shift;
    return vec4(activate(v.x, p.act), activate(v.y, p.act), activate(v.z, p.act), activate(v.w, p.act));
}

// The rest of the epilogue for output index i: post_act(v + residual) when there is one.
fn post_residual(v: f32, i: u32) -> f32 {
    if ((p.flags & 4u) != 0u) {
        return activate(v + residual[i], p.post_act);
    }
    return v;
}

// Stores channels o..o+count-1 (count ≤ 4) of one pixel whose channel-o output index is `oi`.
fn store_pixel(v: vec4<f32>, count: u32, oi: u32) {
    for (var j = 0u; j < 4u; j++) {
        if (j < count) {
            let i = oi + j * p.out_hw;
            y[i] = post_residual(v[j], i);
        }
    }
}
