// y = act(x * scale[c] + shift[c]) on [N, C, ...]: a BatchNorm that cannot fold into a conv.

struct Params {
    total: u32,
    inner: u32,     // elements per channel plane
    channels: u32,
    act: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> shift: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i < p.total) {
        let c = (i / p.inner) % p.channels;
        y[i] = activate(x[i] * scale[c] + shift[c], p.act);
    }
}
