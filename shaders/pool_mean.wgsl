// Mean over `rows` x `cols` of each output's block (H, W or both). LANES invocations share one
// output: each sums a strided part, then a tree in workgroup memory adds the parts. The host
// picks LANES > 1 only when the reduced elements are contiguous (W in the reduction), so
// neighbouring lanes read neighbouring addresses.

override LANES: u32 = 1u;

struct Params {
    total: u32,     // outputs
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    rows: u32,      // reduced extent along H (1 if H is kept)
    cols: u32,      // reduced extent along W (1 if W is kept)
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> part: array<f32, WG>;

@compute @workgroup_size(64)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let t = flat_id(gid, nwg);
    let o = t / LANES;
    let lane = t % LANES;
    let count = p.rows * p.cols;
    var s = 0.0;
    if (o < p.total) {
        let ow = o % p.out_w;
        let rest = o / p.out_w;
        let oh = rest % p.out_h;
        let plane = rest / p.out_h;
        let base = (plane * p.in_h + oh) * p.in_w + ow;
        for (var j = lane; j < count; j += LANES) {
            s += x[base + (j / p.cols) * p.in_w + j % p.cols];
        }
    }
    part[lid.x] = s;
    workgroupBarrier();
    for (var step = LANES / 2u; step > 0u; step = step / 2u) {
        if (lane < step) {
            part[lid.x] += part[lid.x + step];
        }
        workgroupBarrier();
    }
    if (lane == 0u && o < p.total) {
        y[o] = part[lid.x] / f32(count);
    }
}
