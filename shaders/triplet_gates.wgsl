// Triplet-attention gates: for each plane (role) of the packed pools, sigmoid(bias + 2->1 K x K
// conv), stride 1, zero padding (K-1)/2, into the packed gates. One dispatch for all planes;
// role r owns the invocations [start, start + N*tiles) (starts are multiples of GROUP, so a
// workgroup lies in one role and the role, and with it every weight index, is uniform across
// it: a CPU device then loads each weight once per workgroup, not once per lane).
// An invocation computes a tile of ROWS = 4 rows x SLIDE = 16 outputs along the "slide" axis.
// Each of the K + 3 input rows of its receptive field is read once into a 16-wide window that
// slides one step per kernel column (one new value per step) and feeds every output row it
// meets: a row costs 16 + K - 1 pooled loads for up to 4*16*K products. Loads, not arithmetic,
// are what a CPU device pays for.
// The window and the accumulators are structs of named vec4s (`Span`), not arrays: lavapipe
// does not unroll loops, so an indexed array would live in memory (2x the time of this form).
// The tile stays this small because Chromium's SwiftShader crashes its GPU process compiling
// larger hand-written tiles (4 rows x 32 did).
// The slide axis is the plane's column axis, or its row axis for planes narrower than a
// window (cw of a 7x7 map), through the strides: a pooled/gate value (row r, slide s) lies at
// r*p_row + s*p_slide, kernel tap (row u, slide v) of branch input i at w_off + i*K*K +
// u*w_row + v*w_slide.

// The tile of an invocation (GATE_TILE in src/kernels/triplet.rs): ROWS rows of SLIDE outputs.
const ROWS: u32 = 4u;
const SLIDE: u32 = 16u;

// Pooled value at slide position s of the row starting at `row` (zero outside the plane).
fn tap(row: u32, s: i32, len: i32, stride: u32) -> f32 {
    if (s < 0 || s >= len) {
        return 0.0;
    }
    return f32(pooled[row + u32(s) * stride]);
}

// 16 consecutive values along the slide axis: a window, or one output row's accumulators.
struct Span {
    q0: vec4<f32>,
    q1: vec4<f32>,
    q2: vec4<f32>,
    q3: vec4<f32>,
};

// Slide positions s .. s + 15 of the row starting at `row`.
fn window(row: u32, s: i32, len: i32, stride: u32) -> Span {
    return Span(
        vec4<f32>(tap(row, s, len, stride), tap(row, s + 1, len, stride),
            tap(row, s + 2, len, stride), tap(row, s + 3, len, stride)),
        vec4<f32>(tap(row, s + 4, len, stride), tap(row, s + 5, len, stride),
            tap(row, s + 6, len, stride), tap(row, s + 7, len, stride)),
        vec4<f32>(tap(row, s + 8, len, stride), tap(row, s + 9, len, stride),
            tap(row, s + 10, len, stride), tap(row, s + 11, len, stride)),
        vec4<f32>(tap(row, s + 12, len, stride), tap(row, s + 13, len, stride),
            tap(row, s + 14, len, stride), tap(row, s + 15, len, stride)),
    );
}

// The window one step on, `next` entering at its end.
fn slide(w: Span, next: f32) -> Span {
    return Span(
        vec4<f32>(w.q0.yzw, w.q1.x),
        vec4<f32>(w.q1.yzw, w.q2.x),
        vec4<f32>(w.q2.yzw, w.q3.x),
        vec4<f32>(w.q3.yzw, next),
    );
}

// acc + k * w.
fn add_scaled(acc: Span, k: f32, w: Span) -> Span {
    let kk = vec4<f32>(k);
    return Span(fma(kk, w.q0, acc.q0), fma(kk, w.q1, acc.q1), fma(kk, w.q2, acc.q2),
        fma(kk, w.q3, acc.q3));
}

// The gates of slide positions s..s+3 of the row at `at`, those inside the plane.
fn put(at: u32, s: u32, len: u32, stride: u32, v: vec4<f32>) {
    let g = 1.0 / (1.0 + exp(-v));
    if (s < len) { y[at + s * stride] = Elem(g.x); }
    if (s + 1u < len) { y[at + (s + 1u) * stride] = Elem(g.y); }
    if (s + 2u < len) { y[at + (s + 2u) * stride] = Elem(g.z); }
    if (s + 3u < len) { y[at + (s + 3u) * stride] = Elem(g.w); }
}

// Output row `at` (its first slide position s0) of the tile, if inside the plane's `rows`.
fn put_row(at: u32, r: u32, rows: u32, s0: u32, len: u32, stride: u32, v: Span) {
    if (r < rows) {
        put(at, s0, len, stride, v.q0);
        put(at, s0 + 4u, len, stride, v.q1);
        put(at, s0 + 8u, len, stride, v.q2);
        put(at, s0 + 12u, len, stride, v.q3);
    }
}

// Whether input row ir of a tile meets kernel row ir - j of the tile's output row j.
fn feeds(ir: u32, j: u32) -> bool {
    return ir >= j && ir - j < K;
}

@compute @workgroup_size(GROUP)
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
    let r0 = (tile / role.head.z) * ROWS;
    let s0 = i32((tile % role.head.z) * SLIDE);
    let pad = i32(K / 2u);
    let plane = rows * role.ext.y;

    // Output rows r0 .. r0 + 3, slide positions s0 .. s0 + 15.
    let b = vec4<f32>(f32(bias[role.head.w]));
    var a = Span(b, b, b, b);
    var c = a;
    var d = a;
    var e = a;
    for (var i = 0u; i < 2u; i++) {
        let map = n * p.pooled_image + role.offs.x + i * plane;
        let w_map = role.offs.z + i * K * K;
        // Input row r0 - pad + ir meets kernel row ir - j of output row r0 + j.
        for (var ir = 0u; ir < K + ROWS - 1u; ir++) {
            let in_row = i32(r0) - pad + i32(ir);
            if (in_row < 0 || in_row >= i32(rows)) {
                continue;
            }
            let row = map + u32(in_row) * p_row;
            let s = s0 - pad;
            var win = window(row, s, len, p_slide);
            let w_row = w_map + ir * role.wstr.x;
            for (var v = 0u; v < K; v++) {
                // Weight w_row - j * w_row_stride + v * w_slide for output row j; the
                // conditions are uniform, so no lane diverges.
                let tap_at = w_row + v * role.wstr.y;
                if (feeds(ir, 0u)) { a = add_scaled(a, f32(weight[tap_at]), win); }
                if (feeds(ir, 1u)) { c = add_scaled(c, f32(weight[tap_at - role.wstr.x]), win); }
                if (feeds(ir, 2u)) { d = add_scaled(d, f32(weight[tap_at - 2u * role.wstr.x]), win); }
                if (feeds(ir, 3u)) { e = add_scaled(e, f32(weight[tap_at - 3u * role.wstr.x]), win); }
                win = slide(win, tap(row, s + i32(SLIDE + v), len, p_slide));
            }
        }
    }
    let at = n * p.gates_image + role.offs.y + r0 * p_row;
    let s = u32(s0);
    let slide_len = role.ext.y;
    put_row(at, r0, rows, s, slide_len, p_slide, a);
    put_row(at + p_row, r0 + 1u, rows, s, slide_len, p_slide, c);
    put_row(at + 2u * p_row, r0 + 2u, rows, s, slide_len, p_slide, d);
    put_row(at + 3u * p_row, r0 + 3u, rows, s, slide_len, p_slide, e);
}
