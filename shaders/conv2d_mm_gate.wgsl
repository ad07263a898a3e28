// The activation hook of conv2d_mm.wgsl for a conv whose input is Coordinate Attention's
// output: the activation x[n, c, h, w] is staged as (x · a_w[n, c, w]) · a_h[n, c, h] (the
// official order of coord_apply.wgsl), so the attended tensor is never written. The gates
// come packed per image as coord_gates writes them: a_h [C, H], then a_w [C, W], with C, H, W
// the conv's input channels and plane (a 1×1 conv of one group: c is the input channel).

@group(0) @binding(8) var<storage, read> gates: array<Elem>;

fn gated(v: f32, n: u32, c: u32, ih: u32, iw: u32) -> f32 {
    let image = n * p.cin * (p.in_h + p.in_w);
    let a_w = f32(gates[image + p.cin * p.in_h + c * p.in_w + iw]);
    let a_h = f32(gates[image + c * p.in_h + ih]);
    return (v * a_w) * a_h;
}
