// Triplet-attention gates: for each plane (role) of the packed pools, sigmoid(bias + 2->1 K x K
// conv), stride 1, zero padding (K-1)/2, into the packed gates. One dispatch for all planes;
// role r owns the invocations [start, start + N*tiles) (starts are multiples of GROUP).
// An invocation computes a tile of ROWS rows x SLIDE outputs along the "slide" axis. Each input
// row of the tile's receptive field is read once into a SLIDE-wide window (QUADS vec4) that
// slides one step per kernel column, so a tile reads 2*(K+ROWS-1)*(K+SLIDE-1) pooled values and
// 2*ROWS*K*K weights instead of 2*K*K of each per output: loads are what a CPU device pays for.
// The tile lives in arrays walked by loops, not in named variables: Chromium's SwiftShader crashes
// its GPU process compiling the hand-unrolled form (even at 2 rows), and GPU compilers unroll
// these loops themselves. lavapipe does not, and pays about 2.5x for the gates (about 3% of a
// TA ResNet-50).
// The slide axis is the plane's column axis, or its row axis for planes narrower than a
// window (cw of a 7x7 map), through the strides: a pooled/gate value (row r, slide s) lies at
// r*p_row + s*p_slide, kernel tap (row u, slide v) of branch input i at w_off + i*K*K +
// u*w_row + v*w_slide.

override K: u32 = 7u;

// Small workgroups, so that a few hundred invocations still spread over every CPU thread.
const GROUP: u32 = 8u;

// The tile (GATE_TILE in src/kernels/triplet.rs): ROWS output rows of SLIDE = 4*QUADS outputs.
const ROWS: u32 = 4u;
const QUADS: u32 = 8u;
const SLIDE: u32 = 4u * QUADS;

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
    let r0 = (tile / role.head.z) * ROWS;
    let s0 = i32((tile % role.head.z) * SLIDE);
    let pad = i32(K / 2u);
    let plane = rows * role.ext.y;

    // acc[row * QUADS + q]: output row r0 + row, slide positions s0 + 4q .. s0 + 4q + 3.
    var acc: array<vec4<f32>, ROWS * QUADS>;
    let b = vec4<f32>(bias[role.head.w]);
    for (var q = 0u; q < ROWS * QUADS; q++) {
        acc[q] = b;
    }
    var win: array<vec4<f32>, QUADS>;
    for (var i = 0u; i < 2u; i++) {
        let map = n * p.pooled_image + role.offs.x + i * plane;
        let w_map = role.offs.z + i * K * K;
        // Input row r0 - pad + ir feeds kernel row ir - orow of output row r0 + orow.
        for (var ir = 0u; ir < K + ROWS - 1u; ir++) {
            let in_row = i32(r0) - pad + i32(ir);
            if (in_row < 0 || in_row >= i32(rows)) {
                continue;
            }
            let row = map + u32(in_row) * p_row;
            let s = s0 - pad;
            for (var q = 0u; q < QUADS; q++) {
                let at = s + i32(4u * q);
                win[q] = vec4<f32>(tap(row, at, len, p_slide), tap(row, at + 1, len, p_slide),
                    tap(row, at + 2, len, p_slide), tap(row, at + 3, len, p_slide));
            }
            for (var v = 0u; v < K; v++) {
                for (var orow = 0u; orow < ROWS; orow++) {
                    if (ir >= orow && ir - orow < K) {
                        let k = weight[w_map + (ir - orow) * role.wstr.x + v * role.wstr.y];
                        for (var q = 0u; q < QUADS; q++) {
                            acc[orow * QUADS + q] += k * win[q];
                        }
                    }
                }
                let next = tap(row, s + i32(SLIDE) + i32(v), len, p_slide);
                for (var q = 1u; q < QUADS; q++) {
                    win[q - 1u] = vec4<f32>(win[q - 1u].yzw, win[q].x);
                }
                win[QUADS - 1u] = vec4<f32>(win[QUADS - 1u].yzw, next);
            }
        }
    }
    let len_u = role.ext.y;
    let s = u32(s0);
    let at = n * p.gates_image + role.offs.y + r0 * p_row;
    for (var orow = 0u; orow < ROWS; orow++) {
        if (r0 + orow >= rows) {
            break;
        }
        for (var q = 0u; q < QUADS; q++) {
            let g = 1.0 / (1.0 + exp(-acc[orow * QUADS + q]));
            for (var e = 0u; e < 4u; e++) {
                let sl = s + 4u * q + e;
                if (sl < len_u) {
                    y[at + orow * p_row + sl * p_slide] = g[e];
                }
            }
        }
    }
}
