//! `.npy` input and output (float32, C order).
//!
//! Written here rather than taken from a crate because inputs come from strangers: every length
//! is checked against the bytes actually present before anything is allocated, and each
//! refusal says what was found.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

const MAGIC: &[u8] = b"\x93NUMPY";

fn bad(path: &str, msg: impl std::fmt::Display) -> Error {
    Error::Input(format!("{path}: not a usable .npy file: {msg}"))
}

/// Parses a float32 `.npy` file held in memory. `path` only names the file in errors.
pub fn parse(bytes: &[u8], path: &str) -> Result<Tensor> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(path, "it does not start with the NumPy magic string"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(path, format!("format version {v} is not supported"))),
    };
    let header = bytes
        .get(start..start.saturating_add(header_len))
        .ok_or_else(|| bad(path, "the header is cut off"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad(path, "the header is not text"))?;
    let descr =
        dict_value(header, "descr").ok_or_else(|| bad(path, "the header has no 'descr'"))?;
    let descr = quoted_prefix(descr).ok_or_else(|| bad(path, "'descr' is not a string"))?;
    if descr != "<f4" && descr != "=f4" {
        return Err(bad(
            path,
            format!("dtype '{descr}' is not float32; save the input with x.astype(np.float32)"),
        ));
    }
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(bad(
            path,
            "Fortran-ordered arrays are not supported; use np.ascontiguousarray",
        ));
    }
    let shape = parse_shape(
        dict_value(header, "shape").ok_or_else(|| bad(path, "the header has no 'shape'"))?,
    )
    .ok_or_else(|| bad(path, "the shape in the header is malformed"))?;
    let data = &bytes[start + header_len..];
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| n.checked_mul(4).is_some())
        .ok_or_else(|| bad(path, format!("shape {shape:?} is impossibly large")))?;
    if data.len() != numel * 4 {
        return Err(bad(
            path,
            format!(
                "shape {shape:?} needs {} bytes of data, the file has {}",
                numel * 4,
                data.len()
            ),
        ));
    }
    let values = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::new(shape, values)
}

/// The raw text of `key`'s value in the header's Python dict literal.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let quoted = [format!("'{key}'"), format!("\"{key}\"")];
    let at = quoted
        .iter()
        .find_map(|k| header.find(k.as_str()).map(|i| i + k.len()))?;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// The contents of the string literal at the start of `value`.
fn quoted_prefix(value: &str) -> Option<&str> {
    let quote = value.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &value[1..];
    Some(&body[..body.find(quote)?])
}

fn parse_shape(value: &str) -> Option<Vec<usize>> {
    let inner = value.strip_prefix('(')?;
    let inner = &inner[..inner.find(')')?];
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect()
}

pub fn read(path: &str) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_string(),
        source,
    })?;
    parse(&bytes, path)
}

/// Serializes a tensor as a version-1 `.npy` (header padded to 64 bytes, as NumPy writes it).
pub fn to_bytes(t: &Tensor) -> Vec<u8> {
    let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + t.numel() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in t.data() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

pub fn write(path: &str, t: &Tensor) -> Result<()> {
    std::fs::write(path, to_bytes(t)).map_err(|source| Error::Io {
        path: path.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = Tensor::from_fn(&[2, 3, 1, 5], |i| i as f32 * 0.5 - 3.0);
        assert_eq!(parse(&to_bytes(&t), "t.npy").unwrap(), t);
        let v = Tensor::from_fn(&[7], |i| i as f32);
        assert_eq!(parse(&to_bytes(&v), "v.npy").unwrap(), v);
    }

    #[test]
    fn header_is_64_byte_aligned() {
        let bytes = to_bytes(&Tensor::zeros(&[1, 3, 224, 224]));
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
    }

    fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn error_of(bytes: &[u8]) -> String {
        parse(bytes, "x.npy").unwrap_err().to_string()
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        assert!(error_of(b"hello world").contains("magic"));
        let ints = with_header(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
            &[0; 16],
        );
        assert!(error_of(&ints).contains("'<i8' is not float32"));
        let huge = with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000000000, 1000000), }", &[]);
        assert!(error_of(&huge).contains("impossibly large"));
        let short = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 4, 4), }",
            &[0; 20],
        );
        assert!(error_of(&short).contains("needs 192 bytes of data, the file has 20"));
        let fortran = with_header(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
            &[0; 16],
        );
        assert!(error_of(&fortran).contains("Fortran"));
        let cut = &to_bytes(&Tensor::zeros(&[2]))[..20];
        assert!(error_of(cut).contains("cut off"));
    }
}
