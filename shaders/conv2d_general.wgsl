// Any 2-D convolution (PyTorch Conv2d: cross-correlation, zero padding, weights
// [Cout, Cin/groups, kh, kw]; any kernel, stride, padding, dilation and groups) as an implicit
// GEMM, with the fused epilogue v = conv + bias; v = v*scale + shift; v = act(v);
// v = post_act(v + residual).
//
// One invocation owns 4·RO_G output channels of one group × 4·RP_Q consecutive output pixels
// (flattened over images, rows and columns), accumulated as mat4x4 blocks like
// `conv2d_gemm.wgsl`. For each kernel tap it works out once which input pixel each output pixel
// reads (or that it reads the zero padding), then walks the group's input channels: per
// channel 4·RP_Q activation loads and 4·RO_G weight loads feed 16·RO_G·RP_Q FMAs. Workgroups
// are pixel blocks (x, spilling into z) × (group, channel block) (y), so weight addresses are
// uniform within a workgroup.
//
// The `if`s on RO_G and RP_Q fold away once the pipeline is specialized. Channels and
// pixels past the end inside a tile read clamped addresses and are never stored. Absent
// epilogue operands are bound to the weights and never read (`flags` says which are present).

override RO_G: u32 = 4u;   // output channels per invocation / 4: 1, 2, 4 or 8
override RP_Q: u32 = 4u;   // output pixels per invocation / 4: 1, 2 or 4

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
    return select(vec4(0.0), vec4(x[i.x], x[i.y], x[i.z], x[i.w]), t.ok);
}

// Where the weights of channels c..c+3 of group g start (clamped to the group's last channel).
fn rows(g: u32, c: u32, ksize: u32) -> vec4<u32> {
    let within = min(vec4(c) + vec4(0u, 1u, 2u, 3u), vec4(p.cout_g - 1u));
    return (vec4(g * p.cout_g) + within) * (p.cin_g * ksize);
}

// Stores a 4-channel × 4-pixel block: `o` is the absolute first channel, `room` how many
// channels the group has left from it, `first` the block's first pixel and `q` where it is.
fn store_block(a: mat4x4<f32>, o: u32, room: u32, first: u32, q: Quad) {
    let count = min(room, 4u);
    if (count == 0u) {
        return;
    }
    let t = terms(vec4(o) + min(vec4(0u, 1u, 2u, 3u), vec4(count - 1u)));
    let oi = (q.n * p.cout + o) * p.out_hw + q.oh * p.out_w + q.ow;
    if (first < p.pixels) { store_pixel(pre_residual(a[0], t), count, oi.x); }
    if (first + 1u < p.pixels) { store_pixel(pre_residual(a[1], t), count, oi.y); }
    if (first + 2u < p.pixels) { store_pixel(pre_residual(a[2], t), count, oi.z); }
    if (first + 3u < p.pixels) { store_pixel(pre_residual(a[3], t), count, oi.w); }
}

// Channels the group has left from `c` (0 past its end).
fn room(c: u32) -> u32 {
    return select(0u, p.cout_g - c, c < p.cout_g);
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
    let g = wid.y / p.blocks;
    let c0 = (wid.y - g * p.blocks) * (4u * RO_G);   // first channel within the group
    let o0 = g * p.cout_g + c0;

    let q0 = quad(first);
    let q1 = quad(first + 4u);
    let q2 = quad(first + 8u);
    let q3 = quad(first + 12u);
    let in_hw = p.in_h * p.in_w;
    let chan0 = g * p.cin_g * in_hw;   // the group's first input channel
    let b0 = q0.n * (p.cin * in_hw) + chan0;
    let b1 = q1.n * (p.cin * in_hw) + chan0;
    let b2 = q2.n * (p.cin * in_hw) + chan0;
    let b3 = q3.n * (p.cin * in_hw) + chan0;
    let ih0 = q0.oh * p.sh - vec4(p.ph);
    let ih1 = q1.oh * p.sh - vec4(p.ph);
    let ih2 = q2.oh * p.sh - vec4(p.ph);
    let ih3 = q3.oh * p.sh - vec4(p.ph);
    let iw0 = q0.ow * p.sw - vec4(p.pw);
    let iw1 = q1.ow * p.sw - vec4(p.pw);
    let iw2 = q2.ow * p.sw - vec4(p.pw);
    let iw3 = q3.ow * p.sw - vec4(p.pw);

    // Weight offsets of each channel's (input channel 0, tap 0).
    let ksize = p.kh * p.kw;
    let w0 = rows(g, c0, ksize);
    let w1 = rows(g, c0 + 4u, ksize);
    let w2 = rows(g, c0 + 8u, ksize);
    let w3 = rows(g, c0 + 12u, ksize);
    let w4 = rows(g, c0 + 16u, ksize);
    let w5 = rows(g, c0 + 20u, ksize);
    let w6 = rows(g, c0 + 24u, ksize);
    let w7 = rows(g, c0 + 28u, ksize);

    var r0 = zero_row(); var r1 = zero_row(); var r2 = zero_row(); var r3 = zero_row();
    var r4 = zero_row(); var r5 = zero_row(); var r6 = zero_row(); var r7 = zero_row();
    for (var ka = 0u; ka < p.kh; ka++) {
        let dy = ka * p.dh;
        for (var kb = 0u; kb < p.kw; kb++) {
            let dx = kb * p.dw;
            let t0 = tap(b0, ih0 + dy, iw0 + dx);
            let t1 = tap(b1, ih1 + dy, iw1 + dx);
            let t2 = tap(b2, ih2 + dy, iw2 + dx);
            let t3 = tap(b3, ih3 + dy, iw3 + dx);
            let k = ka * p.kw + kb;
            for (var c = 0u; c < p.cin_g; c++) {
                let xc = c * in_hw;
                var xs = Pixels(gather(t0, xc), vec4<f32>(), vec4<f32>(), vec4<f32>());
                if (RP_Q > 1u) { xs.x1 = gather(t1, xc); }
                if (RP_Q > 2u) {
                    xs.x2 = gather(t2, xc);
                    xs.x3 = gather(t3, xc);
                }
                let wc = c * ksize + k;
                r0 = accumulate(r0, weights(w0 + wc), xs);
                if (RO_G > 1u) { r1 = accumulate(r1, weights(w1 + wc), xs); }
                if (RO_G > 2u) {
                    r2 = accumulate(r2, weights(w2 + wc), xs);
                    r3 = accumulate(r3, weights(w3 + wc), xs);
                }
                if (RO_G > 4u) {
                    r4 = accumulate(r4, weights(w4 + wc), xs);
                    r5 = accumulate(r5, weights(w5 + wc), xs);
                    r6 = accumulate(r6, weights(w6 + wc), xs);
                    r7 = accumulate(r7, weights(w7 + wc), xs);
                }
            }
        }
    }

    // The stores and epilogue are written once, for the block a loop picks: unrolled over all
    // blocks they would multiply the pipeline's compile time by RO_G * RP_Q (the loop bound is
    // a parameter, so the compiler keeps the loop).
    for (var t = 0u; t < p.tile_blocks; t++) {
        let cq = t / RP_Q;
        let q = t - cq * RP_Q;
        var r = r0;
        switch (cq) {
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
        store_block(block(r, q), o0 + 4u * cq, room(c0 + 4u * cq), px, quad(px));
    }
}
