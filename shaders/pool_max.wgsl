// MaxPool2d, floor mode: one invocation per output. Padded taps are skipped, and the window is
// clamped to the plane before the first read, so no -inf sentinel is needed (the shape rule
// keeps padding <= kernel/2, which leaves every window at least one real pixel).

struct Params {
    total: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let ow = i % p.out_w;
    let rest = i / p.out_w;
    let oh = rest % p.out_h;
    let plane = rest / p.out_h;
    let hs = i32(oh * p.stride) - i32(p.padding);
    let ws = i32(ow * p.stride) - i32(p.padding);
    let h0 = u32(max(hs, 0));
    let w0 = u32(max(ws, 0));
    let h1 = u32(min(hs + i32(p.kernel), i32(p.in_h)));
    let w1 = u32(min(ws + i32(p.kernel), i32(p.in_w)));
    let base = plane * p.in_h * p.in_w;
    var m = x[base + h0 * p.in_w + w0];
    for (var h = h0; h < h1; h++) {
        for (var w = w0; w < w1; w++) {
            m = max(m, x[base + h * p.in_w + w]);
        }
    }
    y[i] = m;
}
