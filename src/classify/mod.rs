//! Image classification: the evaluation preprocessing of the four papers' ImageNet scripts
//! (Resize(256) → CenterCrop(224) → ToTensor → Normalize) and top-k over bundled labels.

use image::imageops::FilterType;
use image::DynamicImage;

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
        .map_err(|e| Error::Invalid(format!("{name}: cannot decode the image: {e}")))
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
        return Err(Error::Invalid("the image is empty".into()));
    }
    let (nw, nh) = if w <= h {
        (resize, (resize as u64 * h as u64 / w as u64) as u32)
    } else {
        ((resize as u64 * w as u64 / h as u64) as u32, resize)
    };
    let rgb = img.to_rgb8();
    let resized = image::imageops::resize(&rgb, nw, nh, FilterType::Triangle);
    if nw < crop || nh < crop {
        return Err(Error::Invalid(format!(
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

/// The `k` most probable classes of one row of logits, with softmax probabilities.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&v| ((v - max) as f64).exp()).collect();
    let sum: f64 = exp.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]));
    order
        .into_iter()
        .take(k)
        .map(|i| (i, (exp[i] / sum) as f32))
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

    #[test]
    fn top_k_orders_by_probability() {
        let top = top_k(&[0.0, 3.0, 1.0, 2.0], 2);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 3]);
        assert!(
            (top[0].1 - 3f32.exp() / (1.0 + 3f32.exp() + 1f32.exp() + 2f32.exp())).abs() < 1e-6
        );
    }
}
