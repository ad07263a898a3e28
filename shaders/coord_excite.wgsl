// Coordinate Attention from the pools' partial sums to the gates in one kernel, for GPUs:
// coord_pool_finish, conv1 (+ folded BN + activation) and coord_gates, which would be three
// dispatches of a few hundred invocations each. A workgroup takes one pooled position l of one
// image (l < H: the mean over W of row l; else the mean over H of column l - H):
// 1. each lane finishes the means of its channels (every LANES-th) from the depthwise conv's
//    parts (coord_parts.wgsl), as coord_pool_finish does;
// 2. the lanes split conv1's sum over channels for each of the mip outputs, lane m < mip adds
//    the lanes' shares up, then bias and activation;
// 3. each lane computes its channels' gate at l: conv_h on rows, conv_w on columns.
// The means and f are rounded as storing them would (Elem), so the gates are those of the
// unfused plan up to the order of conv1's sum. Workgroup memory holds C <= MAX_C means and
// mip <= MAX_MIP shares per lane (src/kernels/coord.rs checks both).

override ACT: u32 = 0u;

const LANES: u32 = 64u;
const MAX_C: u32 = 1024u;
const MAX_MIP: u32 = 32u;

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    mip: u32,
    quads: u32,
    strips: u32,
    _pad: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read> conv_weight: array<Elem>;  // [mip, C]
@group(0) @binding(3) var<storage, read> conv_bias: array<Elem>;    // [mip]
@group(0) @binding(4) var<storage, read> gate_weight: array<Elem>;  // [2, C, mip]
@group(0) @binding(5) var<storage, read> gate_bias: array<Elem>;    // [2, C]
@group(0) @binding(6) var<storage, read_write> y: array<Elem>;      // [N, C*(H+W)]

var<workgroup> means: array<f32, MAX_C>;
var<workgroup> shares: array<f32, MAX_MIP * LANES>;
var<workgroup> f: array<f32, MAX_MIP>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    // Uniform across the workgroup: every lane reaches the barriers.
    let lines = p.h + p.w;
    let g = wid.x + wid.y * nwg.x;
    let live = g < p.n * lines;
    let n = g / lines;
    let l = g % lines;
    for (var c = lane; c < p.c; c += LANES) {
        var m = 0.0;
        if (live) {
            m = f32(Elem(parts_mean(n, c, l)));
        }
        means[c] = m;
    }
    workgroupBarrier();
    for (var m = 0u; m < p.mip; m++) {
        var share = 0.0;
        for (var c = lane; c < p.c; c += LANES) {
            share = fma(f32(conv_weight[m * p.c + c]), means[c], share);
        }
        shares[m * LANES + lane] = share;
    }
    workgroupBarrier();
    if (lane < p.mip) {
        var sum = 0.0;
        for (var k = 0u; k < LANES; k++) {
            sum += shares[lane * LANES + k];
        }
        f[lane] = f32(Elem(activate(sum + f32(conv_bias[lane]), ACT)));
    }
    workgroupBarrier();
    if (!live) {
        return;
    }
    // a_h [C, H] then a_w [C, W] per image.
    var part = 0u;
    var j = l;
    var count = p.h;
    if (l >= p.h) {
        part = 1u;
        j = l - p.h;
        count = p.w;
    }
    let out = n * p.c * lines + part * p.c * p.h + j;
    for (var c = lane; c < p.c; c += LANES) {
        let row = part * p.c + c;
        var a = f32(gate_bias[row]);
        for (var m = 0u; m < p.mip; m++) {
            a += f32(gate_weight[row * p.mip + m]) * f[m];
        }
        y[out + c * count] = Elem(1.0 / (1.0 + exp(-a)));
    }
}
