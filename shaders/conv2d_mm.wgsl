// Any 2-D convolution (PyTorch Conv2d: cross-correlation, zero padding, weights
// [Cout, Cin/groups, kh, kw], any kernel, stride, padding, dilation and groups) as an implicit
// GEMM tiled through workgroup memory, with the fused epilogue (conv2d_epilogue.wgsl):
// Y[o, px] = Σ_k W[o, k] · X̂[k, px], k = (input channel of the group, ky, kx) in the weights'
// own order, px = (image, output row, output column).
//
// This is the shape that runs well on GPUs (TF.js's and ONNX Runtime Web's conv2d_mm): a
// workgroup of WX × WY invocations owns a 4·WY-channel × 4·WX-pixel output block; for each
// TK-deep slice of the reduction it stages the block's weights and activations in workgroup
// memory, one coalesced load per invocation and element, then every invocation multiplies its
// 4 × 4 outputs from there. Each invocation's channels are WY apart and its pixels WX apart,
// so neighbouring invocations read neighbouring workgroup words and store neighbouring pixels.
// On a software device a barrier costs a coroutine switch, so there the register-tiled kernels
// win; the tuner measures which (src/tune).
//
// `gated` comes from conv2d_mm_gate.wgsl (Coordinate Attention's multiply, applied as the
// activations are staged) or conv2d_mm_nogate.wgsl (nothing).

struct Params {
    pixels: u32,    // N * Ho * Wo
    out_hw: u32,
    out_w: u32,
    blocks: u32,    // channel blocks (4·WY channels) per group
    reduction: u32, // cin_g * kh * kw
    cin: u32,
    cin_g: u32,
    cout_g: u32,
    cout: u32,
    in_h: u32,
    in_w: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    flags: u32,     // 1 = bias, 2 = scale/shift, 4 = residual
    act: u32,       // Activation::code, after bias and affine
    post_act: u32,  // Activation::code, after the residual add
};

override WX: u32 = 16u;  // invocations along pixels: 4·WX pixels per workgroup
override WY: u32 = 16u;  // invocations along channels (a multiple of 4): 4·WY channels
override TK: u32 = 16u;  // reduction steps staged per barrier (divides WX·WY)

override TN: u32 = 4u * WX;
override TM: u32 = 4u * WY;

var<workgroup> ws: array<f32, TK * TM>;  // [k][channel]
var<workgroup> xs: array<f32, TK * TN>;  // [k][pixel]

// Where one output pixel reads its input: the offset of channel 0 of its group, and the
// top-left input row and column of its window (wrapped past zero where padding is read, so
// one unsigned bound check also catches the padding above and left).
struct Window {
    base: u32,
    n: u32,
    ih: u32,
    iw: u32,
    ok: bool,
};

fn window(px: u32, g: u32) -> Window {
    let q = min(px, p.pixels - 1u);
    let n = q / p.out_hw;
    let pin = q - n * p.out_hw;
    let oh = pin / p.out_w;
    let ow = pin - oh * p.out_w;
    let base = (n * p.cin + g * p.cin_g) * p.in_h * p.in_w;
    return Window(base, n, oh * p.sh - p.ph, ow * p.sw - p.pw, px < p.pixels);
}

// X̂[k, px] for the pixel whose window is `win`: zero past the reduction and in the padding.
fn activation(win: Window, k: u32) -> f32 {
    let ksize = p.kh * p.kw;
    let c = k / ksize;
    let r = k - c * ksize;
    let ky = r / p.kw;
    let ih = win.ih + ky * p.dh;
    let iw = win.iw + (r - ky * p.kw) * p.dw;
    if (!win.ok || k >= p.reduction || ih >= p.in_h || iw >= p.in_w) {
        return 0.0;
    }
    return gated(f32(x[win.base + (c * p.in_h + ih) * p.in_w + iw]), win.n, c, ih, iw);
}

// W[o, k] of the group's channel `o`: zero past the group's channels and the reduction.
fn weight(g: u32, o: u32, k: u32) -> f32 {
    if (o >= p.cout_g || k >= p.reduction) {
        return 0.0;
    }
    return f32(wt[(g * p.cout_g + o) * p.reduction + k]);
}

@compute @workgroup_size(WX, WY)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    // Pixel blocks spill from x into z past the per-dimension workgroup limit.
    let px0 = (wid.x + wid.z * nwg.x) * TN;
    if (px0 >= p.pixels) {
        return;
    }
    let g = wid.y / p.blocks;
    let o0 = (wid.y - g * p.blocks) * TM;
    let lanes = WX * WY;

    // Staging: this invocation always loads the activations of one pixel (column li % TN, at
    // rows li / TN + j·lanes/TN) and the weights of one reduction row (li % TK, at channels
    // li / TK + j·lanes/TK).
    let win = window(px0 + li % TN, g);
    let x_row = li / TN;
    let w_k = li % TK;
    let w_row = li / TK;

    var acc = array<vec4<f32>, 4>();
    for (var k0 = 0u; k0 < p.reduction; k0 += TK) {
        for (var r = x_row; r < TK; r += lanes / TN) {
            xs[r * TN + li % TN] = activation(win, k0 + r);
        }
        for (var m = w_row; m < TM; m += lanes / TK) {
            ws[w_k * TM + m] = weight(g, o0 + m, k0 + w_k);
        }
        workgroupBarrier();
        for (var k = 0u; k < TK; k++) {
            let a = vec4(ws[k * TM + lid.y], ws[k * TM + lid.y + WY],
                         ws[k * TM + lid.y + 2u * WY], ws[k * TM + lid.y + 3u * WY]);
            let b = vec4(xs[k * TN + lid.x], xs[k * TN + lid.x + WX],
                         xs[k * TN + lid.x + 2u * WX], xs[k * TN + lid.x + 3u * WX]);
            acc[0] = fma(vec4(a.x), b, acc[0]);
            acc[1] = fma(vec4(a.y), b, acc[1]);
            acc[2] = fma(vec4(a.z), b, acc[2]);
            acc[3] = fma(vec4(a.w), b, acc[3]);
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let o = o0 + lid.y + i * WY;
        if (o < p.cout_g) {
            let channel = g * p.cout_g + o;
            let v = pre_residual(acc[i], splat_terms(channel));
            for (var j = 0u; j < 4u; j++) {
                let px = px0 + lid.x + j * WX;
                if (px < p.pixels) {
                    let n = px / p.out_hw;
                    let at = (n * p.cout + channel) * p.out_hw + (px - n * p.out_hw);
                    y[at] = Elem(post_residual(v[j], at));
                }
            }
        }
    }
}
