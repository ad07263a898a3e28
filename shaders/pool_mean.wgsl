// Mean over `rows` x `cols` of each output's block (H, W or both), one invocation per output
// summing its block in order (the layout for software devices; pool_mean_rows.wgsl is the
// GPUs'). A workgroup tree (several invocations per output) measured
// slower on lavapipe, where each workgroup barrier is expensive: 3.7 ms against 0.4 ms for
// MobileNetV2's head, 68 against 23 ms for AFF-ResNet-50's global pools.

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat_id(gid, nwg);
    if (o >= p.total) {
        return;
    }
    let base = block_start(o);
    var s = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let row = base + r * p.in_w;
        for (var c = 0u; c < p.cols; c++) {
            s += f32(x[row + c]);
        }
    }
    y[o] = Elem(s / f32(p.rows * p.cols));
}
