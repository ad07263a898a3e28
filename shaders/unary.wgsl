// y = act(scale * x + shift)

struct Params {
    total: u32,
    act: u32,
    scale: f32,
    shift: f32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i < p.total) {
        y[i] = Elem(activate(p.scale * f32(x[i]) + p.shift, p.act));
    }
}
