// Triplet-attention combine: y = act(((x*g_hw + x*g_cw) + x*g_hc) * scale [+ residual]), in the
// order the PyTorch module adds its branch outputs; without the hw branch
// y = act((x*g_cw + x*g_hc) * scale [+ residual]). Absent operands are bound to another buffer
// and ignored through the flags. Gates: g_hw [N,1,H,W], g_cw [N,1,C,W], g_hc [N,1,H,C].

struct Params {
    total: u32,
    c: u32,
    h: u32,
    w: u32,
    has_hw: u32,
    has_residual: u32,
    act: u32,
    scale: f32,     // 0.33333334 or 0.5
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g_hw: array<f32>;
@group(0) @binding(3) var<storage, read> g_cw: array<f32>;
@group(0) @binding(4) var<storage, read> g_hc: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let w = i % p.w;
    let h = (i / p.w) % p.h;
    let nc = i / (p.w * p.h);
    let c = nc % p.c;
    let n = nc / p.c;
    let v = x[i];
    let cw = v * g_cw[nc * p.w + w];
    let hc = v * g_hc[(n * p.h + h) * p.c + c];
    var sum = cw + hc;
    if (p.has_hw != 0u) {
        sum = (v * g_hw[(n * p.h + h) * p.w + w] + cw) + hc;
    }
    var r = sum * p.scale;
    if (p.has_residual != 0u) {
        r += residual[i];
    }
    y[i] = activate(r, p.act);
}
