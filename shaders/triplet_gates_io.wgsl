// What the triplet-gate kernels share (triplet_gates.wgsl, triplet_gates_flat.wgsl;
// src/kernels/triplet.rs prepends this file): the kernel size, the roles, params and bindings.

override K: u32 = 7u;

struct Role {
    head: vec4<u32>,   // start, tiles per image, tiles along the slide axis, bias index
    ext: vec4<u32>,    // rows, slide length, p_row, p_slide
    offs: vec4<u32>,   // offset of the max map in the pools, offset in the gates, w_off, 0
    wstr: vec4<u32>,   // w_row, w_slide, 0, 0
};

struct Params {
    n: u32,
    pooled_image: u32,
    gates_image: u32,
    roles: u32,
    role: array<Role, 3>,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pooled: array<Elem>;
@group(0) @binding(2) var<storage, read> weight: array<Elem>;
@group(0) @binding(3) var<storage, read> bias: array<Elem>;
@group(0) @binding(4) var<storage, read_write> y: array<Elem>;
