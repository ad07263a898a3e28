// What every conv kernel shares (src/kernels/conv.rs prepends this file): its bindings, over
// the kernel's own `Params` (which has flags, act, post_act), and the fused epilogue
// v = conv + bias; v = v*scale + shift; v = act(v); v = post_act(v + residual).
// Absent epilogue operands are bound to the weights and never read (`flags` says which are
// present: 1 = bias, 2 = scale/shift, 4 = residual).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Elem>;
@group(0) @binding(2) var<storage, read> wt: array<Elem>;
@group(0) @binding(3) var<storage, read> bias: array<Elem>;
@group(0) @binding(4) var<storage, read> scale: array<Elem>;
@group(0) @binding(5) var<storage, read> shift: array<Elem>;
@group(0) @binding(6) var<storage, read> residual: array<Elem>;
@group(0) @binding(7) var<storage, read_write> y: array<Elem>;

// Bias, scale and shift of channel c: zero, one and zero where absent.
fn channel_terms(c: u32) -> vec3<f32> {
    var t = vec3(0.0, 1.0, 0.0);
    if ((p.flags & 1u) != 0u) {
        t.x = f32(bias[c]);
    }
    if ((p.flags & 2u) != 0u) {
        t.y = f32(scale[c]);
        t.z = f32(shift[c]);
    }
    return t;
}

// The epilogue operands of 4 channels (or one, splat).
struct Terms {
    bias: vec4<f32>,
    scale: vec4<f32>,
    shift: vec4<f32>,
};

fn terms(o: vec4<u32>) -> Terms {
    let a = channel_terms(o.x);
    let b = channel_terms(o.y);
    let c = channel_terms(o.z);
    let d = channel_terms(o.w);
    return Terms(vec4(a.x, b.x, c.x, d.x), vec4(a.y, b.y, c.y, d.y), vec4(a.z, b.z, c.z, d.z));
}

fn splat_terms(c: u32) -> Terms {
    let t = channel_terms(c);
    return Terms(vec4(t.x), vec4(t.y), vec4(t.z));
}

// The epilogue up to the residual: act((conv + bias)·scale + shift), 4 values at a time.
fn pre_residual(conv: vec4<f32>, t: Terms) -> vec4<f32> {
    let v = (conv + t.bias) * t.scale + t.shift;
    return vec4(activate(v.x, p.act), activate(v.y, p.act), activate(v.z, p.act), activate(v.w, p.act));
}

// The rest of the epilogue for output index i: post_act(v + residual) when there is one.
fn post_residual(v: f32, i: u32) -> f32 {
    if ((p.flags & 4u) != 0u) {
        return activate(v + f32(residual[i]), p.post_act);
    }
    return v;
}
