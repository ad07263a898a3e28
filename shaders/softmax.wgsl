// Softmax along the middle axis of x viewed as [outer, len, inner]; one thread per
// (outer, inner) line, so neighbouring threads read neighbouring inner positions.

struct Params {
    lines: u32,   // outer * inner
    len: u32,
    inner: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.lines) {
        return;
    }
    let base = (i / p.inner) * p.len * p.inner + i % p.inner;
    var m = f32(x[base]);
    for (var l = 1u; l < p.len; l++) {
        m = max(m, f32(x[base + l * p.inner]));
    }
    var sum = 0.0;
    for (var l = 0u; l < p.len; l++) {
        sum += exp(f32(x[base + l * p.inner]) - m);
    }
    let inv = 1.0 / sum;
    for (var l = 0u; l < p.len; l++) {
        y[base + l * p.inner] = Elem(exp(f32(x[base + l * p.inner]) - m) * inv);
    }
}
