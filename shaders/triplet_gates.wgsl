// Triplet-attention gates: for each plane (role) of the packed pools, sigmoid(bias + 2->1 K x K
// conv), stride 1, zero padding (K-1)/2, into the packed gates. One dispatch for all planes;
// role r owns the invocations [start, start + N*tiles) (starts are multiples of GROUP).
// An invocation computes a tile of 4 rows x 32 outputs along the "slide" axis. Each input row
// of the tile's receptive field is read once into a 32-wide window of registers (eight vec4)
// that slides one step per kernel column, so a tile reads 2*(K+3)*(K+31) pooled values and
// 2*4*K*K weights instead of 2*K*K of each per output: loads are what a CPU device pays for.
// The slide axis is the plane's column axis, or its row axis for planes narrower than a
// window (cw of a 7x7 map), through the strides: a pooled/gate value (row r, slide s) lies at
// r*p_row + s*p_slide, kernel tap (row u, slide v) of branch input i at w_off + i*K*K +
// u*w_row + v*w_slide.

override K: u32 = 7u;

// Small workgroups, so that a few hundred invocations still spread over every CPU thread.
const GROUP: u32 = 8u;

struct Role {
    head: vec4<u32>,   // start, tiles per image, tiles along the slide axis, bias index
    ext: vec4<u32>,    // rows, slide length, p_row, p_slide
    offs: vec4<u32>,   // offset of the max map in the pools, offset in the gates, w_off, 0
    wstr: vec4<u32>,   // w_row, w_slide, 0, 0
};

struct Params {
    n: u32,
    pooled_image: u32,
    gates_image: u32,
    roles: u32,
    role: array<Role, 3>,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pooled: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// Pooled value at slide position s of the row starting at `row` (zero outside the plane).
fn tap(row: u32, s: i32, len: i32, stride: u32) -> f32 {
    if (s < 0 || s >= len) {
        return 0.0;
    }
    return pooled[row + u32(s) * stride];
}

fn window(row: u32, s: i32, len: i32, stride: u32) -> vec4<f32> {
    return vec4<f32>(
        tap(row, s, len, stride),
        tap(row, s + 1, len, stride),
        tap(row, s + 2, len, stride),
        tap(row, s + 3, len, stride),
    );
}

// Four outputs from slide position s on, those inside the plane.
fn put(at: u32, s: u32, len: u32, stride: u32, v: vec4<f32>) {
    let g = 1.0 / (1.0 + exp(-v));
    if (s < len) { y[at + s * stride] = g.x; }
    if (s + 1u < len) { y[at + (s + 1u) * stride] = g.y; }
    if (s + 2u < len) { y[at + (s + 2u) * stride] = g.z; }
    if (s + 3u < len) { y[at + (s + 3u) * stride] = g.w; }
}

@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * GROUP;
    var r = 0u;
    for (var i = 1u; i < p.roles; i++) {
        if (t >= p.role[i].head.x) {
            r = i;
        }
    }
    let role = p.role[r];
    let o = t - role.head.x;
    if (o >= p.n * role.head.y) {
        return;
    }
    let n = o / role.head.y;
    let tile = o % role.head.y;
    let rows = role.ext.x;
    let len = i32(role.ext.y);
    let p_row = role.ext.z;
    let p_slide = role.ext.w;
    let r0 = (tile / role.head.z) * 4u;
    let s0 = i32((tile % role.head.z) * 32u);
    let pad = i32(K / 2u);
    let plane = rows * role.ext.y;

