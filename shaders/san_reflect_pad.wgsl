// ReflectionPad2d: out[n,c,h,w] = x[n,c,R(h - pad, H),R(w - pad, W)].

struct Params {
    total: u32,
    height: u32,
    width: u32,
    pad: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let out_w = p.width + 2u * p.pad;
    let out_h = p.height + 2u * p.pad;
    let col = i % out_w;
    let t = i / out_w;
    let row = t % out_h;
    let plane = (t / out_h) * p.height * p.width;
    let h = reflect_index(i32(row) - i32(p.pad), i32(p.height));
    let w = reflect_index(i32(col) - i32(p.pad), i32(p.width));
    y[i] = Elem(f32(x[plane + u32(h) * p.width + u32(w)]));
}
