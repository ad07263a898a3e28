// AFF blend y = k * (x * w + r * (1 - w)); w broadcast to x's rank-4 shape.

struct Params {
    total: u32,
    k: f32,
    _pad0: u32,
    _pad1: u32,
    dims: vec4<u32>,
    w_strides: vec4<u32>,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read> w: array<Elem>;
@group(0) @binding(3) var<storage, read> r: array<Elem>;
@group(0) @binding(4) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let wv = f32(w[broadcast_offset(i, p.dims, p.w_strides)]);
    y[i] = Elem(p.k * (f32(x[i]) * wv + f32(r[i]) * (1.0 - wv)));
}
