// Memory bandwidth: y = x, the yardstick for kernels that move more bytes than they compute
// on (src/kernels/peak.rs runs it on a tensor caches hold and on one they do not). Element
// loads and stores as every other kernel makes them; consecutive invocations touch consecutive elements (coalesced on a GPU), and each
// makes COPIES of them, a grid apart, so a CPU device's lanes also run in long stretches.

const COPIES: u32 = 4u;

struct Params {
    n: u32,
    threads: u32,
    _pad0: u32,
    _pad1: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.threads) {
        return;
    }
    for (var k = 0u; k < COPIES; k++) {
        let j = i + k * p.threads;
        if (j < p.n) {
            y[j] = x[j];
        }
    }
}
