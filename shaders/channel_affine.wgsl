// y = act(x * scale[c] + shift[c]) on [N, C, ...]: a BatchNorm that cannot fold into a conv.

struct Params {
    total: u32,
    inner: u32,     // elements per channel plane
    channels: u32,
    act: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read> scale: array<Elem>;
@group(0) @binding(3) var<storage, read> shift: array<Elem>;
@group(0) @binding(4) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i < p.total) {
        let c = (i / p.inner) % p.channels;
        y[i] = Elem(activate(f32(x[i]) * f32(scale[c]) + f32(shift[c]), p.act));
    }
}
