// What the linear kernels share (linear.wgsl, linear_rows.wgsl; src/kernels/linear.rs
// prepends this file): the params and bindings.

struct Params {
    rows: u32,      // N
    features: u32,
    out_features: u32,
    act: u32,
    has_bias: u32,  // 0: `b` is a placeholder binding and is not read
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read> w: array<Elem>;
@group(0) @binding(3) var<storage, read> b: array<Elem>;
@group(0) @binding(4) var<storage, read_write> y: array<Elem>;
