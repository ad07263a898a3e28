// The operands of the general convolution kernels (conv2d_general and conv2d_general_sg): any
// 2-D convolution (PyTorch Conv2d: cross-correlation, zero padding, weights
// [Cout, Cin/groups, kh, kw]; any kernel, stride, padding, dilation and groups) as an implicit
// GEMM, with the fused epilogue (conv2d_epilogue.wgsl).

struct Params {
    pixels: u32,    // N * Ho * Wo
    out_hw: u32,
    out_w: u32,
    blocks: u32,    // channel blocks per group
    cin: u32,
    cin_g: u32,
    cout_g: u32,
    cout: u32,
    in_h: u32,
    in_w: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    tile_blocks: u32,   // RO_G * RP_Q
    flags: u32,     // 1 = bias, 2 = scale/shift, 4 = residual
    act: u32,       // Activation::code, after bias and affine
    post_act: u32,  // Activation::code, after the residual add
};

// Where four consecutive output pixels (clamped to the last one) are: their image, and their
// row and column.
struct Quad {
    n: vec4<u32>,
    oh: vec4<u32>,
    ow: vec4<u32>,
};

fn quad(first: u32) -> Quad {
    let px = min(vec4(first) + vec4(0u, 1u, 2u, 3u), vec4(p.pixels - 1u));
    let n = px / p.out_hw;
    let pin = px - n * p.out_hw;
    let oh = pin / p.out_w;
    return Quad(n, oh, pin - oh * p.out_w);
}

// One tap of a quad: the input offsets of channel 0 of the group (0 where padding is read)
// and whether each reads the image.
struct Tap {
    off: vec4<u32>,
    ok: vec4<bool>,
};

// `base` is the quad's offset of channel 0 of the group; `ih`/`iw` the input row and column
// (wrapped past zero, so the bound check also catches the padding above and left).
fn tap(base: vec4<u32>, ih: vec4<u32>, iw: vec4<u32>) -> Tap {
    let ok = (ih < vec4(p.in_h)) & (iw < vec4(p.in_w));
    return Tap(base + select(vec4(0u), ih * p.in_w + iw, ok), ok);
}

fn gather(t: Tap, c: u32) -> vec4<f32> {
    let i = t.off + c;
    return select(vec4(0.0), vec4(f32(x[i.x]), f32(x[i.y]), f32(x[i.z]), f32(x[i.w])), t.ok);
}

// Where the weights of channels c..c+3 of group g start (clamped to the group's last channel).
fn rows(g: u32, c: u32, ksize: u32) -> vec4<u32> {
    let within = min(vec4(c) + vec4(0u, 1u, 2u, 3u), vec4(p.cout_g - 1u));
    return (vec4(g * p.cout_g) + within) * (p.cin_g * ksize);
}

// Stores `count` (1 to 4) channels from `o` of a 4-pixel block whose first pixel is `first`
// and whose positions are `q`, with those channels' epilogue operands `t`.
fn store_quad(a: mat4x4<f32>, o: u32, count: u32, first: u32, q: Quad, t: Terms) {
    let oi = (q.n * p.cout + o) * p.out_hw + q.oh * p.out_w + q.ow;
    store_block_pixels(a, t, count, first, oi);
}

// Channels the group has left from `c` (0 past its end).
fn room(c: u32) -> u32 {
    return select(0u, p.cout_g - c, c < p.cout_g);
}

// Where an invocation's pixel quads start reading: the offset of the group's channel 0 in
// their image, and the input row and column of tap (0, 0) (wrapped past zero).
struct Window {
    b0: vec4<u32>, b1: vec4<u32>, b2: vec4<u32>, b3: vec4<u32>,
    ih0: vec4<u32>, ih1: vec4<u32>, ih2: vec4<u32>, ih3: vec4<u32>,
    iw0: vec4<u32>, iw1: vec4<u32>, iw2: vec4<u32>, iw3: vec4<u32>,
};

fn window(first: u32, g: u32) -> Window {
    let q0 = quad(first);
    let q1 = quad(first + 4u);
    let q2 = quad(first + 8u);
    let q3 = quad(first + 12u);
    let in_hw = p.in_h * p.in_w;
    let chan0 = g * p.cin_g * in_hw;
    let image = p.cin * in_hw;
    let ph = vec4(p.ph);
    let pw = vec4(p.pw);
    return Window(
        q0.n * image + chan0, q1.n * image + chan0, q2.n * image + chan0, q3.n * image + chan0,
        q0.oh * p.sh - ph, q1.oh * p.sh - ph, q2.oh * p.sh - ph, q3.oh * p.sh - ph,
        q0.ow * p.sw - pw, q1.ow * p.sw - pw, q2.ow * p.sw - pw, q3.ow * p.sw - pw,
    );
}

// One kernel tap of the RP_Q pixel quads.
struct Taps {
    t0: Tap,
    t1: Tap,
    t2: Tap,
    t3: Tap,
};

// The tap whose input is (dy, dx) below and right of the window's origin.
fn taps(w: Window, dy: u32, dx: u32) -> Taps {
    let none = Tap(vec4(0u), vec4(false));
    var t = Taps(tap(w.b0, w.ih0 + dy, w.iw0 + dx), none, none, none);
    if (RP_Q > 1u) { t.t1 = tap(w.b1, w.ih1 + dy, w.iw1 + dx); }
    if (RP_Q > 2u) {
        t.t2 = tap(w.b2, w.ih2 + dy, w.iw2 + dx);
        t.t3 = tap(w.b3, w.ih3 + dy, w.iw3 + dx);
    }
    return t;
}

// The activations of the group channel whose plane starts `xc` values past channel 0, under
// one tap.
fn pixels(t: Taps, xc: u32) -> Pixels {
    var xs = Pixels(gather(t.t0, xc), vec4<f32>(), vec4<f32>(), vec4<f32>());
    if (RP_Q > 1u) { xs.x1 = gather(t.t1, xc); }
    if (RP_Q > 2u) {
        xs.x2 = gather(t.t2, xc);
        xs.x3 = gather(t.t3, xc);
    }
    return xs;
}
