//! Image classification: the evaluation preprocessing of the four papers' ImageNet scripts
//! (Resize(256) → CenterCrop(224) → ToTensor → Normalize), the small-image preprocessing of the
//! demo models, and top-k over the labels. The CLI and the web page share all of it.

mod classifier;
mod manifest;
mod model;

pub use classifier::{AttentionReading, Classification, Classifier, MapReading, Prediction};
pub use manifest::{find_model, parse_manifest, read_manifest, ModelEntry};
pub use model::{Model, Ran, Source};

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The 1000 ImageNet class names in index order.
pub fn imagenet_labels() -> Vec<&'static str> {
    include_str!("imagenet_classes.txt").lines().collect()
}

pub fn decode(bytes: &[u8], name: &str) -> Result<DynamicImage> {
    image::load_from_memory(bytes)
        .map_err(|e| Error::Input(format!("{name}: cannot decode the image: {e}")))
}

/// `Resize(resize)` (shorter side; the longer one as torchvision computes it, truncated),
/// `CenterCrop(crop)`, then per-channel `(x/255 − mean) / std` as a `[1, 3, crop, crop]` tensor.
/// Resizing uses a triangle filter widened when shrinking, as PIL's antialiased bilinear does.
pub fn preprocess(
    img: &DynamicImage,
    resize: u32,
    crop: u32,
    mean: [f32; 3],
    std: [f32; 3],
) -> Result<Tensor> {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(Error::Input("the image is empty".into()));
    }
    let (nw, nh) = if w <= h {
        (resize, (resize as u64 * h as u64 / w as u64) as u32)
    } else {
        ((resize as u64 * w as u64 / h as u64) as u32, resize)
    };
    let rgb = img.to_rgb8();
    let resized = image::imageops::resize(&rgb, nw, nh, FilterType::Triangle);
    if nw < crop || nh < crop {
        return Err(Error::Input(format!(
            "a {nw}×{nh} image cannot be center-cropped to {crop}"
        )));
    }
    // torchvision: top = int(round((h − crop) / 2)), and Python rounds halves to even.
    let left = ((nw - crop) as f64 / 2.0).round_ties_even() as u32;
    let top = ((nh - crop) as f64 / 2.0).round_ties_even() as u32;
    let c = crop as usize;
    Ok(Tensor::from_fn(&[1, 3, c, c], |i| {
        let (ch, y, x) = (i / (c * c), (i / c) % c, i % c);
        let v = resized.get_pixel(left + x as u32, top + y as u32)[ch] as f32 / 255.0;
        (v - mean[ch]) / std[ch]
    }))
}

/// How a photo becomes a model input.
#[derive(Clone, Debug, PartialEq)]
pub enum Preprocess {
    /// The papers' ImageNet evaluation: resize 256, center crop 224, ImageNet mean and std.
    ImageNet,
    /// Small-image classifiers (the demo models): the whole photo padded with black to the
    /// input's aspect ratio, resized to `height × width`, normalized per channel. With
    /// `grayscale`, one luma channel repeated to `channels`, inverted first when the photo's
    /// border is light (training images show light objects on black). With `replicate` r > 1
    /// the photo is fitted to `height/r × width/r` and each pixel repeated r × r times, as a
    /// model trained on upscaled small images saw them.
    Fit {
        channels: usize,
        height: usize,
        width: usize,
        mean: Vec<f32>,
        std: Vec<f32>,
        grayscale: bool,
        replicate: usize,
    },
}

