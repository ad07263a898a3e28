//! The legacy (pre-1.6, non-zip) torch.save reader, through `StateDict::from_bytes`.
//!
//! The first byte picks the mode. Even: the rest is the whole file. Odd: the rest follows the
//! two pickles every legacy file starts with (the magic number and protocol version 1001), so
//! mutations land in what varies: the sys info, the saved object with its persistent storage
//! ids and views, the storage key list, and the section of counts and raw storages.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod bounded;

/// PROTO 2, LONG1 0x1950a86a20f9469cfc6c, STOP; then PROTO 2, BININT2 1001, STOP.
const HEADER: [u8; 21] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    0x80, 0x02, b'M', 0xe9, 0x03, b'.',
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        [&HEADER[..], rest].concat()
    };
    bounded::check(file.len(), || {
        gaze::weights::StateDict::from_bytes(&file, "fuzz.pth")
    });
});
