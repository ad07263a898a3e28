// What the coordinate-gate kernels share (coord_gates.wgsl, coord_gates_flat.wgsl;
// src/kernels/coord.rs prepends this file): the roles, params and bindings.

struct Role {
    head: vec4<u32>,   // start, tiles per image, position tiles, positions (H or W)
    offs: vec4<u32>,   // first row of f, first output, first weight, first bias
};

struct Params {
    n: u32,
    c: u32,
    mip: u32,
    rows: u32,         // H + W
    role: array<Role, 2>,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> f: array<Elem>;
@group(0) @binding(2) var<storage, read> weight: array<Elem>;
@group(0) @binding(3) var<storage, read> bias: array<Elem>;
@group(0) @binding(4) var<storage, read_write> y: array<Elem>;