impl Preprocess {
    /// `Fit` to an input of `[C, H, W]`, checked: no empty dimension, one finite mean and one
    /// positive std per channel (a zero std would turn every pixel into ±inf).
    pub fn fit(input: [usize; 3], mean: Vec<f32>, std: Vec<f32>, grayscale: bool) -> Result<Self> {
        let [channels, height, width] = input;
        let bad = |msg: String| Err(Error::Input(msg));
        if channels == 0 || height == 0 || width == 0 {
            return bad(format!("input {input:?} has an empty dimension"));
        }
        // One image's f32 values must be addressable here (wasm32 has 2 GB): larger, its
        // allocation would abort rather than fail.
        let bytes = (input.iter()).try_fold(4usize, |b, &d| b.checked_mul(d));
        if bytes.is_none_or(|b| b > isize::MAX as usize) {
            return bad(format!(
                "input {input:?} is too large: one image would not fit this address space"
            ));
        }
        if mean.len() != channels || std.len() != channels {
            return bad(format!(
                "mean and std need {channels} values each (one per input channel), got {} and {}",
                mean.len(),
                std.len()
            ));
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return bad(format!("mean values must be finite, got {m}"));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return bad(format!("std values must be positive, got {s}"));
        }
        Ok(Preprocess::Fit {
            channels,
            height,
            width,
            mean,
            std,
            grayscale,
            replicate: 1,
        })
    }

    /// This `Fit` with photos fitted to `1/r` of the input and each pixel repeated `r × r`
    /// times; `r` must divide both sides.
    pub fn replicated(mut self, r: usize) -> Result<Self> {
        let Preprocess::Fit {
            height,
            width,
            replicate,
            ..
        } = &mut self
        else {
            return Err(Error::Input(
                "replicate applies to a model's own input, not the ImageNet transform".into(),
            ));
        };
        if r == 0 || *height % r != 0 || *width % r != 0 {
            return Err(Error::Input(format!(
                "replicate {r} does not divide the input's {height}×{width}"
            )));
        }
        *replicate = r;
        Ok(self)
    }

    /// The model input shape of one image.
    pub fn input_shape(&self) -> Vec<usize> {
        match self {
            Preprocess::ImageNet => vec![1, 3, 224, 224],
            Preprocess::Fit {
                channels,
                height,
                width,
                ..
            } => vec![1, *channels, *height, *width],
        }
    }

    pub fn apply(&self, img: &DynamicImage) -> Result<Tensor> {
        if img.width() == 0 || img.height() == 0 {
            return Err(Error::Input("the image is empty".into()));
        }
        match self {
            Preprocess::ImageNet => preprocess(img, 256, 224, IMAGENET_MEAN, IMAGENET_STD),
            Preprocess::Fit {
                channels,
                height,
                width,
                mean,
                std,
                grayscale,
                replicate,
            } => {
                let planes = if *grayscale {
                    let mut gray = img.to_luma8();
                    if light_border(&gray) {
                        image::imageops::invert(&mut gray);
                    }
                    vec![gray]
                } else if *channels == 3 {
                    let rgb = img.to_rgb8();
                    (0..3)
                        .map(|ch| {
                            GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
                                image::Luma([rgb.get_pixel(x, y)[ch]])
                            })
                        })
                        .collect()
                } else {
                    return Err(Error::Input(format!(
                        "a color photo gives 3 channels, the model takes {channels} (set \"grayscale\")"
                    )));
                };
                let r = (*replicate).max(1);
                let (h, w) = ((height / r) as u32, (width / r) as u32);
                let planes: Vec<GrayImage> = planes.iter().map(|p| fit(p, w, h)).collect();
                let plane = height * width;
                Ok(Tensor::from_fn(&[1, *channels, *height, *width], |i| {
                    let (ch, y, x) = (i / plane, i % plane / width, i % width);
                    let src = &planes[ch.min(planes.len() - 1)];
                    let v = src.get_pixel((x / r) as u32, (y / r) as u32)[0] as f32 / 255.0;
                    (v - mean[ch]) / std[ch]
                }))
            }
        }
    }
}

impl Preprocess {
    /// Per-channel mean and std of the normalization.
    fn normalization(&self) -> (Vec<f32>, Vec<f32>) {
        match self {
            Preprocess::ImageNet => (IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec()),
            Preprocess::Fit { mean, std, .. } => (mean.clone(), std.clone()),
        }
    }

