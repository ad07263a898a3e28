//! The checkpoint reader on inputs that look like safetensors files: an 8-byte little-endian
//! header length and a JSON header. The first byte of the fuzz input picks whether the length
//! prefix is taken from the input or made to match it, so both the length checks and the JSON
//! and offset checks behind them get explored.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod bounded;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        bounded::check(rest.len(), || {
            gaze::weights::StateDict::from_bytes(rest, "fuzz.safetensors")
        });
        return;
    }
    // `rest` = JSON header, then tensor bytes after the first 0 byte (if any).
    let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let (header, body) = rest.split_at(split);
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(body.get(1..).unwrap_or(&[]));
    bounded::check(file.len(), || {
        gaze::weights::StateDict::from_bytes(&file, "fuzz.safetensors")
    });
});
