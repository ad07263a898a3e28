// Triplet-attention combine: y = act(((x*g_hw + x*g_cw) + x*g_hc) * scale [+ residual]), in the
// order the PyTorch module adds its branch outputs; without the hw branch
// y = act((x*g_cw + x*g_hc) * scale [+ residual]). The gates come packed per image:
// g_hw [H,W] at 0 (if HAS_HW), g_cw [C,W] at off_cw, g_hc [H,C] at off_hc.
// An invocation covers 4 channels x ROWS rows x 4 columns: each g_cw value it loads serves
// ROWS outputs, each g_hw and g_hc value 4 (loads, not arithmetic, are what a CPU device pays
// for; so are integer divisions, done once per invocation). Neighbouring invocations take
// neighbouring column quads of the same rows, so the lanes a CPU device runs together share
// cache lines and walk x, the residual and y as a few streams; with 4 channels, not 8, the 16
// g_cw values stay in registers (docs/performance.md has the timings). Loads past
// an edge are clamped to the last row/column/channel; their results are not stored.
// The 4 channels are named variables, not an indexed array, for lavapipe (see coord_gates.wgsl).

const ROWS: u32 = 8u;

fn gate4(base: u32, i: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(f32(gates[base + i.x]), f32(gates[base + i.y]), f32(gates[base + i.z]), f32(gates[base + i.w]));
}

fn act4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(activate(v.x, ACT), activate(v.y, ACT), activate(v.z, ACT), activate(v.w, ACT));
}

// Four outputs of one channel row from column w0 on; `row` is the row's first
// element, `cols` the clamped column indices.
fn emit(row: u32, cols: vec4<u32>, w0: u32, g_hw: vec4<f32>, g_cw: vec4<f32>, g_hc: f32) {
    let v = vec4<f32>(f32(x[row + cols.x]), f32(x[row + cols.y]), f32(x[row + cols.z]), f32(x[row + cols.w]));
    let y_cw = v * g_cw;
    let y_hc = v * g_hc;
    var sum = y_cw + y_hc;
    if (HAS_HW) {
        sum = (v * g_hw + y_cw) + y_hc;
    }
    var out = sum * p.scale;
    if (HAS_RESIDUAL) {
        out += vec4<f32>(
            f32(residual[row + cols.x]),
            f32(residual[row + cols.y]),
            f32(residual[row + cols.z]),
            f32(residual[row + cols.w]),
        );
    }
    out = act4(out);
    y[row + w0] = Elem(out.x);
    if (w0 + 1u < p.w) { y[row + w0 + 1u] = Elem(out.y); }
    if (w0 + 2u < p.w) { y[row + w0 + 2u] = Elem(out.z); }
    if (w0 + 3u < p.w) { y[row + w0 + 3u] = Elem(out.w); }
}

@compute @workgroup_size(GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = group_flat_id(gid, nwg);
    let bands = (p.h + ROWS - 1u) / ROWS;
    let quads = (p.w + 3u) / 4u;
    let image_tiles = ((p.c + 3u) / 4u) * bands * quads;
    if (t >= p.n * image_tiles) {
        return;
    }
    let n = t / image_tiles;
    let rest = t % image_tiles;
    let w0 = (rest % quads) * 4u;
    let band = rest / quads;
    let c0 = (band / bands) * 4u;
    let h0 = (band % bands) * ROWS;
    let h1 = min(h0 + ROWS, p.h);
    let step = vec4<u32>(0u, 1u, 2u, 3u);
    let top = vec4<u32>(p.c - 1u);
    let chans = min(vec4<u32>(c0) + step, top);
    let g = n * p.gates_image;
    let cw = g + p.off_cw;
    let plane = p.h * p.w;
    let cols = min(vec4<u32>(w0) + step, vec4<u32>(p.w - 1u));
    let cw0 = gate4(cw + chans.x * p.w, cols);
    let cw1 = gate4(cw + chans.y * p.w, cols);
    let cw2 = gate4(cw + chans.z * p.w, cols);
    let cw3 = gate4(cw + chans.w * p.w, cols);
    for (var h = h0; h < h1; h++) {
        var hw = vec4<f32>(0.0);
        if (HAS_HW) {
            hw = gate4(g + h * p.w, cols);
        }
        let hc_row = g + p.off_hc + h * p.c;
        let hc = gate4(hc_row, chans);
        let row = ((n * p.c + c0) * p.h + h) * p.w;
        emit(row, cols, w0, hw, cw0, hc.x);
        if (c0 + 1u < p.c) {
            emit(row + 1u * plane, cols, w0, hw, cw1, hc.y);
        }
        if (c0 + 2u < p.c) {
            emit(row + 2u * plane, cols, w0, hw, cw2, hc.z);
        }
        if (c0 + 3u < p.c) {
            emit(row + 3u * plane, cols, w0, hw, cw3, hc.w);
        }
    }
}
