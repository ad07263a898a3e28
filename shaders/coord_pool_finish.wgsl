// Coordinate Attention's means from the partial sums a depthwise conv wrote while computing x
// (conv2d_depthwise_pool.wgsl, read by coord_parts.wgsl): y[n, c, l] is the mean over W of row
// l (l < H), or the mean over H of column l - H; y is `[N, C, H+W, 1]`, as coord_pool writes
// it. One invocation per output.

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    quads: u32,
    strips: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    let lines = p.h + p.w;
    if (i >= p.n * p.c * lines) {
        return;
    }
    let nc = i / lines;
    let l = i % lines;
    let n = nc / p.c;
    let c = nc % p.c;
    y[i] = Elem(parts_mean(n, c, l));
}
