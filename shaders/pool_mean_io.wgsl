// What the mean kernels share (pool_mean.wgsl, pool_mean_rows.wgsl; src/kernels/pool.rs
// prepends this file): the params and bindings, and where an output's block starts.

struct Params {
    total: u32,     // outputs
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    rows: u32,      // reduced extent along H (1 if H is kept)
    cols: u32,      // reduced extent along W (1 if W is kept)
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read_write> y: array<Elem>;

// The first input element of output o's block.
fn block_start(o: u32) -> u32 {
    let ow = o % p.out_w;
    let rest = o / p.out_w;
    let oh = rest % p.out_h;
    let plane = rest / p.out_h;
    return (plane * p.in_h + oh) * p.in_w + ow;
}