    // Accumulators a<row>_<q>: output row r0 + row, slide positions 4q..4q+3 of the tile.
    let b = vec4<f32>(bias[role.head.w]);
    var a0_0 = b; var a0_1 = b; var a0_2 = b; var a0_3 = b; var a0_4 = b; var a0_5 = b; var a0_6 = b; var a0_7 = b;
    var a1_0 = b; var a1_1 = b; var a1_2 = b; var a1_3 = b; var a1_4 = b; var a1_5 = b; var a1_6 = b; var a1_7 = b;
    var a2_0 = b; var a2_1 = b; var a2_2 = b; var a2_3 = b; var a2_4 = b; var a2_5 = b; var a2_6 = b; var a2_7 = b;
    var a3_0 = b; var a3_1 = b; var a3_2 = b; var a3_3 = b; var a3_4 = b; var a3_5 = b; var a3_6 = b; var a3_7 = b;
    for (var i = 0u; i < 2u; i++) {
        let map = n * p.pooled_image + role.offs.x + i * plane;
        let w_map = role.offs.z + i * K * K;
        // Input row r0 - pad + ir feeds kernel row ir - o of output row r0 + o.
        for (var ir = 0u; ir < K + 3u; ir++) {
            let in_row = i32(r0) - pad + i32(ir);
            if (in_row < 0 || in_row >= i32(rows)) {
                continue;
            }
            let row = map + u32(in_row) * p_row;
            let s = s0 - pad;
            var w0 = window(row, s + 0, len, p_slide);
            var w1 = window(row, s + 4, len, p_slide);
            var w2 = window(row, s + 8, len, p_slide);
            var w3 = window(row, s + 12, len, p_slide);
            var w4 = window(row, s + 16, len, p_slide);
            var w5 = window(row, s + 20, len, p_slide);
            var w6 = window(row, s + 24, len, p_slide);
            var w7 = window(row, s + 28, len, p_slide);
            for (var v = 0u; v < K; v++) {
                if (ir < K) {
                    let k = weight[w_map + (ir - 0u) * role.wstr.x + v * role.wstr.y];
                    a0_0 += k * w0; a0_1 += k * w1; a0_2 += k * w2; a0_3 += k * w3;
                    a0_4 += k * w4; a0_5 += k * w5; a0_6 += k * w6; a0_7 += k * w7;
                }
                if (ir >= 1u && ir - 1u < K) {
                    let k = weight[w_map + (ir - 1u) * role.wstr.x + v * role.wstr.y];
                    a1_0 += k * w0; a1_1 += k * w1; a1_2 += k * w2; a1_3 += k * w3;
                    a1_4 += k * w4; a1_5 += k * w5; a1_6 += k * w6; a1_7 += k * w7;
                }
                if (ir >= 2u && ir - 2u < K) {
                    let k = weight[w_map + (ir - 2u) * role.wstr.x + v * role.wstr.y];
                    a2_0 += k * w0; a2_1 += k * w1; a2_2 += k * w2; a2_3 += k * w3;
                    a2_4 += k * w4; a2_5 += k * w5; a2_6 += k * w6; a2_7 += k * w7;
                }
                if (ir >= 3u && ir - 3u < K) {
                    let k = weight[w_map + (ir - 3u) * role.wstr.x + v * role.wstr.y];
                    a3_0 += k * w0; a3_1 += k * w1; a3_2 += k * w2; a3_3 += k * w3;
                    a3_4 += k * w4; a3_5 += k * w5; a3_6 += k * w6; a3_7 += k * w7;
                }
                let next = tap(row, s + 32 + i32(v), len, p_slide);
                w0 = vec4<f32>(w0.yzw, w1.x);
                w1 = vec4<f32>(w1.yzw, w2.x);
                w2 = vec4<f32>(w2.yzw, w3.x);
                w3 = vec4<f32>(w3.yzw, w4.x);
                w4 = vec4<f32>(w4.yzw, w5.x);
                w5 = vec4<f32>(w5.yzw, w6.x);
                w6 = vec4<f32>(w6.yzw, w7.x);
                w7 = vec4<f32>(w7.yzw, next);
            }
        }
    }
    let len_u = role.ext.y;
    let s = u32(s0);
    let at = n * p.gates_image + role.offs.y + r0 * p_row;
    put(at + 0u * p_row, s + 0u, len_u, p_slide, a0_0);
    put(at + 0u * p_row, s + 4u, len_u, p_slide, a0_1);
    put(at + 0u * p_row, s + 8u, len_u, p_slide, a0_2);
    put(at + 0u * p_row, s + 12u, len_u, p_slide, a0_3);
    put(at + 0u * p_row, s + 16u, len_u, p_slide, a0_4);
    put(at + 0u * p_row, s + 20u, len_u, p_slide, a0_5);
    put(at + 0u * p_row, s + 24u, len_u, p_slide, a0_6);
    put(at + 0u * p_row, s + 28u, len_u, p_slide, a0_7);
    if (r0 + 1u < rows) {
        put(at + 1u * p_row, s + 0u, len_u, p_slide, a1_0);
        put(at + 1u * p_row, s + 4u, len_u, p_slide, a1_1);
        put(at + 1u * p_row, s + 8u, len_u, p_slide, a1_2);
        put(at + 1u * p_row, s + 12u, len_u, p_slide, a1_3);
        put(at + 1u * p_row, s + 16u, len_u, p_slide, a1_4);
        put(at + 1u * p_row, s + 20u, len_u, p_slide, a1_5);
        put(at + 1u * p_row, s + 24u, len_u, p_slide, a1_6);
        put(at + 1u * p_row, s + 28u, len_u, p_slide, a1_7);
    }
    if (r0 + 2u < rows) {
        put(at + 2u * p_row, s + 0u, len_u, p_slide, a2_0);
        put(at + 2u * p_row, s + 4u, len_u, p_slide, a2_1);
        put(at + 2u * p_row, s + 8u, len_u, p_slide, a2_2);
        put(at + 2u * p_row, s + 12u, len_u, p_slide, a2_3);
        put(at + 2u * p_row, s + 16u, len_u, p_slide, a2_4);
        put(at + 2u * p_row, s + 20u, len_u, p_slide, a2_5);
        put(at + 2u * p_row, s + 24u, len_u, p_slide, a2_6);
        put(at + 2u * p_row, s + 28u, len_u, p_slide, a2_7);
    }
    if (r0 + 3u < rows) {
        put(at + 3u * p_row, s + 0u, len_u, p_slide, a3_0);
        put(at + 3u * p_row, s + 4u, len_u, p_slide, a3_1);
        put(at + 3u * p_row, s + 8u, len_u, p_slide, a3_2);
        put(at + 3u * p_row, s + 12u, len_u, p_slide, a3_3);
        put(at + 3u * p_row, s + 16u, len_u, p_slide, a3_4);
        put(at + 3u * p_row, s + 20u, len_u, p_slide, a3_5);
        put(at + 3u * p_row, s + 24u, len_u, p_slide, a3_6);
        put(at + 3u * p_row, s + 28u, len_u, p_slide, a3_7);
    }
}
