// Axis pooling (triplet_pool.wgsl's line role; role words, params and bindings in
// axis_pool_io.wgsl) with a workgroup per pooled value: its 64 lanes
// stride over the `count` elements of one line, then reduce their maxima and sums through
// workgroup memory. For the long lines of Triplet Attention's pool over channels (up to 2048
// elements) at few positions (49 on a 7×7 map), where one invocation per value leaves a GPU
// nearly idle. On a CPU device each barrier of the tree is a coroutine switch, so there the
// streamed planes run instead (the tuner measures which).
//
// Line role (as in triplet_pool.wgsl): workgroup o = (n, a, b) reduces `count` elements of
// image n at a*stride_a + b*stride_b + j*stride_r, and writes the mean (and the max, if
// HAS_MAX) at n*out_image + offset + a*out_a + b*out_b.

const LANES: u32 = 64u;

var<workgroup> maxima: array<f32, LANES>;
var<workgroup> sums: array<f32, LANES>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    // Workgroups spill from x into y past the per-dimension limit (Recorder::grid).
    let o = wid.x + wid.y * nwg.x;
    if (o >= p.outputs) {
        return;
    }
    let l = line_of(o, p.role);
    // The line's first element starts every lane's maximum: a value of the line, so lanes
    // with nothing to read do not change the result.
    var m = f32(x[l.base]);
    var s = 0.0;
    for (var j = li; j < l.count; j += LANES) {
        let v = f32(x[l.base + j * l.stride]);
        m = max(m, v);
        s += v;
    }
    maxima[li] = m;
    sums[li] = s;
    workgroupBarrier();
    for (var half = LANES / 2u; half > 0u; half = half / 2u) {
        if (li < half) {
            maxima[li] = max(maxima[li], maxima[li + half]);
            sums[li] = sums[li] + sums[li + half];
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        put(l.at, p.role.v.zw, maxima[0], sums[0] / f32(l.count));
    }
}
