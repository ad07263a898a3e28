//! Whole checkpoint files, as `gaze run --weights` reads them.
//!
//! The first byte picks the mode. Even: the rest is the file itself (the format is told from its
//! first bytes, so this reaches the zip reader and the safetensors reader). Odd: the rest is the
//! `data.pkl` of a `torch.save` archive built here around it, with float storages `data/0` to
//! `data/15`. Mutating a real archive rarely gets past the zip CRCs, so the odd mode is what
//! takes fuzzed pickles through the state-dict walk and the size/stride/offset checks.
#![no_main]

use std::io::{Cursor, Write};

use libfuzzer_sys::fuzz_target;
use zip::write::SimpleFileOptions;

mod bounded;

const STORAGE_BYTES: usize = 512;

fn archive(pickle: &[u8]) -> Option<Vec<u8>> {
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("archive/data.pkl", opts).ok()?;
    zip.write_all(pickle).ok()?;
    zip.start_file("archive/byteorder", opts).ok()?;
    zip.write_all(b"little").ok()?;
    for i in 0..16 {
        zip.start_file(format!("archive/data/{i}"), opts).ok()?;
        let bytes: Vec<u8> = (0..STORAGE_BYTES).map(|b| (b * 7 + i) as u8).collect();
        zip.write_all(&bytes).ok()?;
    }
    Some(zip.finish().ok()?.into_inner())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        bounded::check(rest.len(), || {
            gaze::weights::StateDict::from_bytes(rest, "fuzz.pth")
        });
    } else if let Some(file) = archive(rest) {
        bounded::check(file.len(), || {
            gaze::weights::StateDict::from_bytes(&file, "fuzz.pth")
        });
    }
});
