// Coordinate-attention gates: a = sigmoid(b[part, c] + sum_m W[part, c, m] * f[n, m, from + j])
// for part 0 (conv_h on the H rows of f) and part 1 (conv_w on the W rows after them), one
// role each in one dispatch; written packed per image as a_h [C,H] then a_w [C,W].
// f is [N, mip, H+W, 1]; weight [2, C, mip]; bias [2, C].
// An invocation computes 8 channels x 8 positions: per m it loads 8 f values and 8 weights
// for 64 products (loads, not arithmetic, are what a CPU device pays for). Loads past an edge
// are clamped; their results are not stored.
// The 8 channels are spelled out as named variables on purpose: lavapipe does not unroll loops,
// so accumulators in an indexed array would live in memory (the loop form of triplet_gates.wgsl
// costs 2.5x its unrolled form there).

// Outputs j0.. j0+3 of one channel's row starting at `at`, those inside the map.
fn put(at: u32, j0: u32, count: u32, v: vec4<f32>) {
    let g = 1.0 / (1.0 + exp(-v));
    if (j0 < count) { y[at + j0] = Elem(g.x); }
    if (j0 + 1u < count) { y[at + j0 + 1u] = Elem(g.y); }
    if (j0 + 2u < count) { y[at + j0 + 2u] = Elem(g.z); }
    if (j0 + 3u < count) { y[at + j0 + 3u] = Elem(g.w); }
}

// The eight positions of one channel from j0 on.
fn put8(c: u32, at: u32, j0: u32, count: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (c < p.c) {
        put(at, j0, count, lo);
        put(at, j0 + 4u, count, hi);
    }
}

fn f4(base: u32, js: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(f32(f[base + js.x]), f32(f[base + js.y]), f32(f[base + js.z]), f32(f[base + js.w]));
}

@compute @workgroup_size(GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = group_flat_id(gid, nwg);
    var r = 0u;
    if (t >= p.role[1].head.x) {
        r = 1u;
    }
    let role = p.role[r];
    let o = t - role.head.x;
    if (o >= p.n * role.head.y) {
        return;
    }
    let n = o / role.head.y;
    let tile = o % role.head.y;
    let count = role.head.w;
    let c0 = (tile / role.head.z) * 8u;
    let j0 = (tile % role.head.z) * 8u;
    let last = vec4<u32>(count - 1u);
    let first = vec4<u32>(role.offs.x);
    let js_lo = min(vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u), last) + first;
    let js_hi = min(vec4<u32>(j0) + vec4<u32>(4u, 5u, 6u, 7u), last) + first;
    let wb = role.offs.z;
    let bb = role.offs.w;
    let top = p.c - 1u;
    let ch0 = min(c0 + 0u, top);
    let ch1 = min(c0 + 1u, top);
    let ch2 = min(c0 + 2u, top);
    let ch3 = min(c0 + 3u, top);
    let ch4 = min(c0 + 4u, top);
    let ch5 = min(c0 + 5u, top);
    let ch6 = min(c0 + 6u, top);
    let ch7 = min(c0 + 7u, top);
    var lo0 = vec4<f32>(f32(bias[bb + ch0]));
    var hi0 = lo0;
    var lo1 = vec4<f32>(f32(bias[bb + ch1]));
    var hi1 = lo1;
    var lo2 = vec4<f32>(f32(bias[bb + ch2]));
    var hi2 = lo2;
    var lo3 = vec4<f32>(f32(bias[bb + ch3]));
    var hi3 = lo3;
    var lo4 = vec4<f32>(f32(bias[bb + ch4]));
    var hi4 = lo4;
    var lo5 = vec4<f32>(f32(bias[bb + ch5]));
    var hi5 = lo5;
    var lo6 = vec4<f32>(f32(bias[bb + ch6]));
    var hi6 = lo6;
    var lo7 = vec4<f32>(f32(bias[bb + ch7]));
    var hi7 = lo7;
    for (var m = 0u; m < p.mip; m++) {
        let fr = (n * p.mip + m) * p.rows;
        let f_lo = f4(fr, js_lo);
        let f_hi = f4(fr, js_hi);
        let k0 = f32(weight[wb + ch0 * p.mip + m]);
        lo0 += k0 * f_lo;
        hi0 += k0 * f_hi;
        let k1 = f32(weight[wb + ch1 * p.mip + m]);
        lo1 += k1 * f_lo;
        hi1 += k1 * f_hi;
        let k2 = f32(weight[wb + ch2 * p.mip + m]);
        lo2 += k2 * f_lo;
        hi2 += k2 * f_hi;
        let k3 = f32(weight[wb + ch3 * p.mip + m]);
        lo3 += k3 * f_lo;
        hi3 += k3 * f_hi;
        let k4 = f32(weight[wb + ch4 * p.mip + m]);
        lo4 += k4 * f_lo;
        hi4 += k4 * f_hi;
        let k5 = f32(weight[wb + ch5 * p.mip + m]);
        lo5 += k5 * f_lo;
        hi5 += k5 * f_hi;
        let k6 = f32(weight[wb + ch6 * p.mip + m]);
        lo6 += k6 * f_lo;
        hi6 += k6 * f_hi;
        let k7 = f32(weight[wb + ch7 * p.mip + m]);
        lo7 += k7 * f_lo;
        hi7 += k7 * f_hi;
    }
    let at = n * p.c * p.rows + role.offs.y;
    put8(c0 + 0u, at + (c0 + 0u) * count, j0, count, lo0, hi0);
    put8(c0 + 1u, at + (c0 + 1u) * count, j0, count, lo1, hi1);
    put8(c0 + 2u, at + (c0 + 2u) * count, j0, count, lo2, hi2);
    put8(c0 + 3u, at + (c0 + 3u) * count, j0, count, lo3, hi3);
    put8(c0 + 4u, at + (c0 + 4u) * count, j0, count, lo4, hi4);
    put8(c0 + 5u, at + (c0 + 5u) * count, j0, count, lo5, hi5);
    put8(c0 + 6u, at + (c0 + 6u) * count, j0, count, lo6, hi6);
    put8(c0 + 7u, at + (c0 + 7u) * count, j0, count, lo7, hi7);
}
