// What the triplet-combine kernels share (triplet_combine.wgsl, triplet_combine_flat.wgsl;
// src/kernels/triplet.rs prepends this file): the options, params and bindings.

override HAS_HW: bool = true;
override HAS_RESIDUAL: bool = false;
override ACT: u32 = 0u;

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    gates_image: u32,
    off_cw: u32,
    off_hc: u32,
    scale: f32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read> gates: array<Elem>;
@group(0) @binding(3) var<storage, read> residual: array<Elem>;
@group(0) @binding(4) var<storage, read_write> y: array<Elem>;
