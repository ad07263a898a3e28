// y[n,o] = act(sum_f x[n,f] * w[o,f] + b[o]). One workgroup per output: its 64 threads read
// consecutive features of the row of x and of w (coalesced), then reduce in shared memory.

struct Params {
    outputs: u32,   // N * O
    features: u32,
    out_features: u32,
    act: u32,
    has_bias: u32,  // 0: `b` is a placeholder binding and is not read
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let out_idx = wid.x + wid.y * nwg.x;
    if (out_idx >= p.outputs) {
        return;
    }
    let row = out_idx / p.out_features;
    let col = out_idx % p.out_features;
    var acc = 0.0;
    for (var f = lid; f < p.features; f += WG) {
        acc += x[row * p.features + f] * w[col * p.features + f];
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        var v = partial[0];
        if (p.has_bias == 1u) {
            v += b[col];
        }
        y[out_idx] = activate(v, p.act);
    }
}
