// Triplet-attention combine with one output per invocation, for GPUs: neighbouring invocations
// take neighbouring elements, so x, the residual and y move coalesced and the gates come from
// cache. The arithmetic, and its order, is triplet_combine.wgsl's.

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c * p.h * p.w) {
        return;
    }
    let at = nchw_of(i, p.c, p.h, p.w);
    let c = at.y;
    let h = at.z;
    let w = at.w;
    let g = at.x * p.gates_image;
    let v = f32(x[i]);
    let y_cw = v * f32(gates[g + p.off_cw + c * p.w + w]);
    let y_hc = v * f32(gates[g + p.off_hc + h * p.c + c]);
    var sum = y_cw + y_hc;
    if (HAS_HW) {
        sum = (v * f32(gates[g + h * p.w + w]) + y_cw) + y_hc;
    }
    var out = sum * p.scale;
    if (HAS_RESIDUAL) {
        out += f32(residual[i]);
    }
    y[i] = Elem(activate(out, ACT));
}
