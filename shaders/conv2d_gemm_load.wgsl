// How the 1×1 convolution kernels load their activations (after conv2d_gemm_io.wgsl): x as
// it is. conv2d_gemm_load_gated.wgsl is the form for Coordinate Attention's input.

// Channel-0 offsets in x of an invocation's pixel quads.
struct Quads {
    i0: vec4<u32>,
    i1: vec4<u32>,
    i2: vec4<u32>,
    i3: vec4<u32>,
};

fn quads(first: u32) -> Quads {
    let plane = p.cin * p.out_hw;
    return Quads(
        offsets(first, plane),
        offsets(first + 4u, plane),
        offsets(first + 8u, plane),
        offsets(first + 12u, plane),
    );
}

// The activations of input channel c at the invocation's RP_Q pixel quads.
fn pixels(xi: Quads, c: u32) -> Pixels {
    let xc = c * p.out_hw;
    var xs = Pixels(gather(xi.i0 + xc), vec4<f32>(), vec4<f32>(), vec4<f32>());
    if (RP_Q > 1u) { xs.x1 = gather(xi.i1 + xc); }
    if (RP_Q > 2u) {
        xs.x2 = gather(xi.i2 + xc);
        xs.x3 = gather(xi.i3 + xc);
    }
    return xs;
}
