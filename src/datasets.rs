//! Evaluation datasets read from their distribution files.

use std::io::Read;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST's ten classes in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Mean and standard deviation of the training images' pixels in [0, 1]; the training script
/// (web/models/train_fashion_mnist.py) normalizes with the same two numbers.
pub const FASHION_MNIST_MEAN: f32 = 0.2860;
pub const FASHION_MNIST_STD: f32 = 0.3530;

/// A labelled image set, images as u8 pixels `[count, rows, cols]`.
pub struct ImageSet {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
}

fn read_gz(path: &str) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_string(),
        source,
    })?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .map_err(|source| Error::Io {
            path: path.to_string(),
            source,
        })?;
    Ok(out)
}

/// Parses an IDX file (`u8` data) and returns its dimensions and payload.
fn idx(bytes: &[u8], rank: usize, path: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let bad = |m: &str| {
        Error::Invalid(format!(
            "{path}: not an IDX file of rank {rank} u8 values: {m}"
        ))
    };
    if bytes.len() < 4 + 4 * rank
        || bytes[0] != 0
        || bytes[1] != 0
        || bytes[2] != 0x08
        || bytes[3] as usize != rank
    {
        return Err(bad("wrong magic number"));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            u32::from_be_bytes([
                bytes[4 + 4 * i],
                bytes[5 + 4 * i],
                bytes[6 + 4 * i],
                bytes[7 + 4 * i],
            ]) as usize
        })
        .collect();
    let data = &bytes[4 + 4 * rank..];
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("dimensions overflow"))?;
    if data.len() != count {
        return Err(bad(&format!(
            "dimensions {dims:?} need {count} bytes, found {}",
            data.len()
        )));
    }
    Ok((dims, data.to_vec()))
}

/// The 10,000 Fashion-MNIST test images and labels from `dir`.
pub fn fashion_mnist_test(dir: &str) -> Result<ImageSet> {
    let images_path = format!("{dir}/t10k-images-idx3-ubyte.gz");
    let labels_path = format!("{dir}/t10k-labels-idx1-ubyte.gz");
    let missing = |p: &str| {
        Error::Invalid(format!(
            "{p} not found: install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) or pass --data-dir"
        ))
    };
    if !std::path::Path::new(&images_path).exists() {
        return Err(missing(&images_path));
    }
    let (dims, images) = idx(&read_gz(&images_path)?, 3, &images_path)?;
    let (ldims, labels) = idx(
        &read_gz(&labels_path).map_err(|_| missing(&labels_path))?,
        1,
        &labels_path,
    )?;
    if ldims[0] != dims[0] {
        return Err(Error::Invalid(format!(
            "{} images but {} labels",
            dims[0], ldims[0]
        )));
    }
    Ok(ImageSet {
        images,
        labels,
        rows: dims[1],
        cols: dims[2],
    })
}

/// How dataset images become a model's input: pixels/255, the gray channel repeated to
/// `channels`, upscaled `scale` times by pixel replication, normalized per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Feed {
    pub channels: usize,
    pub scale: usize,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Feed {
    /// The feed of `gaze eval --arch`: three channels at the images' own size, normalized with
    /// the training set's mean and std, as web/models/train_fashion_mnist.py trains.
    pub fn fashion_mnist() -> Self {
        Self {
            channels: 3,
            scale: 1,
            mean: vec![FASHION_MNIST_MEAN; 3],
            std: vec![FASHION_MNIST_STD; 3],
        }
    }

    /// The feed of a model whose `[C, H, W]` input is `replicate` times the images' size
    /// (models.json's `replicate`); `model` names it in errors.
    pub fn to_input(
        set: &ImageSet,
        input: [usize; 3],
        replicate: usize,
        norm: (&[f32], &[f32]),
        model: &str,
    ) -> Result<Self> {
        let [channels, h, w] = input;
        let (mean, std) = norm;
        let scale = replicate.max(1);
        if h != scale * set.rows || w != scale * set.cols {
            return Err(Error::Invalid(format!(
                "model `{model}` takes {h}×{w} inputs with replicate {scale}, so {}×{} images; \
                 the dataset's are {}×{}",
                h / scale,
                w / scale,
                set.rows,
                set.cols
            )));
        }
        if mean.len() != channels || std.len() != channels {
            return Err(Error::Invalid(format!(
                "model `{model}`: mean and std need {channels} values"
            )));
        }
        Ok(Self {
            channels,
            scale,
            mean: mean.to_vec(),
            std: std.to_vec(),
        })
    }
}

/// Images `range` as the model input, fed as `feed` says.
pub fn normalized_batch(set: &ImageSet, range: std::ops::Range<usize>, feed: &Feed) -> Tensor {
    let (s, c) = (feed.scale, feed.channels);
    let (h, w) = (set.rows * s, set.cols * s);
    let plane = set.rows * set.cols;
    Tensor::from_fn(&[range.len(), c, h, w], |i| {
        let (x, y, ch, img) = (i % w, i / w % h, i / (w * h) % c, i / (w * h * c));
        let pixel = set.images[(range.start + img) * plane + (y / s) * set.cols + x / s];
        (pixel as f32 / 255.0 - feed.mean[ch]) / feed.std[ch]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_parsing_checks_sizes() {
        let mut file = vec![0, 0, 8, 1, 0, 0, 0, 3];
        file.extend([7, 8, 9]);
        assert_eq!(idx(&file, 1, "l").unwrap(), (vec![3], vec![7, 8, 9]));
        file.pop();
        assert!(idx(&file, 1, "l")
            .unwrap_err()
            .to_string()
            .contains("need 3 bytes, found 2"));
        assert!(idx(&[1, 2, 3], 1, "l").is_err());
    }

    #[test]
    fn batches_repeat_gray_into_channels() {
        let set = ImageSet {
            images: vec![0, 255, 51, 102],
            labels: vec![1],
            rows: 2,
            cols: 2,
        };
        let t = normalized_batch(&set, 0..1, &Feed::fashion_mnist());
        assert_eq!(t.shape(), &[1, 3, 2, 2]);
        assert_eq!(t.data()[1], (1.0 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD);
        assert_eq!(t.data()[4..8], t.data()[0..4]);
    }

    #[test]
    fn upscaling_replicates_pixels() {
        let set = ImageSet {
            images: vec![0, 255, 51, 102],
            labels: vec![1],
            rows: 2,
            cols: 2,
        };
        let feed = Feed::to_input(&set, [1, 4, 4], 2, (&[0.0], &[1.0]), "m").unwrap();
        let t = normalized_batch(&set, 0..1, &feed);
        let row = |r: usize| t.data()[r * 4..r * 4 + 4].to_vec();
        assert_eq!(row(0), [0.0, 0.0, 1.0, 1.0]);
        assert_eq!(row(1), row(0));
        assert_eq!(row(2), [0.2, 0.2, 0.4, 0.4]);
        let err = Feed::to_input(&set, [1, 4, 4], 1, (&[0.0], &[1.0]), "m").unwrap_err();
        assert!(err.to_string().contains("so 4×4 images"), "{err}");
    }
}
