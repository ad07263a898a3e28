// Copies one input of a concatenation into its slot of the output. Both are viewed as
// [rows, len, inner] around the axis; the output row holds `out_len` entries of the axis and
// this input starts at `offset`. A batch-1 input repeats over the batch (i % src_numel).

struct Params {
    total: u32,      // elements this input contributes to the output
    src_numel: u32,
    inner: u32,
    len: u32,
    out_len: u32,
    offset: u32,
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
    let q = i % p.inner;
    let t = i / p.inner;
    let a = t % p.len;
    let row = t / p.len;
    y[(row * p.out_len + p.offset + a) * p.inner + q] = Elem(f32(x[i % p.src_numel]));
}
