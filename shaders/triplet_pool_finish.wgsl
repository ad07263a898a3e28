// Triplet Attention's hw pool, finished from the channel-group maxima and sums that
// triplet_pool_sg.wgsl leaves in the output's scratch: invocation o = (n, q) takes the max of
// the groups' maxima and the sum of their sums at position q of image n.
// Its own kernel rather than a role of triplet_pool.wgsl: a CPU device runs both sides of every
// branch under lane masks, so as a role it also paid for the line and plane roles' code (the
// timings are in docs/performance.md).

struct Params {
    outputs: u32,     // N * plane
    plane: u32,       // H * W
    groups: u32,
    c: u32,
    out_image: u32,
    scratch_at: u32,  // per image; group g keeps its max map at scratch_at + 2*g*plane, sum after
    max_at: u32,
    mean_at: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = group_flat_id(gid, nwg);
    if (o >= p.outputs) {
        return;
    }
    let n = o / p.plane;
    let q = o % p.plane;
    let out = n * p.out_image;
    let first = out + p.scratch_at + q;
    var m = f32(y[first]);
    var s = f32(y[first + p.plane]);
    for (var g = 1u; g < p.groups; g++) {
        let at = first + g * 2u * p.plane;
        m = max(m, f32(y[at]));
        s += f32(y[at + p.plane]);
    }
    y[out + p.max_at + q] = Elem(m);
    y[out + p.mean_at + q] = Elem(s / f32(p.c));
}