    /// What the model sees, back in pixels: `[1, C, H, W]` as row-major RGBA bytes (gray for
    /// one or two channels), for display.
    pub fn to_rgba(&self, x: &Tensor) -> Result<Vec<u8>> {
        let [_, c, h, w] = crate::tensor::nchw("input view", x.shape())?;
        let (mean, std) = self.normalization();
        if mean.len() != c {
            return Err(Error::Input(format!(
                "the input has {c} channels, the normalization {}",
                mean.len()
            )));
        }
        let plane = h * w;
        let pixel = |ch: usize, i: usize| {
            let v = (x.data()[ch * plane + i] * std[ch] + mean[ch]) * 255.0;
            v.round().clamp(0.0, 255.0) as u8
        };
        let mut out = Vec::with_capacity(plane * 4);
        for i in 0..plane {
            let rgb = if c >= 3 {
                [pixel(0, i), pixel(1, i), pixel(2, i)]
            } else {
                [pixel(0, i); 3]
            };
            out.extend(rgb);
            out.push(255);
        }
        Ok(out)
    }
}

/// Whether the mean of the outermost pixels is in the light half.
fn light_border(img: &GrayImage) -> bool {
    let (w, h) = img.dimensions();
    let border = img
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x + 1 == w || *y + 1 == h);
    let (sum, count) = border.fold((0u64, 0u64), |(s, c), (_, _, p)| (s + p[0] as u64, c + 1));
    count > 0 && sum * 2 > count * 255
}

/// `img` padded with black (centered) to the aspect ratio of `w × h`, then resized to it; an
/// image already of that size is returned as is.
fn fit(img: &GrayImage, w: u32, h: u32) -> GrayImage {
    let (iw, ih) = img.dimensions();
    if (iw, ih) == (w, h) {
        return img.clone();
    }
    // The padded size: the smallest canvas of ratio w:h that holds the image.
    let (pw, ph) = if iw as u64 * h as u64 >= ih as u64 * w as u64 {
        (iw, ((iw as u64 * h as u64).div_ceil(w as u64)) as u32)
    } else {
        (((ih as u64 * w as u64).div_ceil(h as u64)) as u32, ih)
    };
    let mut canvas = GrayImage::new(pw, ph);
    image::imageops::replace(
        &mut canvas,
        img,
        ((pw - iw) / 2) as i64,
        ((ph - ih) / 2) as i64,
    );
    image::imageops::resize(&canvas, w, h, FilterType::Triangle)
}

/// Softmax of one row of logits (in f64, then rounded).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&v| ((v - max) as f64).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|&e| (e / sum) as f32).collect()
}

