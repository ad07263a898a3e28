// What the coordinate-apply kernels share (coord_apply.wgsl, coord_apply_flat.wgsl;
// src/kernels/coord.rs prepends this file): the params and bindings.

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read> gates: array<Elem>;
@group(0) @binding(3) var<storage, read_write> y: array<Elem>;
