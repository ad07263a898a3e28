// Axis pooling (triplet_pool.wgsl's line role) with a workgroup per pooled value: its 64 lanes
// stride over the `count` elements of one line, then reduce their maxima and sums through
// workgroup memory. For the long lines of Triplet Attention's pool over channels (up to 2048
// elements) at few positions (49 on a 7×7 map), where one invocation per value leaves a GPU
// nearly idle. On a CPU device each barrier of the tree is a coroutine switch, so there the
// streamed planes run instead (the tuner measures which).
//
// Line role (as in triplet_pool.wgsl): workgroup o = (n, a, b) reduces `count` elements of
// image n at a*stride_a + b*stride_b + j*stride_r, and writes the mean (and the max, if
// HAS_MAX) at n*out_image + offset + a*out_a + b*out_b.

override HAS_MAX: bool = true;

const LANES: u32 = 64u;

struct Role {
    // (b, a*b, count, stride_a), (stride_b, stride_r, max at, mean at), (out_a, out_b, 0, 0)
    u: vec4<u32>,
    v: vec4<u32>,
    w: vec4<u32>,
};

struct Params {
    x_image: u32,
    out_image: u32,
    outputs: u32,
    kind: u32,      // 0: the line role, the only one this kernel runs
    role: Role,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read_write> y: array<Elem>;

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
    let role = p.role;
    let n = o / role.u.y;
    let ab = o % role.u.y;
    let a = ab / role.u.x;
    let b = ab % role.u.x;
    let count = role.u.z;
    let base = n * p.x_image + a * role.u.w + b * role.v.x;
    let stride = role.v.y;
    // The line's first element starts every lane's maximum: a value of the line, so lanes
    // with nothing to read do not change the result.
    var m = f32(x[base]);
    var s = 0.0;
    for (var j = li; j < count; j += LANES) {
        let v = f32(x[base + j * stride]);
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
        let at = n * p.out_image + a * role.w.x + b * role.w.y;
        if (HAS_MAX) {
            y[at + role.v.z] = Elem(maxima[0]);
        }
        y[at + role.v.w] = Elem(sums[0] / f32(count));
    }
}
