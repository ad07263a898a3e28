// SAN patchwise gather, Unfold(k)(ReflectionPad2d(k/2)(x)) as [N, C*k*k, 1, H*W] in one pass:
// out[n, c*k*k + j, 0, h*W + w] = act(scale[ch] * x[n, c, R(h + a - k/2), R(w + b - k/2)] + shift[ch])
// with ch = c*k*k + j, or act(x[...]) without the affine part. Image n's `image` results go
// to y at n * out_image + out_offset: the whole of y, or (fused into the concatenation that
// reads them) their slot of each image of the concatenation.

struct Params {
    total: u32,
    height: u32,
    width: u32,
    kernel: u32,
    out_channels: u32,  // C * k * k
    act: u32,
    affine: u32,        // 0: scale and shift are placeholder bindings and are not read
    image: u32,         // C * k * k * H * W
    out_image: u32,
    out_offset: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read> scale: array<Elem>;
@group(0) @binding(3) var<storage, read> shift: array<Elem>;
@group(0) @binding(4) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let hw = p.height * p.width;
    let pos = i % hw;
    let t = i / hw;
    let taps = p.kernel * p.kernel;
    let j = t % taps;
    let ch = t % p.out_channels;
    let plane = (t / taps) * hw;
    let half = i32(p.kernel / 2u);
    let h = reflect_index(i32(pos / p.width + j / p.kernel) - half, i32(p.height));
    let w = reflect_index(i32(pos % p.width + j % p.kernel) - half, i32(p.width));
    var v = f32(x[plane + u32(h) * p.width + u32(w)]);
    if (p.affine == 1u) {
        v = f32(scale[ch]) * v + f32(shift[ch]);
    }
    let n = i / p.image;
    y[n * p.out_image + p.out_offset + (i - n * p.image)] = Elem(activate(v, p.act));
}
