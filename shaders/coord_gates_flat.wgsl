// Coordinate-attention gates with one gate per invocation, for GPUs: the sum of coord_gates.wgsl
// (bias first, then m in order) for thousands of invocations where the tiled kernel has a few
// hundred. Role r owns the invocations [start, start + N*C*positions); head is (start, C*positions
// per image, 0, positions), offs as in coord_gates.wgsl.

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(gid, nwg);
    var r = 0u;
    if (t >= p.role[1].head.x) {
        r = 1u;
    }
    let role = p.role[r];
    let o = t - role.head.x;
    if (o >= p.n * role.head.y) {
        return;
    }
    let count = role.head.w;
    let n = o / role.head.y;
    let q = o % role.head.y;
    let c = q / count;
    let j = q % count;
    var acc = f32(bias[role.offs.w + c]);
    let w_row = role.offs.z + c * p.mip;
    for (var m = 0u; m < p.mip; m++) {
        acc += f32(weight[w_row + m]) * f32(f[(n * p.mip + m) * p.rows + role.offs.x + j]);
    }
    y[n * p.c * p.rows + role.offs.y + q] = Elem(1.0 / (1.0 + exp(-acc)));
}
