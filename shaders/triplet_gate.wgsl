// Triplet-attention gate: act(bias + 2->1 k x k conv) on a pooled map [N, 2, A, B] -> [N, 1, A, B],
// stride 1, zero padding (k-1)/2. Kernel rows run along A (C for cw, H for hc), columns along B.
// One invocation per output.

struct Params {
    total: u32,     // N * A * B
    a: u32,
    b: u32,
    k: u32,
    act: u32,       // sigmoid (Activation::code)
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pooled: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat_id(gid, nwg);
    if (o >= p.total) {
        return;
    }
    let plane = p.a * p.b;
    let n = o / plane;
    let a = i32((o % plane) / p.b);
    let b = i32(o % p.b);
    let pad = i32(p.k / 2u);
    var sum = bias[0];
    for (var i = 0u; i < 2u; i++) {
        let base = (n * 2u + i) * plane;
        for (var u = 0u; u < p.k; u++) {
            let pa = a + i32(u) - pad;
            if (pa < 0 || pa >= i32(p.a)) {
                continue;
            }
            for (var v = 0u; v < p.k; v++) {
                let pb = b + i32(v) - pad;
                if (pb < 0 || pb >= i32(p.b)) {
                    continue;
                }
                sum += weight[(i * p.k + u) * p.k + v] * pooled[base + u32(pa) * p.b + u32(pb)];
            }
        }
    }
    y[o] = activate(sum, p.act);
}
