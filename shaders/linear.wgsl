// y[n,o] = act(sum_f x[n,f] * w[o,f] + b[o]). An invocation computes 4 consecutive outputs of
// one row of x over every feature, in registers: each x value it loads serves 4 products, and
// there is no workgroup reduction (on a CPU device each barrier is a coroutine switch, which
// made the former 64-thread tree per output cost 17 ms for MobileNetV2's classifier).
// Workgroups are GROUP wide (common.wgsl). Rows of w past the last output are clamped and never
// stored.

struct Params {
    rows: u32,      // N
    features: u32,
    out_features: u32,
    act: u32,
    has_bias: u32,  // 0: `b` is a placeholder binding and is not read
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn put(n: u32, o: u32, v: f32) {
    if (o < p.out_features) {
        var out = v;
        if (p.has_bias == 1u) {
            out += b[o];
        }
        y[n * p.out_features + o] = activate(out, p.act);
    }
}

@compute @workgroup_size(GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = group_flat_id(gid, nwg);
    let quads = (p.out_features + 3u) / 4u;
    if (t >= p.rows * quads) {
        return;
    }
    let n = t / quads;
    let o0 = (t % quads) * 4u;
    let last = vec4<u32>(p.out_features - 1u);
    let w_rows = min(vec4<u32>(o0) + vec4<u32>(0u, 1u, 2u, 3u), last) * p.features;
    let x_row = n * p.features;
    var acc = vec4<f32>(0.0);
    for (var f = 0u; f < p.features; f++) {
        let ws = vec4<f32>(w[w_rows.x + f], w[w_rows.y + f], w[w_rows.z + f], w[w_rows.w + f]);
        acc = fma(vec4<f32>(x[x_row + f]), ws, acc);
    }
    put(n, o0, acc.x);
    put(n, o0 + 1u, acc.y);
    put(n, o0 + 2u, acc.z);
    put(n, o0 + 3u, acc.w);
}
