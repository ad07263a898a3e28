// Triplet-attention gates with one gate per invocation, for GPUs: the sum over both pooled maps
// and the K x K taps of triplet_gates.wgsl, bias first, for thousands of invocations where the
// tiled kernel has a few hundred. Role r owns the invocations [start, start + N*outputs); head
// is (start, outputs per image, slide length, bias index), the rest as in triplet_gates.wgsl.

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(gid, nwg);
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
    let q = o % role.head.y;
    let len = role.ext.y;
    let row = q / len;
    let s = q % len;
    let rows = i32(role.ext.x);
    let p_row = role.ext.z;
    let p_slide = role.ext.w;
    let plane = role.ext.x * len;
    let pad = i32(K / 2u);
    var acc = f32(bias[role.head.w]);
    for (var i = 0u; i < 2u; i++) {
        let map = n * p.pooled_image + role.offs.x + i * plane;
        let w_map = role.offs.z + i * K * K;
        for (var u = 0u; u < K; u++) {
            let in_row = i32(row) - pad + i32(u);
            if (in_row < 0 || in_row >= rows) {
                continue;
            }
            for (var v = 0u; v < K; v++) {
                let in_s = i32(s) - pad + i32(v);
                if (in_s < 0 || in_s >= i32(len)) {
                    continue;
                }
                let value = f32(pooled[map + u32(in_row) * p_row + u32(in_s) * p_slide]);
                acc = fma(value, f32(weight[w_map + u * role.wstr.x + v * role.wstr.y]), acc);
            }
        }
    }
    y[n * p.gates_image + role.offs.y + row * p_row + s * p_slide] = Elem(1.0 / (1.0 + exp(-acc)));
}
