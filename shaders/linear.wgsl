// y[n,o] = act(sum_f x[n,f] * w[o,f] + b[o]). An invocation computes 4 consecutive outputs of
// ROWS rows of x over every feature, in registers: each x value it loads serves 4 products and
// each w value ROWS, and there is no workgroup reduction (on a CPU device each barrier is a
// coroutine switch, which made the former 64-thread tree per output cost 17 ms for
// MobileNetV2's classifier). ROWS is 4 for batches of 4 or more, else 1, so a single image
// loads no clamped rows. Workgroups are GROUP wide (common.wgsl). Rows of w past the last
// output, and rows of x past the last row, are clamped and never stored.

override ROWS: u32 = 1u;   // 1 or 4

fn put(n: u32, o: u32, v: f32) {
    if (o < p.out_features) {
        var out = v;
        if (p.has_bias == 1u) {
            out += f32(b[o]);
        }
        y[n * p.out_features + o] = Elem(activate(out, p.act));
    }
}

fn put4(n: u32, o0: u32, acc: vec4<f32>) {
    if (n < p.rows) {
        put(n, o0, acc.x);
        put(n, o0 + 1u, acc.y);
        put(n, o0 + 2u, acc.z);
        put(n, o0 + 3u, acc.w);
    }
}

@compute @workgroup_size(GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = group_flat_id(gid, nwg);
    let quads = (p.out_features + 3u) / 4u;
    let row_blocks = (p.rows + ROWS - 1u) / ROWS;
    if (t >= row_blocks * quads) {
        return;
    }
    let n0 = (t / quads) * ROWS;
    let o0 = (t % quads) * 4u;
    let last = vec4<u32>(p.out_features - 1u);
    let w_rows = min(vec4<u32>(o0) + vec4<u32>(0u, 1u, 2u, 3u), last) * p.features;
    let x_rows = min(vec4<u32>(n0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.rows - 1u)) * p.features;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var f = 0u; f < p.features; f++) {
        let ws = vec4<f32>(f32(w[w_rows.x + f]), f32(w[w_rows.y + f]), f32(w[w_rows.z + f]), f32(w[w_rows.w + f]));
        acc0 = fma(vec4<f32>(f32(x[x_rows.x + f])), ws, acc0);
        if (ROWS > 1u) {
            acc1 = fma(vec4<f32>(f32(x[x_rows.y + f])), ws, acc1);
            acc2 = fma(vec4<f32>(f32(x[x_rows.z + f])), ws, acc2);
            acc3 = fma(vec4<f32>(f32(x[x_rows.w + f])), ws, acc3);
        }
    }
    put4(n0, o0, acc0);
    if (ROWS > 1u) {
        put4(n0 + 1u, o0, acc1);
        put4(n0 + 2u, o0, acc2);
        put4(n0 + 3u, o0, acc3);
    }
}
