// Prepended to every kernel (src/gpu/pipeline.rs).

// Threads per workgroup of 1-D kernels; src/gpu/recorder.rs `WG` says the same.
const WG: u32 = 64u;

// Flat invocation index of a grid that spills into y past the per-dimension limit
// (Recorder::grid).
fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Threads per workgroup of the small-workgroup kernels (attention, linear): small, so that a
// dispatch of a few hundred invocations still spreads over every thread of a CPU device.
// src/kernels/mod.rs `GROUP` says the same.
const GROUP: u32 = 8u;

// `flat_id` of a grid of GROUP-wide workgroups (kernels::group_grid).
fn group_flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * GROUP;
}

// (n, c, h, w) of element i of an NCHW tensor of `channels` planes of `height` x `width`.
fn nchw_of(i: u32, channels: u32, height: u32, width: u32) -> vec4<u32> {
    let plane = height * width;
    let nc = i / plane;
    let q = i % plane;
    return vec4<u32>(nc / channels, nc % channels, q / width, q % width);
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

// R(i, L) of MODULES.md §9.2 (SAN): index i of an axis of `len` mirrored once at its ends, the
// edge not repeated (PyTorch's ReflectionPad: -1 -> 1, len -> len - 2).
fn reflect_index(i: i32, len: i32) -> i32 {
    if (i < 0) {
        return -i;
    }
    if (i >= len) {
        return 2 * (len - 1) - i;
    }
    return i;
}

// Offset of element i of a rank-4 output of shape `dims` in an operand broadcast to it (the
// operand's strides are 0 on its broadcast axes).
fn broadcast_offset(i: u32, dims: vec4<u32>, strides: vec4<u32>) -> u32 {
    var rest = i;
    var offset = 0u;
    for (var d = 3; d >= 0; d--) {
        offset += (rest % dims[d]) * strides[d];
        rest = rest / dims[d];
    }
    return offset;
}
