// MaxPool2d (AVERAGE false) and AvgPool2d (AVERAGE true), floor mode, one invocation per
// output. The window is clamped to the plane before the first read: max pooling skips padded
// taps, so it needs no -inf sentinel (the shape rule keeps padding <= kernel/2, which leaves
// every window at least one real pixel); average pooling sums the clamped window and divides,
// as PyTorch does, by its size, or with count_include_pad by the window clipped to the padded
// extent (in + padding).

override AVERAGE: bool = false;

struct Params {
    total: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
    count_include_pad: u32,
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
    let ow = i % p.out_w;
    let rest = i / p.out_w;
    let oh = rest % p.out_h;
    let plane = rest / p.out_h;
    let hs = i32(oh * p.stride) - i32(p.padding);
    let ws = i32(ow * p.stride) - i32(p.padding);
    let h0 = max(hs, 0);
    let w0 = max(ws, 0);
    let h1 = min(hs + i32(p.kernel), i32(p.in_h));
    let w1 = min(ws + i32(p.kernel), i32(p.in_w));
    let base = plane * p.in_h * p.in_w;
    var m = f32(x[base + u32(h0) * p.in_w + u32(w0)]);
    var sum = 0.0;
    for (var h = u32(h0); h < u32(h1); h++) {
        for (var w = u32(w0); w < u32(w1); w++) {
            let v = f32(x[base + h * p.in_w + w]);
            m = max(m, v);
            sum += v;
        }
    }
    if (!AVERAGE) {
        y[i] = Elem(m);
        return;
    }
    var count = (h1 - h0) * (w1 - w0);
    if (p.count_include_pad != 0u) {
        let he_pad = min(hs + i32(p.kernel), i32(p.in_h + p.padding));
        let we_pad = min(ws + i32(p.kernel), i32(p.in_w + p.padding));
        count = (he_pad - hs) * (we_pad - ws);
    }
    y[i] = Elem(sum / f32(count));
}
