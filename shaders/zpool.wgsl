// Z-pool: [max, mean] over one axis of a contiguous NCHW tensor, read in place through strides
// (no permuted copy). Output [N, 2, A, B]; channel 0 = max, channel 1 = sum / count.
// LANES invocations share one output (LANES > 1 only when the reduced axis is W, which is
// contiguous); lanes past `count` hold nothing and are left out of the tree, so max needs no
// -inf sentinel.

override LANES: u32 = 1u;

struct Params {
    total: u32,     // N * A * B outputs
    a: u32,
    b: u32,
    count: u32,     // reduced extent
    image: u32,     // C * H * W
    stride_a: u32,
    stride_b: u32,
    stride_r: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> part_max: array<f32, WG>;
var<workgroup> part_sum: array<f32, WG>;

@compute @workgroup_size(64)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let t = flat_id(gid, nwg);
    let o = t / LANES;
    let lane = t % LANES;
    let plane = p.a * p.b;
    let n = o / plane;
    let ab = o % plane;
    var m = 0.0;
    var s = 0.0;
    if (o < p.total && lane < p.count) {
        let base = n * p.image + (ab / p.b) * p.stride_a + (ab % p.b) * p.stride_b;
        m = x[base + lane * p.stride_r];
        for (var r = lane; r < p.count; r += LANES) {
            let v = x[base + r * p.stride_r];
            m = max(m, v);
            s += v;
        }
    }
    part_max[lid.x] = m;
    part_sum[lid.x] = s;
    workgroupBarrier();
    for (var step = LANES / 2u; step > 0u; step = step / 2u) {
        if (lane < step && lane + step < p.count) {
            part_max[lid.x] = max(part_max[lid.x], part_max[lid.x + step]);
            part_sum[lid.x] += part_sum[lid.x + step];
        }
        workgroupBarrier();
    }
    if (lane == 0u && o < p.total) {
        y[(n * 2u) * plane + ab] = part_max[lid.x];
        y[(n * 2u + 1u) * plane + ab] = part_sum[lid.x] / f32(p.count);
    }
}
