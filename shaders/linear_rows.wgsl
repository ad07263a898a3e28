// y[n,o] = act(sum_f x[n,f] * w[o,f] + b[o]) with a workgroup of 64 lanes per output, for GPUs:
// the lanes read a row of w and of x coalesced, 64 features apart, and add their sums up in
// workgroup memory (lane_sum.wgsl). A classifier's few thousand outputs then fill a GPU, where one invocation
// per 4 outputs (linear.wgsl) leaves it idle, and each lane's loads are contiguous.

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    // Uniform across the workgroup: every lane reaches the barriers.
    let out = wid.x + wid.y * nwg.x;
    let live = out < p.rows * p.out_features;
    let n = out / p.out_features;
    let o = out % p.out_features;
    var sum = 0.0;
    if (live) {
        for (var f = lane; f < p.features; f += LANES) {
            sum = fma(f32(x[n * p.features + f]), f32(w[o * p.features + f]), sum);
        }
    }
    let total = lane_sum(lane, sum);
    if (live && lane == 0u) {
        var v = total;
        if (p.has_bias == 1u) {
            v += f32(b[o]);
        }
        y[out] = Elem(activate(v, p.act));
    }
}
