// Triplet-attention pools in one pass over x, for devices with subgroups of 8 lanes or more.
// A workgroup is one subgroup holding a group of 32 channels of one image, 4 per lane: lane l
// has channels g*32 + k*8 + l for k = 0..3, the components of its vec4s. Each invocation
// streams its 4 channels' H x W planes together, once, finishing the reductions over W (rows:
// the hc pool) and over H (columns: the cw pool) in registers like the plane role of
// triplet_pool.wgsl; at every position it reduces its 4 channels, and subgroup reductions
// across the 8 lanes give the max and the sum of the 32, stored as scratch from which the
// finish role of triplet_pool.wgsl completes the hw pool. Per element that is a quarter of a
// column-accumulator update (4 channels share a vec4 entry) and an eighth of a subgroup
// reduction, and the finish reads a 32nd of C per position.
// Channels past the last repeat it (harmless to a max) and add 0 to the sum; they store
// nothing. No lane leaves early, so the subgroup reductions see the whole subgroup.

const MAXW: u32 = 128u;

// Channels per group (HW_GROUP in src/ops/triplet.rs): GROUP lanes of 4.
const CHANNELS: u32 = 4u * GROUP;

struct Params {
    n: u32,
    c: u32,
    groups: u32,       // ceil(C / CHANNELS)
    h: u32,
    w: u32,
    out_image: u32,
    scratch_at: u32,   // per image; group g keeps its max map at scratch_at + 2*g*H*W, sum after
    _pad: u32,
    rows: vec4<u32>,   // hc: max at, mean at, stride of h, stride of c
    cols: vec4<u32>,   // cw: max at, mean at, stride of c, stride of w
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read_write> y: array<Elem>;

fn load4(at: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(f32(x[at.x]), f32(x[at.y]), f32(x[at.z]), f32(x[at.w]));
}

// The max or mean of each live channel at its own offset `at` (+ `role_at`).
fn put4(at: vec4<u32>, live: vec4<bool>, role_at: vec2<u32>, m: vec4<f32>, mean: vec4<f32>) {
    if (live.x) { y[at.x + role_at.x] = Elem(m.x); y[at.x + role_at.y] = Elem(mean.x); }
    if (live.y) { y[at.y + role_at.x] = Elem(m.y); y[at.y + role_at.y] = Elem(mean.y); }
    if (live.z) { y[at.z + role_at.x] = Elem(m.z); y[at.z + role_at.y] = Elem(mean.z); }
    if (live.w) { y[at.w + role_at.x] = Elem(m.w); y[at.w + role_at.y] = Elem(mean.w); }
}

// The max and the sum of the group's channels at one position, from each lane's 4 (`keep`
// zeroes the channels past C in the sum), stored by lane 0 at `at` and `at + plane`.
fn hw_parts(lane: u32, at: u32, plane: u32, v: vec4<f32>, keep: vec4<f32>) {
    let kept = v * keep;
    let group_max = subgroupMax(max(max(v.x, v.y), max(v.z, v.w)));
    let group_sum = subgroupAdd((kept.x + kept.y) + (kept.z + kept.w));
    if (lane == 0u) {
        y[at] = Elem(group_max);
        y[at + plane] = Elem(group_sum);
    }
}

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
    let c_all = vec4(g * CHANNELS + lane) + vec4(0u, 1u, 2u, 3u) * GROUP;
    let live = c_all < vec4(p.c);
    let c = min(c_all, vec4(p.c - 1u));
    let h = p.h;
    let w = p.w;
    let plane = h * w;
    let base = (n * p.c + c) * plane;
    let out = n * p.out_image;
    let scratch = out + p.scratch_at + g * 2u * plane;
    let keep = select(vec4(0.0), vec4(1.0), live);
    var col_max: array<vec4<f32>, MAXW>;
    var col_sum: array<vec4<f32>, MAXW>;
    for (var j = 0u; j < w; j++) {
        col_max[j] = load4(base + j);
        col_sum[j] = vec4(0.0);
    }
    // Two rows per pass over the columns: the column accumulators live in a private array,
    // which a CPU device keeps in per-lane scratch memory, so each update of one costs about
    // as much as a load of x. For an odd H the last pass reads its row twice; the second read
    // adds nothing to the column sums and rewrites the same row results.
    for (var i = 0u; i < h; i += 2u) {
        let i1 = min(i + 1u, h - 1u);
        let second = select(0.0, 1.0, i + 1u < h);
        let row0 = base + i * w;
        let row1 = base + i1 * w;
        var m0 = load4(row0);
        var m1 = load4(row1);
        var s0 = vec4(0.0);
        var s1 = vec4(0.0);
        for (var j = 0u; j < w; j++) {
            let v0 = load4(row0 + j);
            let v1 = load4(row1 + j);
            m0 = max(m0, v0);
            m1 = max(m1, v1);
            s0 += v0;
            s1 += v1;
            col_max[j] = max(col_max[j], max(v0, v1));
            col_sum[j] += v0 + v1 * second;
            hw_parts(lane, scratch + i * w + j, plane, v0, keep);
            hw_parts(lane, scratch + i1 * w + j, plane, v1, keep);
        }
        put4(out + vec4(i * p.rows.z) + c * p.rows.w, live, p.rows.xy, m0, s0 / f32(w));
        put4(out + vec4(i1 * p.rows.z) + c * p.rows.w, live, p.rows.xy, m1, s1 / f32(w));
    }
    for (var j = 0u; j < w; j++) {
        put4(out + c * p.cols.z + vec4(j * p.cols.w), live, p.cols.xy, col_max[j], col_sum[j] / f32(h));
    }
}
