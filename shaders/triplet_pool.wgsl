// Axis pooling (role words, params and bindings in axis_pool_io.wgsl): Triplet Attention's six Z-pools (max and mean over C, over H and over W) and
// Coordinate Attention's two directional means, the input read in place (no permuted copy).
// A dispatch runs one role, so every workgroup costs the same (a CPU device hands each thread
// a contiguous share of the workgroups). Two kinds of role:
// - line (kind 0): invocation o = (n, a, b) reduces `count` elements of image n at
//   a*stride_a + b*stride_b + j*stride_r, and writes the mean (and the max, if HAS_MAX) at
//   n*out_image + offset + a*out_a + b*out_b;
// - plane (kind 1): invocation o = (n, c) streams the H x W plane of channel c once and
//   finishes both the reduction over W of every row and the reduction over H of every column
//   (column accumulators in private arrays, at most MAXW wide): two pools for one read of x.
//   Row h goes to n*out_image + offset + h*row_h + c*row_c, column w to
//   n*out_image + offset + c*col_c + w*col_w.
// Every reduction lives in registers: on a CPU device each load is a per-lane loop and each
// workgroup barrier a coroutine switch, so one pass with no barrier is what pays. Workgroups
// are small so that a few hundred planes still spread over every CPU thread.

const MAXW: u32 = 128u;

fn line(o: u32, role: Role) {
    let l = line_of(o, role);
    var m = f32(x[l.base]);
    var s = 0.0;
    for (var j = 0u; j < l.count; j++) {
        let v = f32(x[l.base + j * l.stride]);
        m = max(m, v);
        s += v;
    }
    put(l.at, role.v.zw, m, s / f32(l.count));
}

fn plane(o: u32, role: Role) {
    let h = role.u.x;
    let w = role.u.y;
    let n = o / role.u.z;
    let c = o % role.u.z;
    let base = o * h * w;
    let out = n * p.out_image;
    var col_max: array<f32, MAXW>;
    var col_sum: array<f32, MAXW>;
    for (var j = 0u; j < w; j++) {
        col_max[j] = f32(x[base + j]);
        col_sum[j] = 0.0;
    }
    for (var i = 0u; i < h; i++) {
        let row = base + i * w;
        var m = f32(x[row]);
        var s = 0.0;
        for (var j = 0u; j < w; j++) {
            let v = f32(x[row + j]);
            s += v;
            col_sum[j] += v;
            if (HAS_MAX) {
                m = max(m, v);
                col_max[j] = max(col_max[j], v);
            }
        }
        put(out + i * role.v.z + c * role.v.w, role.v.xy, m, s / f32(w));
    }
    for (var j = 0u; j < w; j++) {
        put(out + c * role.w.z + j * role.w.w, role.w.xy, col_max[j], col_sum[j] / f32(h));
    }
}

@compute @workgroup_size(GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = group_flat_id(gid, nwg);
    if (o >= p.outputs) {
        return;
    }
    switch p.kind {
        case 1u: {
            plane(o, p.role);
        }
        default: {
            line(o, p.role);
        }
    }
}
