// Coordinate-attention output: y = (x * a_w) * a_h, the official order of the two products.
// The gates come packed per image: a_h [C,H] at 0, a_w [C,W] at C*H.
// An invocation covers 8 rows x 4 columns of one channel, so the 4 a_w values it loads serve
// 32 outputs. Loads past an edge are clamped; their results are not stored.

const ROWS: u32 = 8u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(gid, nwg);
    let col_tiles = (p.w + 3u) / 4u;
    let plane_tiles = ((p.h + ROWS - 1u) / ROWS) * col_tiles;
    if (t >= p.n * p.c * plane_tiles) {
        return;
    }
    let nc = t / plane_tiles;
    let rest = t % plane_tiles;
    let n = nc / p.c;
    let c = nc % p.c;
    let h0 = (rest / col_tiles) * ROWS;
    let w0 = (rest % col_tiles) * 4u;
    let cols = min(vec4<u32>(w0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.w - 1u));
    let g = n * p.c * (p.h + p.w);
    let aw_row = g + p.c * p.h + c * p.w;
    let a_w = vec4<f32>(f32(gates[aw_row + cols.x]), f32(gates[aw_row + cols.y]), f32(gates[aw_row + cols.z]), f32(gates[aw_row + cols.w]));
    for (var j = 0u; j < ROWS; j++) {
        let h = h0 + j;
        if (h >= p.h) {
            break;
        }
        let a_h = f32(gates[g + c * p.h + h]);
        let row = (nc * p.h + h) * p.w;
        let v = vec4<f32>(f32(x[row + cols.x]), f32(x[row + cols.y]), f32(x[row + cols.z]), f32(x[row + cols.w]));
        let out = (v * a_w) * a_h;
        y[row + w0] = Elem(out.x);
        if (w0 + 1u < p.w) { y[row + w0 + 1u] = Elem(out.y); }
        if (w0 + 2u < p.w) { y[row + w0 + 2u] = Elem(out.z); }
        if (w0 + 3u < p.w) { y[row + w0 + 3u] = Elem(out.w); }
    }
}
