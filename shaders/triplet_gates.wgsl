// Triplet-attention gates: for each plane (role) of the packed pools, sigmoid(bias + 2->1 K x K
// conv), stride 1, zero padding (K-1)/2, into the packed gates. One dispatch for all planes;
// role r owns the invocations [start, start + N*tiles) (starts are multiples of GROUP, so a
// workgroup lies in one role and the role, and with it every weight index, is uniform across
// it: a CPU device then loads each weight once per workgroup, not once per lane).
// An invocation computes a tile of 2 rows x SLIDE = 16 outputs along the "slide" axis. Each
// of the K + 1 input rows of its receptive field is read once into a 16-wide window that slides
// one step per kernel column (one new value per step) and feeds both output rows: a row costs
// 16 + K - 1 pooled loads for 2*16*K products. Loads, not arithmetic, are what a CPU device
// pays for.
// The window and the accumulators are named vec4s, not arrays: lavapipe does not unroll loops,
// so an indexed array would live in memory (2x the time of this form). The tile stays this
// small because Chromium's SwiftShader crashes its GPU process compiling larger hand-written
// tiles (4 rows x 32 did).
// The slide axis is the plane's column axis, or its row axis for planes narrower than a
// window (cw of a 7x7 map), through the strides: a pooled/gate value (row r, slide s) lies at
// r*p_row + s*p_slide, kernel tap (row u, slide v) of branch input i at w_off + i*K*K +
// u*w_row + v*w_slide.

override K: u32 = 7u;

// Small workgroups, so that a few hundred invocations still spread over every CPU thread.
const GROUP: u32 = 8u;

// Outputs per invocation along the slide axis (GATE_TILE in src/kernels/triplet.rs; 2 rows).
const SLIDE: u32 = 16u;

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

// The gates of slide positions s..s+3 of the row at `at`, those inside the plane.
fn put(at: u32, s: u32, len: u32, stride: u32, v: vec4<f32>) {
    let g = 1.0 / (1.0 + exp(-v));
    if (s < len) { y[at + s * stride] = g.x; }
    if (s + 1u < len) { y[at + (s + 1u) * stride] = g.y; }
    if (s + 2u < len) { y[at + (s + 2u) * stride] = g.z; }
    if (s + 3u < len) { y[at + (s + 3u) * stride] = g.w; }
}

@compute @workgroup_size(8)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let first = (wid.x + wid.y * nwg.x) * GROUP;
    var r = 0u;
    for (var i = 1u; i < p.roles; i++) {
        if (first >= p.role[i].head.x) {
            r = i;
        }
    }
    let role = p.role[r];
    let o = first + li - role.head.x;
    if (o >= p.n * role.head.y) {
        return;
    }
    let n = o / role.head.y;
    let tile = o % role.head.y;
    let rows = role.ext.x;
    let len = i32(role.ext.y);
    let p_row = role.ext.z;
    let p_slide = role.ext.w;
    let r0 = (tile / role.head.z) * 2u;
    let s0 = i32((tile % role.head.z) * SLIDE);
    let pad = i32(K / 2u);
    let plane = rows * role.ext.y;

    // a0..a3: slide positions s0 .. s0 + 15 of output row r0; b0..b3: the same of row r0 + 1.
    let b = vec4<f32>(bias[role.head.w]);
    var a0 = b;
    var a1 = b;
    var a2 = b;
    var a3 = b;
    var b0 = b;
    var b1 = b;
    var b2 = b;
    var b3 = b;
    for (var i = 0u; i < 2u; i++) {
        let map = n * p.pooled_image + role.offs.x + i * plane;
        let w_map = role.offs.z + i * K * K;
        // Input row r0 - pad + ir: kernel row ir of output row r0, ir - 1 of row r0 + 1.
        for (var ir = 0u; ir <= K; ir++) {
            let in_row = i32(r0) - pad + i32(ir);
            if (in_row < 0 || in_row >= i32(rows)) {
                continue;
            }
            let row = map + u32(in_row) * p_row;
            let s = s0 - pad;
            // The window: slide positions s .. s + 15 of the input row.
            var w0 = vec4<f32>(tap(row, s, len, p_slide), tap(row, s + 1, len, p_slide),
                tap(row, s + 2, len, p_slide), tap(row, s + 3, len, p_slide));
            var w1 = vec4<f32>(tap(row, s + 4, len, p_slide), tap(row, s + 5, len, p_slide),
                tap(row, s + 6, len, p_slide), tap(row, s + 7, len, p_slide));
            var w2 = vec4<f32>(tap(row, s + 8, len, p_slide), tap(row, s + 9, len, p_slide),
                tap(row, s + 10, len, p_slide), tap(row, s + 11, len, p_slide));
            var w3 = vec4<f32>(tap(row, s + 12, len, p_slide), tap(row, s + 13, len, p_slide),
                tap(row, s + 14, len, p_slide), tap(row, s + 15, len, p_slide));
            let w_row = w_map + ir * role.wstr.x;
            for (var v = 0u; v < K; v++) {
                let w_col = v * role.wstr.y;
                // Branches on uniform values: no lane diverges.
                if (ir < K) {
                    let k = weight[w_row + w_col];
                    a0 += k * w0;
                    a1 += k * w1;
                    a2 += k * w2;
                    a3 += k * w3;
                }
                if (ir > 0u) {
                    let k = weight[w_row - role.wstr.x + w_col];
                    b0 += k * w0;
                    b1 += k * w1;
                    b2 += k * w2;
                    b3 += k * w3;
                }
                let next = tap(row, s + i32(SLIDE + v), len, p_slide);
                w0 = vec4<f32>(w0.yzw, w1.x);
                w1 = vec4<f32>(w1.yzw, w2.x);
                w2 = vec4<f32>(w2.yzw, w3.x);
                w3 = vec4<f32>(w3.yzw, next);
            }
        }
    }
    let at = n * p.gates_image + role.offs.y + r0 * p_row;
    let s = u32(s0);
    put(at, s, role.ext.y, p_slide, a0);
    put(at, s + 4u, role.ext.y, p_slide, a1);
    put(at, s + 8u, role.ext.y, p_slide, a2);
    put(at, s + 12u, role.ext.y, p_slide, a3);
    if (r0 + 1u < rows) {
        let below = at + p_row;
        put(below, s, role.ext.y, p_slide, b0);
        put(below, s + 4u, role.ext.y, p_slide, b1);
        put(below, s + 8u, role.ext.y, p_slide, b2);
        put(below, s + 12u, role.ext.y, p_slide, b3);
    }
}
