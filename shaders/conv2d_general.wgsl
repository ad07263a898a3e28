// Any 2-D convolution as a register-tiled implicit GEMM (operands in conv2d_general_io.wgsl).
//
// One invocation owns 4·RO_G output channels of one group × 4·RP_Q consecutive output pixels
// (flattened over images, rows and columns), accumulated as mat4x4 blocks like
// `conv2d_gemm.wgsl`. For each kernel tap it works out once which input pixel each output pixel
// reads (or that it reads the zero padding), then walks the group's input channels: per
// channel 4·RP_Q activation loads and 4·RO_G weight loads feed 16·RO_G·RP_Q FMAs. Workgroups
// are pixel blocks (x, spilling into z) × (group, channel block) (y), so weight addresses are
// uniform within a workgroup.
//
// The `if`s on RO_G and RP_Q fold away once the pipeline is specialized. Channels and
// pixels past the end inside a tile read clamped addresses and are never stored.

override RO_G: u32 = 4u;   // output channels per invocation / 4: 1, 2, 4 or 8
override RP_Q: u32 = 4u;   // output pixels per invocation / 4: 1, 2 or 4

// Stores a 4-channel × 4-pixel block: `o` is the absolute first channel, `room` how many
// channels the group has left from it, `first` the block's first pixel and `q` where it is.
fn store_block(a: mat4x4<f32>, o: u32, room: u32, first: u32, q: Quad) {
    let count = min(room, 4u);
    if (count == 0u) {
        return;
    }
    let t = terms(vec4(o) + min(vec4(0u, 1u, 2u, 3u), vec4(count - 1u)));
    store_quad(a, o, count, first, q, t);
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let first = first_pixel(wid, nwg, li);
    if (first >= p.pixels) {
        return;
    }
    let g = wid.y / p.blocks;
    let c0 = (wid.y - g * p.blocks) * (4u * RO_G);   // first channel within the group
    let o0 = g * p.cout_g + c0;
    let win = window(first, g);

    // Weight offsets of each channel's (input channel 0, tap 0).
    let ksize = p.kh * p.kw;
    let w0 = rows(g, c0, ksize);
    let w1 = rows(g, c0 + 4u, ksize);
    let w2 = rows(g, c0 + 8u, ksize);
    let w3 = rows(g, c0 + 12u, ksize);
    let w4 = rows(g, c0 + 16u, ksize);
    let w5 = rows(g, c0 + 20u, ksize);
    let w6 = rows(g, c0 + 24u, ksize);
    let w7 = rows(g, c0 + 28u, ksize);

    let in_hw = p.in_h * p.in_w;
    var r0 = zero_row(); var r1 = zero_row(); var r2 = zero_row(); var r3 = zero_row();
    var r4 = zero_row(); var r5 = zero_row(); var r6 = zero_row(); var r7 = zero_row();
    for (var ka = 0u; ka < p.kh; ka++) {
        for (var kb = 0u; kb < p.kw; kb++) {
            let t = taps(win, ka * p.dh, kb * p.dw);
            let k = ka * p.kw + kb;
            for (var c = 0u; c < p.cin_g; c++) {
                let xs = pixels(t, c * in_hw);
                let wc = c * ksize + k;
                r0 = accumulate(r0, weights(w0 + wc), xs);
                if (RO_G > 1u) { r1 = accumulate(r1, weights(w1 + wc), xs); }
                if (RO_G > 2u) {
                    r2 = accumulate(r2, weights(w2 + wc), xs);
                    r3 = accumulate(r3, weights(w3 + wc), xs);
                }
                if (RO_G > 4u) {
                    r4 = accumulate(r4, weights(w4 + wc), xs);
                    r5 = accumulate(r5, weights(w5 + wc), xs);
                    r6 = accumulate(r6, weights(w6 + wc), xs);
                    r7 = accumulate(r7, weights(w7 + wc), xs);
                }
            }
        }
    }

    // One block at a time (a loop on a parameter, so the compiler keeps it: see nth_row).
    for (var t = 0u; t < p.tile_blocks; t++) {
        let cq = t / RP_Q;
        let q = t - cq * RP_Q;
        let r = nth_row(cq, r0, r1, r2, r3, r4, r5, r6, r7);
        let px = first + 4u * q;
        store_block(block(r, q), o0 + 4u * cq, room(c0 + 4u * cq), px, quad(px));
    }
}
