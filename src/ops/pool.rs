//! Spatial pooling on NCHW tensors: max and average pooling as PyTorch's `MaxPool2d` /
//! `AvgPool2d` define them (square window, floor mode), and means over H, W or both.

use crate::error::{shape_err, Result};
use crate::tensor::nchw;

/// `MaxPool2d(kernel, stride, padding)`, floor mode; padded positions never win (they act as −∞).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaxPool2d {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

/// `AvgPool2d(kernel, stride, padding, count_include_pad)`, floor mode, no divisor override.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AvgPool2d {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub count_include_pad: bool,
}

impl AvgPool2d {
    /// `AvgPool2d(k)`: stride = kernel, no padding (the TA-ResNet head uses k = 7).
    pub fn square(kernel: usize) -> Self {
        Self {
            kernel,
            stride: kernel,
            padding: 0,
            count_include_pad: true,
        }
    }

    /// The number PyTorch divides the window sum by for the window starting at `start` (may be
    /// negative) along an axis of `size`: the window is first clipped to the padded extent
    /// `size + padding`, then counted with padding or clamped to the image.
    pub fn axis_count(&self, start: isize, size: usize) -> usize {
        let end = (start + self.kernel as isize).min((size + self.padding) as isize);
        if self.count_include_pad {
            (end - start) as usize
        } else {
            (end.min(size as isize) - start.max(0)) as usize
        }
    }
}

/// Which spatial axes a mean reduces (each kept as a size-1 axis).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeanOver {
    /// Global average `[N,C,H,W] → [N,C,1,1]` (`AdaptiveAvgPool2d(1)`).
    HW,
    /// `[N,C,H,W] → [N,C,H,1]` (`AdaptiveAvgPool2d((None, 1))`, CA's `z_h`).
    W,
    /// `[N,C,H,W] → [N,C,1,W]` (`AdaptiveAvgPool2d((1, None))`, CA's `z_w`).
    H,
}

/// The mean of `x` over the spatial axes `over`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpatialMean {
    pub over: MeanOver,
}

impl MeanOver {
    pub fn reduces_h(self) -> bool {
        matches!(self, MeanOver::HW | MeanOver::H)
    }

    pub fn reduces_w(self) -> bool {
        matches!(self, MeanOver::HW | MeanOver::W)
    }
}

/// Output size of one axis of a floor-mode window op, with PyTorch's checks.
fn window_out(
    op: &'static str,
    x: &[usize],
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<usize> {
    if kernel == 0 || stride == 0 {
        return Err(shape_err(
            op,
            format!("kernel ({kernel}) and stride ({stride}) must be positive"),
        ));
    }
    // PyTorch refuses more padding than half the window: a window could then lie wholly in it.
    if padding > kernel / 2 {
        return Err(shape_err(
            op,
            format!("padding {padding} must be at most half the kernel size {kernel}"),
        ));
    }
    let padded = size + 2 * padding;
    if padded < kernel {
        return Err(shape_err(
            op,
            format!(
                "kernel {kernel} is larger than the padded input ({size} + 2·{padding}) of {x:?}"
            ),
        ));
    }
    Ok((padded - kernel) / stride + 1)
}

fn window_shape(
    op: &'static str,
    x: &[usize],
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<[usize; 4]> {
    let [n, c, h, w] = nchw(op, x)?;
    if h == 0 || w == 0 {
        return Err(shape_err(
            op,
            format!("expects a non-empty plane, got {x:?}"),
        ));
    }
    let ho = window_out(op, x, h, kernel, stride, padding)?;
    let wo = window_out(op, x, w, kernel, stride, padding)?;
    Ok([n, c, ho, wo])
}

impl MaxPool2d {
    pub fn out_shape(&self, x: &[usize]) -> Result<[usize; 4]> {
        window_shape("max_pool", x, self.kernel, self.stride, self.padding)
    }
}

impl AvgPool2d {
    pub fn out_shape(&self, x: &[usize]) -> Result<[usize; 4]> {
        window_shape("avg_pool", x, self.kernel, self.stride, self.padding)
    }
}

impl SpatialMean {
    pub fn out_shape(&self, x: &[usize]) -> Result<[usize; 4]> {
        let op = "spatial_mean";
        let [n, c, h, w] = nchw(op, x)?;
        if h == 0 || w == 0 {
            return Err(shape_err(
                op,
                format!("cannot average an empty plane {x:?}"),
            ));
        }
        let ho = if self.over.reduces_h() { 1 } else { h };
        let wo = if self.over.reduces_w() { 1 } else { w };
        Ok([n, c, ho, wo])
    }
}
