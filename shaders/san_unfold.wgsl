// nn.Unfold(k, dilation 1, padding 0, stride s): out[n, c*k*k + a*k + b, l] =
// x[n, c, lh*s + a, lw*s + b] with l = lh * Lw + lw.

struct Params {
    total: u32,
    height: u32,
    width: u32,
    kernel: u32,
    stride: u32,
    out_width: u32,   // Lw
    positions: u32,   // Lh * Lw
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let l = i % p.positions;
    let t = i / p.positions;
    let taps = p.kernel * p.kernel;
    let j = t % taps;
    let plane = (t / taps) * p.height * p.width;
    let row = (l / p.out_width) * p.stride + j / p.kernel;
    let col = (l % p.out_width) * p.stride + j % p.kernel;
    y[i] = Elem(f32(x[plane + row * p.width + col]));
}
