// Coordinate-attention output with one element per invocation, for GPUs: y = (x * a_w) * a_h
// as in coord_apply.wgsl, neighbouring invocations on neighbouring elements (coalesced), the
// gates from cache.

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c * p.h * p.w) {
        return;
    }
    let at = nchw_of(i, p.c, p.h, p.w);
    let c = at.y;
    let g = at.x * p.c * (p.h + p.w);
    let a_h = f32(gates[g + c * p.h + at.z]);
    let a_w = f32(gates[g + p.c * p.h + c * p.w + at.w]);
    y[i] = Elem((f32(x[i]) * a_w) * a_h);
}
