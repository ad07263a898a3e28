// SAN Aggregation: out[n,c,h,w] = epilogue(sum_j wt[n, c mod Cw, j, pos] * x[n,c,tap j]),
// taps reflected (mode 1) or skipped (mode 0) outside the map. Channel c shares the weights
// of group c mod Cw (interleaved), as the CUDA kernels do.

struct Params {
    total: u32,
    channels: u32,
    weight_groups: u32,  // Cw
    height: u32,
    width: u32,
    out_width: u32,
    out_plane: u32,
    kernel: u32,
    stride: u32,
    dilation: u32,
    pad: u32,
    mode: u32,
    act: u32,
    affine: u32,         // 0: scale and shift are placeholder bindings and are not read
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read> wt: array<Elem>;
@group(0) @binding(3) var<storage, read> scale: array<Elem>;
@group(0) @binding(4) var<storage, read> shift: array<Elem>;
@group(0) @binding(5) var<storage, read_write> y: array<Elem>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let pos = i % p.out_plane;
    let nc = i / p.out_plane;
    let c = nc % p.channels;
    let n = nc / p.channels;
    let taps = p.kernel * p.kernel;
    let wbase = (n * p.weight_groups + c % p.weight_groups) * taps * p.out_plane + pos;
    let plane = nc * p.height * p.width;
    let h0 = i32((pos / p.out_width) * p.stride) - i32(p.pad);
    let w0 = i32((pos % p.out_width) * p.stride) - i32(p.pad);
    let h = i32(p.height);
    let w = i32(p.width);
    let d = i32(p.dilation);
    var acc = 0.0;
    for (var a = 0u; a < p.kernel; a++) {
        var hin = h0 + i32(a) * d;
        if (p.mode == 1u) {
            hin = reflect_index(hin, h);
        } else if (hin < 0 || hin >= h) {
            continue;
        }
        for (var b = 0u; b < p.kernel; b++) {
            var win = w0 + i32(b) * d;
            if (p.mode == 1u) {
                win = reflect_index(win, w);
            } else if (win < 0 || win >= w) {
                continue;
            }
            let weight = f32(wt[wbase + (a * p.kernel + b) * p.out_plane]);
            acc += weight * f32(x[plane + u32(hin * w + win)]);
        }
    }
    if (p.affine == 1u) {
        acc = f32(scale[c]) * acc + f32(shift[c]);
    }
    y[i] = Elem(activate(acc, p.act));
}
