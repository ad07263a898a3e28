// SAN Subtraction2: out[n,c,j,pos] = act(x1[n,c,centre] - x2[n,c,tap j]), the neighbour
// reflected (mode 1) or zero (mode 0) outside the map; the centre always lies inside.
// Image n's `image` results go to y at n * out_image + out_offset: the whole of y, or (fused
// into the concatenation that reads them) their slot of each image of the concatenation.

struct Params {
    total: u32,
    height: u32,
    width: u32,
    out_width: u32,
    out_plane: u32,  // Ho * Wo
    kernel: u32,
    stride: u32,
    dilation: u32,
    pad: u32,
    centre: u32,     // ((k - 1) / 2) * dilation
    mode: u32,
    act: u32,
    image: u32,      // C * k² * Ho * Wo
    out_image: u32,
    out_offset: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x1: array<Elem>;
@group(0) @binding(2) var<storage, read> x2: array<Elem>;
@group(0) @binding(3) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let pos = i % p.out_plane;
    let t = i / p.out_plane;
    let taps = p.kernel * p.kernel;
    let j = t % taps;
    let plane = (t / taps) * p.height * p.width;
    let oh = pos / p.out_width;
    let ow = pos % p.out_width;
    let hc = oh * p.stride + p.centre - p.pad;
    let wc = ow * p.stride + p.centre - p.pad;
    let hin = i32(oh * p.stride + (j / p.kernel) * p.dilation) - i32(p.pad);
    let win = i32(ow * p.stride + (j % p.kernel) * p.dilation) - i32(p.pad);
    let h = i32(p.height);
    let w = i32(p.width);
    var neighbour = 0.0;
    if (p.mode == 1u) {
        neighbour = f32(x2[plane + u32(reflect_index(hin, h) * w + reflect_index(win, w))]);
    } else if (hin >= 0 && hin < h && win >= 0 && win < w) {
        neighbour = f32(x2[plane + u32(hin * w + win)]);
    }
    let n = i / p.image;
    let at = n * p.out_image + p.out_offset + (i - n * p.image);
    y[at] = Elem(activate(f32(x1[plane + hc * p.width + wc]) - neighbour, p.act));
}
