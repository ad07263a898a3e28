// Prepended to every kernel (src/gpu/pipeline.rs).

// Threads per workgroup of 1-D kernels; src/gpu/recorder.rs `WG` says the same.
const WG: u32 = 64u;

// Flat invocation index of a grid that spills into y past the per-dimension limit
// (Recorder::grid).
fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Activation codes: `Activation::code` in src/ops/mod.rs.
fn activate(x: f32, kind: u32) -> f32 {
    switch kind {
        case 1u: { return max(x, 0.0); }
        case 2u: { return clamp(x, 0.0, 6.0); }
        case 3u: { return 1.0 / (1.0 + exp(-x)); }
        case 4u: { return clamp(x + 3.0, 0.0, 6.0) / 6.0; }
        case 5u: { return x * (clamp(x + 3.0, 0.0, 6.0) / 6.0); }
        default: { return x; }
    }
}
