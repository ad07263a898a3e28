// Triplet-attention pools in one pass over x, for devices with subgroups of 8 lanes or more.
// A workgroup is one subgroup holding 8 consecutive channels of one image; each invocation
// streams its channel's H x W plane once, finishing the reductions over W (rows: the hc pool)
// and over H (columns: the cw pool) in registers like the plane role of triplet_pool.wgsl,
// while subgroup reductions across the 8 channels give, at every position, the max and the
// sum of the group, stored as scratch from which the finish role of triplet_pool.wgsl
// completes the hw pool: the hw pool costs a quarter load per element instead of one.
// Lanes past the last channel repeat it (harmless to a max) and add 0 to the sum; they store
// nothing else. No lane leaves early, so the subgroup reductions see the whole subgroup.

const MAXW: u32 = 128u;

struct Params {
    n: u32,
    c: u32,
    groups: u32,       // ceil(C / GROUP)
    h: u32,
    w: u32,
    out_image: u32,
    scratch_at: u32,   // per image; group g keeps its max map at scratch_at + 2*g*H*W, sum after
    _pad: u32,
    rows: vec4<u32>,   // hc: max at, mean at, stride of h, stride of c
    cols: vec4<u32>,   // cw: max at, mean at, stride of c, stride of w
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(GROUP)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    // Uniform across the workgroup, so the subgroup keeps every lane.
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.n * p.groups) {
        return;
    }
    let n = group / p.groups;
    let g = group % p.groups;
    let live = g * GROUP + lane < p.c;
    let c = min(g * GROUP + lane, p.c - 1u);
    let h = p.h;
    let w = p.w;
    let plane = h * w;
    let base = (n * p.c + c) * plane;
    let out = n * p.out_image;
    let scratch = out + p.scratch_at + g * 2u * plane;
    var col_max: array<f32, MAXW>;
    var col_sum: array<f32, MAXW>;
    for (var j = 0u; j < w; j++) {
        col_max[j] = x[base + j];
        col_sum[j] = 0.0;
    }
    for (var i = 0u; i < h; i++) {
        let row = base + i * w;
        var m = x[row];
        var s = 0.0;
        for (var j = 0u; j < w; j++) {
            let v = x[row + j];
            m = max(m, v);
            s += v;
            col_max[j] = max(col_max[j], v);
            col_sum[j] += v;
            let group_max = subgroupMax(v);
            let group_sum = subgroupAdd(select(0.0, v, live));
            if (lane == 0u) {
                y[scratch + i * w + j] = group_max;
                y[scratch + plane + i * w + j] = group_sum;
            }
        }
        if (live) {
            let at = out + i * p.rows.z + c * p.rows.w;
            y[at + p.rows.x] = m;
            y[at + p.rows.y] = s / f32(w);
        }
    }
    if (live) {
        for (var j = 0u; j < w; j++) {
            let at = out + c * p.cols.z + j * p.cols.w;
            y[at + p.cols.x] = col_max[j];
            y[at + p.cols.y] = col_sum[j] / f32(h);
        }
    }
}
