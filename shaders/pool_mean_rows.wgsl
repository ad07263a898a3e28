// Mean over `rows` x `cols` of each output's block with a workgroup of 64 lanes per output, for
// GPUs: the lanes take every 64th element of the block (neighbours on neighbouring columns)
// and add their sums up in workgroup memory (lane_sum.wgsl). A global pool's few hundred
// outputs of thousands of elements each then fill a GPU, where one invocation per output sums
// its block serially.

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    // Uniform across the workgroup: every lane reaches the barriers.
    let o = wid.x + wid.y * nwg.x;
    let live = o < p.total;
    var sum = 0.0;
    if (live) {
        let base = block_start(o);
        for (var k = lane; k < p.rows * p.cols; k += LANES) {
            sum += f32(x[base + (k / p.cols) * p.in_w + k % p.cols]);
        }
    }
    let total = lane_sum(lane, sum);
    if (live && lane == 0u) {
        y[o] = Elem(total / f32(p.rows * p.cols));
    }
}
