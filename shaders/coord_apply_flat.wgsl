// Coordinate-attention output with one element per invocation, for GPUs: y = (x * a_w) * a_h
// as in coord_apply.wgsl, neighbouring invocations on neighbouring elements (coalesced), the
// gates from cache.

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    let plane = p.h * p.w;
    if (i >= p.n * p.c * plane) {
        return;
    }
    let nc = i / plane;
    let q = i % plane;
    let n = nc / p.c;
    let c = nc % p.c;
    let g = n * p.c * (p.h + p.w);
    let a_h = f32(gates[g + c * p.h + q / p.w]);
    let a_w = f32(gates[g + p.c * p.h + c * p.w + q % p.w]);
    y[i] = Elem((f32(x[i]) * a_w) * a_h);
}
