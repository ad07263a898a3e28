// What the axis-pool kernels share (triplet_pool.wgsl, triplet_pool_wg.wgsl; src/kernels/triplet.rs
// prepends this file): the role words, the params and bindings, where a line reads and writes,
// and the store of a pooled value.

override HAS_MAX: bool = true;

struct Role {
    // line:  (b, a*b, count, stride_a), (stride_b, stride_r, max at, mean at), (out_a, out_b, 0, 0)
    // plane: (H, W, C, 0), (row max at, row mean at, row_h, row_c), (col max at, col mean at, col_c, col_w)
    u: vec4<u32>,
    v: vec4<u32>,
    w: vec4<u32>,
};

struct Params {
    x_image: u32,
    out_image: u32,
    outputs: u32,
    kind: u32,
    role: Role,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read_write> y: array<Elem>;

fn put(at: u32, role_at: vec2<u32>, m: f32, mean: f32) {
    if (HAS_MAX) {
        y[at + role_at.x] = Elem(m);
    }
    y[at + role_at.y] = Elem(mean);
}

// Line o = (n, a, b) of a line role: its `count` elements start at `base`, `stride` apart, and
// its pooled values go to `at` (plus the role's max and mean offsets).
struct Line {
    base: u32,
    stride: u32,
    count: u32,
    at: u32,
};

fn line_of(o: u32, role: Role) -> Line {
    let n = o / role.u.y;
    let ab = o % role.u.y;
    let a = ab / role.u.x;
    let b = ab % role.u.x;
    let base = n * p.x_image + a * role.u.w + b * role.v.x;
    let at = n * p.out_image + a * role.w.x + b * role.w.y;
    return Line(base, role.v.y, role.u.z, at);
}
