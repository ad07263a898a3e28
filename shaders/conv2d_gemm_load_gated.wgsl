// How the 1×1 convolution kernels load their activations (after conv2d_gemm_io.wgsl) when x
// is Coordinate Attention's input: each activation x[n, c, h, w] is taken as
// (x · a_w[n, c, w]) · a_h[n, c, h], the official order of coord_apply.wgsl, so the attended
// tensor is never written. The gates come packed per image as coord_gates writes them, a_h
// [C, H] then a_w [C, W] (C the conv's input channels), and are read through a uniform
// binding: on a CPU device a uniform array is gathered in one instruction per 8 lanes, where a
// storage load goes lane by lane, so the two gate reads cost a fraction of the load of x they
// scale (docs/performance.md has the timings). The host binds the gates' first
// 64 KiB (`UNIFORM_WINDOW_BYTES`), which must hold every image's.

@group(0) @binding(8) var<uniform> gates: array<vec4<f32>, 4096>;

// Channel-0 offsets of an invocation's pixel quads: in x (`i`), and of their gates a_h (`h`)
// and a_w (`w`); and H, the channel stride of a_h.
struct Quads {
    i0: vec4<u32>,
    i1: vec4<u32>,
    i2: vec4<u32>,
    i3: vec4<u32>,
    h0: vec4<u32>,
    h1: vec4<u32>,
    h2: vec4<u32>,
    h3: vec4<u32>,
    w0: vec4<u32>,
    w1: vec4<u32>,
    w2: vec4<u32>,
    w3: vec4<u32>,
    height: u32,
};

// Where the gates of pixels first..first+3 (clamped to the last pixel) start: a_h, then a_w.
fn gate_offsets(first: u32) -> array<vec4<u32>, 2> {
    let px = min(vec4(first) + vec4(0u, 1u, 2u, 3u), vec4(p.pixels - 1u));
    let n = px / p.out_hw;
    let at = px - n * p.out_hw;
    let height = p.out_hw / p.width;
    let row = at / p.width;
    let image = n * p.cin * (height + p.width);
    return array(image + row, image + p.cin * height + (at - row * p.width));
}

fn quads(first: u32) -> Quads {
    let plane = p.cin * p.out_hw;
    let g0 = gate_offsets(first);
    let g1 = gate_offsets(first + 4u);
    let g2 = gate_offsets(first + 8u);
    let g3 = gate_offsets(first + 12u);
    return Quads(
        offsets(first, plane),
        offsets(first + 4u, plane),
        offsets(first + 8u, plane),
        offsets(first + 12u, plane),
        g0[0], g1[0], g2[0], g3[0],
        g0[1], g1[1], g2[1], g3[1],
        p.out_hw / p.width,
    );
}

fn window(i: vec4<u32>) -> vec4<f32> {
    return vec4(gates[i.x >> 2u][i.x & 3u], gates[i.y >> 2u][i.y & 3u],
        gates[i.z >> 2u][i.z & 3u], gates[i.w >> 2u][i.w & 3u]);
}

// One quad of channel c: x at `i`, its gates at `h` and `w` (channel-0 offsets; a_h's
// channels are `height` apart).
fn gated(i: vec4<u32>, h: vec4<u32>, w: vec4<u32>, height: u32, c: u32) -> vec4<f32> {
    return (gather(i + c * p.out_hw) * window(w + c * p.width)) * window(h + c * height);
}

// The gated activations of input channel c at the invocation's RP_Q pixel quads.
fn pixels(xi: Quads, c: u32) -> Pixels {
    var xs = Pixels(gated(xi.i0, xi.h0, xi.w0, xi.height, c), vec4<f32>(), vec4<f32>(), vec4<f32>());
    if (RP_Q > 1u) { xs.x1 = gated(xi.i1, xi.h1, xi.w1, xi.height, c); }
    if (RP_Q > 2u) {
        xs.x2 = gated(xi.i2, xi.h2, xi.w2, xi.height, c);
        xs.x3 = gated(xi.i3, xi.h3, xi.w3, xi.height, c);
    }
    return xs;
}