/// The `k` largest probabilities, with their classes, largest first.
pub fn top_k(probabilities: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    order
        .into_iter()
        .take(k)
        .map(|i| (i, probabilities[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_1000_imagenet_classes() {
        let labels = imagenet_labels();
        assert_eq!(labels.len(), 1000);
        assert_eq!(
            (labels[0], labels[281], labels[999]),
            ("tench", "tabby", "toilet tissue")
        );
    }

    #[test]
    fn preprocessing_shapes_and_normalizes() {
        // A uniform gray image stays uniform through resize and crop.
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            320,
            240,
            image::Rgb([128, 64, 255]),
        ));
        let t = preprocess(&img, 256, 224, IMAGENET_MEAN, IMAGENET_STD).unwrap();
        assert_eq!(t.shape(), &[1, 3, 224, 224]);
        let expect = |v: f32, ch: usize| (v / 255.0 - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch];
        for (ch, v) in [128.0, 64.0, 255.0].into_iter().enumerate() {
            let got = t.data()[ch * 224 * 224 + 1000];
            assert!((got - expect(v, ch)).abs() < 1e-5, "channel {ch}: {got}");
        }
    }

    #[test]
    fn center_crop_rounds_half_to_even_like_torchvision() {
        // 341 − 224 = 117: torchvision starts the crop at round(58.5) = 58 (Python's rounding).
        let img = image::RgbImage::from_fn(341, 256, |x, _| image::Rgb([(x % 256) as u8, 0, 0]));
        let t = preprocess(&DynamicImage::ImageRgb8(img), 256, 224, [0.0; 3], [1.0; 3]).unwrap();
        assert_eq!((t.data()[0] * 255.0).round(), 58.0);
    }

    fn fit_28(img: DynamicImage) -> Tensor {
        let p = Preprocess::Fit {
            channels: 3,
            height: 28,
            width: 28,
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
            grayscale: true,
            replicate: 1,
        };
        p.apply(&img).unwrap()
    }

    #[test]
    fn replicate_repeats_each_pixel_of_the_smaller_fit() {
        let img = image::GrayImage::from_fn(2, 2, |x, y| image::Luma([(x + 2 * y) as u8 * 10]));
        let p = Preprocess::fit([1, 4, 4], vec![0.0], vec![1.0], true)
            .and_then(|p| p.replicated(2))
            .unwrap();
        let t = p.apply(&DynamicImage::ImageLuma8(img)).unwrap();
        let px = |v: f32| (v * 255.0).round();
        let rows: Vec<Vec<f32>> = t
            .data()
            .chunks(4)
            .map(|r| r.iter().map(|&v| px(v)).collect())
            .collect();
        assert_eq!(rows[0], [0.0, 0.0, 10.0, 10.0]);
        assert_eq!(rows[1], rows[0]);
        assert_eq!(rows[3], [20.0, 20.0, 30.0, 30.0]);
        let err = Preprocess::fit([1, 5, 5], vec![0.0], vec![1.0], true)
            .and_then(|p| p.replicated(2))
            .unwrap_err();
        assert!(err.to_string().contains("does not divide"), "{err}");
    }

    #[test]
    fn fit_refuses_what_would_give_no_or_infinite_pixels() {
        let fit = |input, mean: &[f32], std: &[f32]| {
            Preprocess::fit(input, mean.to_vec(), std.to_vec(), false)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(fit([3, 28, 28], &[0.5; 3], &[0.25; 3]).is_ok());
        let refused = [
            (fit([0, 28, 28], &[], &[]), "empty dimension"),
            (fit([3, 28, 28], &[0.5; 2], &[0.25; 3]), "need 3 values"),
            (
                fit([1, 28, 28], &[f32::NAN], &[0.25]),
                "mean values must be finite",
            ),
            (
                fit([1, 28, 28], &[0.5], &[0.0]),
                "std values must be positive",
            ),
            (fit([1, usize::MAX / 2, 3], &[0.5], &[0.25]), "is too large"),
        ];
        for (got, want) in refused {
            assert!(got.as_ref().is_err_and(|e| e.contains(want)), "{got:?}");
        }
    }

    #[test]
    fn fit_keeps_a_dataset_sized_image_exactly() {
        let img = image::GrayImage::from_fn(28, 28, |x, y| image::Luma([(x * 9 + y) as u8]));
        let t = fit_28(DynamicImage::ImageLuma8(img.clone()));
        assert_eq!(t.shape(), &[1, 3, 28, 28]);
        for (ch, plane) in t.data().chunks(784).enumerate() {
            for (i, v) in plane.iter().enumerate() {
                assert_eq!(*v, img.as_raw()[i] as f32 / 255.0, "channel {ch} pixel {i}");
            }
        }
    }

    #[test]
    fn fit_inverts_light_backgrounds_and_pads_to_square() {
        // A dark 20×40 bar on white becomes a light bar on black, padded left and right.
        let img = image::RgbImage::from_fn(100, 200, |x, y| {
            let inside = (40..60).contains(&x) && (50..150).contains(&y);
            image::Rgb(if inside { [0, 0, 0] } else { [255, 255, 255] })
        });
        let t = fit_28(DynamicImage::ImageRgb8(img));
        let at = |x: usize, y: usize| t.data()[y * 28 + x];
        assert!(at(14, 14) > 0.9, "the bar is light: {}", at(14, 14));
        assert!(at(0, 14) < 0.01, "the padding is black: {}", at(0, 14));
        assert!(
            at(10, 14) < 0.01,
            "the inverted background is black: {}",
            at(10, 14)
        );
    }

    #[test]
    fn top_k_orders_by_probability() {
        let top = top_k(&softmax(&[0.0, 3.0, 1.0, 2.0]), 2);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 3]);
        assert!(
            (top[0].1 - 3f32.exp() / (1.0 + 3f32.exp() + 1f32.exp() + 2f32.exp())).abs() < 1e-6
        );
    }
}
