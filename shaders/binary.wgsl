// y = act(a op b), a and b broadcast to the rank-4 output (strides are 0 on broadcast axes).

struct Params {
    total: u32,
    act: u32,
    op: u32,        // 0 add, 1 sub, 2 mul (BinaryOp::code)
    _pad: u32,
    out_dims: vec4<u32>,
    a_strides: vec4<u32>,
    b_strides: vec4<u32>,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<Elem>;
@group(0) @binding(2) var<storage, read> b: array<Elem>;
@group(0) @binding(3) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let u = f32(a[broadcast_offset(i, p.out_dims, p.a_strides)]);
    let v = f32(b[broadcast_offset(i, p.out_dims, p.b_strides)]);
    var r = u + v;
    if (p.op == 1u) { r = u - v; }
    if (p.op == 2u) { r = u * v; }
    y[i] = Elem(activate(r, p.act));
}
