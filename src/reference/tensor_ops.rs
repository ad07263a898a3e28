//! Concat and split as plain loops over `[N, C, H, W]`.

use crate::error::Result;
use crate::ops::tensor_ops::{concat_shape, split_shapes, Concat, Split};
use crate::tensor::Tensor;

fn at(t: &Tensor, idx: [usize; 4]) -> f32 {
    let s = t.shape();
    t.data()[((idx[0] * s[1] + idx[1]) * s[2] + idx[2]) * s[3] + idx[3]]
}

pub fn concat(inputs: &[&Tensor], spec: &Concat) -> Result<Tensor> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    let out_shape = concat_shape(spec, &shapes)?;
    let mut out = Tensor::zeros(&out_shape);
    let [n_out, c_out, h_out, w_out] = out_shape;
    let axis = spec.axis;
    let mut start = 0;
    for t in inputs {
        let s = t.shape();
        for n in 0..n_out {
            for c in 0..s[1] {
                for h in 0..s[2] {
                    for w in 0..s[3] {
                        let src_n = if s[0] == 1 { 0 } else { n };
                        let v = at(t, [src_n, c, h, w]);
                        let mut dst = [n, c, h, w];
                        dst[axis] += start;
                        let flat = ((dst[0] * c_out + dst[1]) * h_out + dst[2]) * w_out + dst[3];
                        out.data_mut()[flat] = v;
                    }
                }
            }
        }
        start += s[axis];
    }
    Ok(out)
}

pub fn split(x: &Tensor, spec: &Split) -> Result<Vec<Tensor>> {
    let shapes = split_shapes(spec, x.shape())?;
    let mut start = 0;
    let mut parts = Vec::with_capacity(shapes.len());
    for shape in shapes {
        let [_, c, h, w] = shape;
        let part = Tensor::from_fn(&shape, |i| {
            let mut idx = [i / (c * h * w), (i / (h * w)) % c, (i / w) % h, i % w];
            idx[spec.axis] += start;
            at(x, idx)
        });
        start += shape[spec.axis];
        parts.push(part);
    }
    Ok(parts)
}
