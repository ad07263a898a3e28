// Depthwise 3×3 convolution (groups == Cin == Cout, dilation 1, the same stride S ∈ {1, 2}
// along both axes, any zero padding) with the fused epilogue (conv2d_epilogue.wgsl).
//
// One invocation computes a strip of `rows` output rows × 4 adjacent output columns of one
// channel, sliding down the strip: the input rows it read for one output row stay in registers
// for the next, so each output row costs one new input row (S = 1: 6 loads) or two (S = 2:
// 2 × 9 loads) for its 36 FMAs, and the 9 weights are loaded once. Consecutive invocations take
// consecutive column quads of the same rows. Every invocation runs the same number of rows;
// rows and columns past the output are computed from clamped, zero-masked reads and not stored.
//
// The pool hooks `pool_row` and `pool_columns` come from conv2d_depthwise_pool.wgsl (Coordinate
// Attention's means, partly summed in the epilogue) or conv2d_depthwise_nopool.wgsl (nothing).

override S: u32 = 1u;   // stride, 1 or 2

struct Params {
    lanes: u32,     // N * C * quads * strips
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    quads: u32,     // ceil(out_w / 4)
    strips: u32,    // ceil(out_h / rows)
    rows: u32,      // output rows per invocation
    ph: u32,
    pw: u32,
    flags: u32,     // 1 = bias, 2 = scale/shift, 4 = residual
    act: u32,       // Activation::code, after bias and affine
    post_act: u32,  // Activation::code, after the residual add
};

// The input columns of a quad: S = 1 reads columns 0..5 of `lo`/`hi`, S = 2 columns 0..8
// (`last` is column 8). Offsets are clamped to column 0 where the padding is read.
struct Cols {
    lo: vec4<u32>,
    hi: vec4<u32>,
    last: u32,
    lo_ok: vec4<bool>,
    hi_ok: vec4<bool>,
    last_ok: bool,
};

// Input values of one row at the quad's columns, zero outside the image.
struct Row {
    lo: vec4<f32>,
    hi: vec4<f32>,
    last: f32,
};

fn columns(iw: u32) -> Cols {
    let lo = vec4(iw) + vec4(0u, 1u, 2u, 3u);
    let hi = lo + 4u;
    let last = iw + 8u;
    let w = vec4(p.in_w);
    let lo_ok = lo < w;
    let hi_ok = hi < w;
    let last_ok = last < p.in_w;
    return Cols(
        select(vec4(0u), lo, lo_ok),
        select(vec4(0u), hi, hi_ok),
        select(0u, last, last_ok),
        lo_ok,
        hi_ok,
        last_ok,
    );
}

// Row `ih` (wrapped past zero above the image) of the plane starting at `plane`.
fn load_row(plane: u32, ih: u32, c: Cols) -> Row {
    var r = Row(vec4<f32>(), vec4<f32>(), 0.0);
    if (ih >= p.in_h) {
        return r;
    }
    let b = plane + ih * p.in_w;
    r.lo = select(vec4(0.0), vec4(f32(x[b + c.lo.x]), f32(x[b + c.lo.y]), f32(x[b + c.lo.z]), f32(x[b + c.lo.w])), c.lo_ok);
    if (S == 1u) {
        let v = vec4(f32(x[b + c.hi.x]), f32(x[b + c.hi.y]), 0.0, 0.0);
        r.hi = select(vec4(0.0), v, c.hi_ok);
    } else {
        let v = vec4(f32(x[b + c.hi.x]), f32(x[b + c.hi.y]), f32(x[b + c.hi.z]), f32(x[b + c.hi.w]));
        r.hi = select(vec4(0.0), v, c.hi_ok);
        r.last = select(0.0, f32(x[b + c.last]), c.last_ok);
    }
    return r;
}

// The contribution of one input row through one kernel row `k` to the quad's 4 outputs.
fn taps(r: Row, k: vec3<f32>) -> vec4<f32> {
    if (S == 1u) {
        let t1 = vec4(r.lo.yzw, r.hi.x);
        let t2 = vec4(r.lo.zw, r.hi.xy);
        return fma(vec4(k.x), r.lo, fma(vec4(k.y), t1, vec4(k.z) * t2));
    }
    let t0 = vec4(r.lo.xz, r.hi.xz);
    let t1 = vec4(r.lo.yw, r.hi.yw);
    let t2 = vec4(r.lo.z, r.hi.xz, r.last);
    return fma(vec4(k.x), t0, fma(vec4(k.y), t1, vec4(k.z) * t2));
}

// Stores output row `oh` at columns ow..ow+3 of the plane starting at `plane`; returns the
// values stored, zero where nothing was (past the output's edges).
fn store_row(v: vec4<f32>, plane: u32, oh: u32, ow: u32) -> vec4<f32> {
    var stored = vec4(0.0);
    if (oh >= p.out_h) {
        return stored;
    }
    let b = plane + oh * p.out_w + ow;
    for (var j = 0u; j < 4u; j++) {
        if (ow + j < p.out_w) {
            stored[j] = post_residual(v[j], b + j);
            y[b + j] = Elem(stored[j]);
        }
    }
    return stored;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.lanes) {
        return;
    }
    let quad = i % p.quads;
    var r = i / p.quads;
    let strip = r % p.strips;
    let nc = r / p.strips;   // image * channels + channel
    let ch = nc % p.channels;
    let oh0 = strip * p.rows;
    let ow = quad * 4u;

    let wb = ch * 9u;
    let k0 = vec3(f32(wt[wb]), f32(wt[wb + 1u]), f32(wt[wb + 2u]));
    let k1 = vec3(f32(wt[wb + 3u]), f32(wt[wb + 4u]), f32(wt[wb + 5u]));
    let k2 = vec3(f32(wt[wb + 6u]), f32(wt[wb + 7u]), f32(wt[wb + 8u]));
    let t = splat_terms(ch);
    let cols = columns(ow * S - p.pw);
    let plane = nc * p.in_h * p.in_w;
    let out_plane = nc * p.out_h * p.out_w;
    // Input row of kernel row 0 for output row oh0 (wrapped past zero in the top padding).
    let ih0 = oh0 * S - p.ph;

    var top = load_row(plane, ih0, cols);
    var mid = Row(vec4<f32>(), vec4<f32>(), 0.0);
    if (S == 1u) {
        mid = load_row(plane, ih0 + 1u, cols);
    }
    // Column sums of the strip, for the pool hooks (conv2d_depthwise_pool.wgsl).
    var columns_sum = vec4(0.0);
    for (var rr = 0u; rr < p.rows; rr++) {
        var v: vec4<f32>;
        if (S == 1u) {
            let bottom = load_row(plane, ih0 + rr + 2u, cols);
            v = taps(top, k0) + taps(mid, k1) + taps(bottom, k2);
            top = mid;
            mid = bottom;
        } else {
            let ih = ih0 + 2u * rr;
            let middle = load_row(plane, ih + 1u, cols);
            let bottom = load_row(plane, ih + 2u, cols);
            v = taps(top, k0) + taps(middle, k1) + taps(bottom, k2);
            top = bottom;
        }
        let stored = store_row(pre_residual(v, t), out_plane, oh0 + rr, ow);
        pool_row(nc, oh0 + rr, quad, stored);
        columns_sum += stored;
    }
    pool_columns(nc, strip, ow, columns_sum);
}
