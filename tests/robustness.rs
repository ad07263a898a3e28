//! Robustness: hostile checkpoints and inputs fail with clear errors in bounded memory, a lost
//! device is an error a new session recovers from, and long runs neither leak nor drift.
//!
//! Covered elsewhere and not repeated here: truncated, empty, 2^63-header and past-the-end
//! checkpoints and the `os.system` fixture (tests/weights.rs `broken_files_give_clear_errors`,
//! `pickles_that_name_other_globals_are_refused_and_never_run`); real legacy, container,
//! whole-model and big-endian files (tests/checkpoints.rs); `.npy` refusals
//! (src/npy.rs `refusals_say_what_is_wrong`, tests/cli.rs `input_problems_are_explained`,
//! `nan_inputs_do_not_crash_and_are_reported`); requests beyond the adapter's limits
//! (tests/limits.rs); shader errors naming the kernel (tests/shaders.rs
//! `a_broken_shader_is_reported_with_its_name`). Inputs that once crashed a reader are stored
//! under tests/fixtures/regressions/ and replayed by `stored_regressions_are_refused_in_bounded_memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Cursor, Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gaze::gpu::{Gpu, GpuOptions};
use gaze::graph::gpu::GpuGraph;
use gaze::weights::{pickle, StateDict};
use gaze::{npy, Tensor};

// ---------------------------------------------------------------------------------------------
// Allocation accounting: the peak of live heap bytes a closure reaches on its own thread, so a
// test can show that a file was refused without allocating more than the file justifies.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Live heap bytes of the whole process (all threads), for the long-run test.
static LIVE_ALL: AtomicIsize = AtomicIsize::new(0);

fn note(delta: isize) {
    LIVE_ALL.fetch_add(delta, Ordering::Relaxed);
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, returning its result and the most heap it held at once beyond what was live before.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - start).max(0) as usize)
}

/// What reading `file_len` bytes may cost: a fixed 1 MiB plus 512 bytes per input byte (a
/// pickle pushes up to one value, about 100 bytes, per byte, and vectors double when they grow).
/// Every forged file below claims gigabytes or more; any allocation of that size fails this.
fn assert_bounded(what: &str, file_len: usize, peak: usize) {
    let bound = (1 << 20) + 512 * file_len;
    assert!(
        peak <= bound,
        "{what}: held {peak} heap bytes for a {file_len}-byte file (bound {bound})"
    );
}

/// The tests run one at a time: the long-run test measures the process's resident memory, which
/// any other test allocating at the same time would disturb.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Pickles written by hand, opcode by opcode.

const MARK: u8 = b'(';
const TUPLE: u8 = b't';
const REDUCE: u8 = b'R';
const STOP: u8 = b'.';

fn unicode(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend_from_slice(&(s.len() as u32).to_le_bytes());
    v.extend_from_slice(s.as_bytes());
    v
}

fn short_unicode(s: &str) -> Vec<u8> {
    let mut v = vec![0x8c, s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn global(module: &str, name: &str) -> Vec<u8> {
    format!("c{module}\n{name}\n").into_bytes()
}

/// LONG1 with eight bytes: any i64.
fn int(v: i64) -> Vec<u8> {
    let mut out = vec![0x8a, 8];
    out.extend_from_slice(&v.to_le_bytes());
    out
}

fn tuple_of(items: &[i64]) -> Vec<u8> {
    let mut v = vec![MARK];
    for &i in items {
        v.extend(int(i));
    }
    v.push(TUPLE);
    v
}

/// Protocol 2: PROTO 2, `body`, STOP.
fn proto2(body: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 2];
    v.extend_from_slice(body);
    v.push(STOP);
    v
}

fn refusal(pickle_bytes: &[u8]) -> String {
    let (result, peak) = peak_heap(|| pickle::load(pickle_bytes));
    assert_bounded("pickle", pickle_bytes.len(), peak);
    match result {
        Ok(v) => panic!("a forged pickle was accepted as {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_contains(msg: &str, needles: &[&str]) {
    for n in needles {
        assert!(msg.contains(n), "`{n}` missing from: {msg}");
    }
}

/// The tensor-rebuild call torch.save writes for one float tensor.
fn tensor_pickle(storage: &str, dtype: &str, offset: i64, size: &[i64], stride: &[i64]) -> Vec<u8> {
    tensor_of(&storage_pid(storage, dtype, 16, None), offset, size, stride)
}

/// A storage's persistent id: `('storage', torch.<dtype>, key, 'cpu', numel)`, and in the
/// legacy format a sixth item, the view: None or `(view_key, offset, numel)`.
fn storage_pid(
    key: &str,
    dtype: &str,
    numel: i64,
    view: Option<Option<(&str, i64, i64)>>,
) -> Vec<u8> {
    let mut v = vec![MARK];
    v.extend(unicode("storage"));
    v.extend(global("torch", dtype));
    v.extend(unicode(key));
    v.extend(unicode("cpu"));
    v.extend(int(numel));
    match view {
        None => {}
        Some(None) => v.push(b'N'),
        Some(Some((view_key, offset, n))) => {
            v.push(MARK);
            v.extend(unicode(view_key));
            v.extend(int(offset));
            v.extend(int(n));
            v.push(TUPLE);
        }
    }
    v.push(TUPLE);
    v
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` over the storage
/// that `pid` names.
fn tensor_of(pid: &[u8], offset: i64, size: &[i64], stride: &[i64]) -> Vec<u8> {
    let mut v = global("torch._utils", "_rebuild_tensor_v2");
    v.push(MARK);
    v.extend_from_slice(pid);
    v.push(b'Q');
    v.extend(int(offset));
    v.extend(tuple_of(size));
    v.extend(tuple_of(stride));
    v.push(0x89);
    v.extend(global("collections", "OrderedDict"));
    v.push(b')');
    v.push(REDUCE);
    v.push(TUPLE);
    v.push(REDUCE);
    v
}

/// `{name: tensor}` as a protocol-2 pickle.
fn state_dict_pickle(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![b'}', MARK];
    for (name, value) in entries {
        body.extend(unicode(name));
        body.extend_from_slice(value);
    }
    body.push(b'u');
    proto2(&body)
}

/// A torch.save archive around `data_pkl`, with `storages` as `archive/data/<key>`.
fn torch_zip(data_pkl: &[u8], storages: &[(&str, &[u8])], byteorder: &[u8]) -> Vec<u8> {
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut put = |name: &str, bytes: &[u8]| {
        zip.start_file(name, opts).unwrap();
        zip.write_all(bytes).unwrap();
    };
    put("archive/data.pkl", data_pkl);
    put("archive/byteorder", byteorder);
    for (key, bytes) in storages {
        put(&format!("archive/data/{key}"), bytes);
    }
    zip.finish().unwrap().into_inner()
}

/// 0x1950a86a20f9469cfc6c, the legacy format's magic number, as LONG1 writes it.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// A legacy torch.save file: magic number, protocol version 1001, sys info, the object pickle
/// `main`, the storage key list `keys`, then `section` (each storage's int64 count and bytes).
fn legacy_file(main: &[u8], keys: &[&str], section: &[u8], little_endian: bool) -> Vec<u8> {
    let mut magic = vec![0x8a, 10];
    magic.extend(LEGACY_MAGIC);
    let mut sys_info = vec![b'}', MARK];
    sys_info.extend(unicode("protocol_version"));
    sys_info.extend(int(1001));
    sys_info.extend(unicode("little_endian"));
    sys_info.push(if little_endian { 0x88 } else { 0x89 });
    sys_info.push(b'u');
    let mut key_list = vec![b']', MARK];
    for k in keys {
        key_list.extend(unicode(k));
    }
    key_list.push(b'e');
    let mut file = Vec::new();
    for part in [magic, int(1001), sys_info, main.to_vec(), key_list] {
        file.extend(if part.starts_with(&[0x80]) {
            part
        } else {
            proto2(&part)
        });
    }
    file.extend_from_slice(section);
    file
}

/// One storage of the legacy section: its element count, then its bytes.
fn legacy_storage(count: u64, bytes: &[u8]) -> Vec<u8> {
    let mut v = count.to_le_bytes().to_vec();
    v.extend_from_slice(bytes);
    v
}

fn checkpoint_refusal(file: &[u8], name: &str) -> String {
    let (result, peak) = peak_heap(|| StateDict::from_bytes(file, name));
    assert_bounded(name, file.len(), peak);
    let msg = result.unwrap_err().to_string();
    assert!(
        msg.starts_with(name),
        "the error does not name the file: {msg}"
    );
    msg
}

fn fixture(name: &str) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/checkpoints");
    std::fs::read(format!("{dir}/{name}")).unwrap()
}

/// The `data.pkl` that the real torch.save wrote into `bare.pth`.
fn real_data_pkl() -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(Cursor::new(fixture("bare.pth"))).unwrap();
    let mut entry = zip.by_name("bare/data.pkl").unwrap();
    let mut out = Vec::new();
    entry.read_to_end(&mut out).unwrap();
    out
}

// ---------------------------------------------------------------------------------------------
// 1. Checkpoints

#[test]
fn builtins_eval_is_refused_before_anything_runs() {
    let _s = serial();
    let mut body = global("builtins", "eval");
    body.push(MARK);
    body.extend(unicode(
        "__import__('os').system('touch /tmp/gaze_eval_ran')",
    ));
    body.extend([TUPLE, REDUCE]);
    let msg = refusal(&proto2(&body));
    assert_contains(&msg, &["`builtins.eval`", "refuses"]);
}

#[test]
fn os_system_by_stack_global_in_protocol_4_is_refused_in_a_zip_checkpoint() {
    let _s = serial();
    let marker = std::env::temp_dir().join(format!("gaze_pwned_{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let mut frame = short_unicode("os");
    frame.push(0x94); // MEMOIZE
    frame.extend(short_unicode("system"));
    frame.extend([0x94, 0x93, 0x94]); // MEMOIZE, STACK_GLOBAL, MEMOIZE
    frame.extend(short_unicode(&format!("touch {}", marker.display())));
    frame.extend([0x94, 0x85, 0x94, REDUCE, 0x94, STOP]); // TUPLE1, REDUCE
    let mut evil = vec![0x80, 4, 0x95]; // PROTO 4, FRAME
    evil.extend_from_slice(&(frame.len() as u64).to_le_bytes());
    evil.extend(frame);

    assert_contains(&refusal(&evil), &["`os.system`", "refuses"]);
    let file = torch_zip(&evil, &[], b"little");
    let msg = checkpoint_refusal(&file, "evil.pth");
    assert_contains(&msg, &["`os.system`", "nothing in it is ever executed"]);
    assert!(!marker.exists(), "the pickle ran");
}

#[test]
fn a_legacy_file_naming_os_system_is_refused_unrun() {
    let _s = serial();
    let marker = std::env::temp_dir().join(format!("gaze_legacy_ran_{}", std::process::id()));
    let mut body = global("os", "system");
    body.extend(unicode(&format!("touch {}", marker.display())));
    body.extend([0x85, REDUCE]);
    // In place of the magic number, and in place of the saved object.
    let msg = checkpoint_refusal(&proto2(&body), "old.pth");
    assert_contains(&msg, &["`os.system`", "refuses"]);
    let msg = checkpoint_refusal(&legacy_file(&proto2(&body), &[], &[], true), "old.pth");
    assert_contains(&msg, &["the saved object", "`os.system`", "refuses"]);
    assert!(!marker.exists(), "the pickle ran");
}

#[test]
fn forged_legacy_files_are_refused_in_bounded_memory() {
    let _s = serial();
    let floats: Vec<u8> = (0..16u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let pid = |numel, view| storage_pid("0", "FloatStorage", numel, Some(view));
    let main =
        |pid: Vec<u8>, size: i64| state_dict_pickle(&[("w", tensor_of(&pid, 0, &[size], &[1]))]);
    let file =
        |main: Vec<u8>, keys: &[&str], section: Vec<u8>| legacy_file(&main, keys, &section, true);

    // The helpers build a loadable file when nothing is forged, with and without a view.
    let ok = StateDict::from_bytes(
        &file(main(pid(16, None), 16), &["0"], legacy_storage(16, &floats)),
        "ok.pth",
    )
    .unwrap();
    assert_eq!(ok.get("w", &[16]).unwrap().data()[15], 15.0);
    let view = file(
        main(pid(16, Some(("v", 4, 6))), 6),
        &["0"],
        legacy_storage(16, &floats),
    );
    let sd = StateDict::from_bytes(&view, "view.pth").unwrap();
    assert_eq!(
        sd.get("w", &[6]).unwrap().data(),
        &[4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    );
    // Storages are little-endian whatever the writer's byte order (PyTorch's writer converts,
    // and its reader ignores sys info), so a big-endian machine's file reads the same.
    let big = legacy_file(
        &main(pid(16, None), 16),
        &["0"],
        &legacy_storage(16, &floats),
        false,
    );
    let sd = StateDict::from_bytes(&big, "big.pth").unwrap();
    assert_eq!(
        sd.get("w", &[16]).unwrap().data(),
        ok.get("w", &[16]).unwrap().data()
    );

    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Counts past the end, and near 2^63 (whose byte size overflows).
        (
            file(
                main(pid(1 << 40, None), 16),
                &["0"],
                legacy_storage(1 << 40, &floats),
            ),
            "needs 4398046511104 bytes",
        ),
        (
            file(
                main(pid(i64::MAX - 1, None), 16),
                &["0"],
                legacy_storage(i64::MAX as u64 - 1, &floats),
            ),
            "overflow",
        ),
        (
            file(main(pid(16, None), 16), &["0"], legacy_storage(17, &floats)),
            "holds 17 elements in the file, but the pickle declares 16",
        ),
        // A truncated storage, and a section cut inside its count.
        (
            file(
                main(pid(16, None), 16),
                &["0"],
                legacy_storage(16, &floats[..40]),
            ),
            "needs 64 bytes",
        ),
        (
            file(main(pid(16, None), 16), &["0"], vec![16, 0, 0]),
            "needs 8 bytes",
        ),
        // Keys that do not match: a listed storage nothing uses, one listed twice, one never listed.
        (
            file(main(pid(16, None), 16), &["1"], legacy_storage(16, &floats)),
            "names `1`, which nothing",
        ),
        (
            file(
                main(pid(16, None), 16),
                &["0", "0"],
                [legacy_storage(16, &floats), legacy_storage(16, &floats)].concat(),
            ),
            "names `0` twice",
        ),
        (
            file(main(pid(16, None), 16), &[], vec![]),
            "storage `0` is not in the file",
        ),
        // A view past its storage, and a tensor past its view.
        (
            file(
                main(pid(16, Some(("v", 12, 8))), 8),
                &["0"],
                legacy_storage(16, &floats),
            ),
            "reaches past storage `0`",
        ),
        (
            file(
                main(pid(16, Some(("v", 4, 6))), 8),
                &["0"],
                legacy_storage(16, &floats),
            ),
            "8 elements from a storage of 6",
        ),
    ];
    for (bytes, needle) in cases {
        assert_contains(&checkpoint_refusal(&bytes, "forged.pth"), &[needle]);
    }
    // Not PyTorch's magic number.
    let mut wrong = file(main(pid(16, None), 16), &["0"], legacy_storage(16, &floats));
    wrong[4] ^= 1;
    assert_contains(&checkpoint_refusal(&wrong, "wrong.pth"), &["magic number"]);
}

#[test]
fn only_tensor_and_dict_constructors_may_be_called() {
    let _s = serial();
    // Allowed names, called the wrong way.
    let mut storage_call = global("torch", "FloatStorage");
    storage_call.extend([b')', REDUCE]);
    let mut dict_with_args = global("collections", "OrderedDict");
    dict_with_args.extend(tuple_of(&[1]));
    dict_with_args.push(REDUCE);
    for body in [storage_call, dict_with_args] {
        let msg = refusal(&proto2(&body));
        assert_contains(&msg, &["called with arguments gaze does not expect"]);
    }
    let mut string_call = unicode("os.system");
    string_call.extend([b')', REDUCE]);
    assert_contains(
        &refusal(&proto2(&string_call)),
        &["a call to a string, which is not an allowed global"],
    );
    // NEWOBJ builds only allowed classes, as PyTorch's unpickler.
    let mut newobj = unicode("os.system");
    newobj.extend([b')', 0x81]);
    assert_contains(&refusal(&proto2(&newobj)), &["NEWOBJ of a string"]);
    let mut counter = global("collections", "Counter");
    counter.extend([b')', 0x81]);
    assert_eq!(
        pickle::load(&proto2(&counter)).unwrap(),
        pickle::Value::Dict(vec![])
    );
    let mut bad_args = global("torch._utils", "_rebuild_tensor_v2");
    bad_args.extend(tuple_of(&[1, 2]));
    bad_args.push(REDUCE);
    let msg = refusal(&proto2(&bad_args));
    assert_contains(
        &msg,
        &["_rebuild_tensor_v2 called with unexpected arguments"],
    );
    // The pickle opcodes that call or build objects other ways: INST, OBJ, NEWOBJ_EX,
    // the extension registry, PERSID by text.
    for op in [b'i', b'o', 0x92, 0x82, b'P'] {
        let mut body = vec![MARK];
        body.extend(unicode("x"));
        body.push(op);
        body.extend(b"os\nsystem\n");
        let msg = refusal(&proto2(&body));
        assert_contains(
            &msg,
            &[&format!("opcode 0x{op:02x}"), "not one torch.save writes"],
        );
    }
}

#[test]
fn deep_marks_and_deep_nesting_are_refused_without_overflowing_the_stack() {
    let _s = serial();
    let marks = vec![MARK; 1 << 20];
    assert_contains(&refusal(&proto2(&marks)), &["stack underflow"]);

    // A million one-byte TUPLE1s would nest a value a million deep; dropping it would recurse
    // a million times.
    let mut tuples = vec![b')'];
    tuples.extend(vec![0x85; 1 << 20]);
    assert_contains(&refusal(&proto2(&tuples)), &["nested more than"]);

    // The same through lists: 200,000 empty lists, each APPENDed into the one below it.
    let mut lists = vec![b']'; 200_000];
    lists.extend(vec![b'a'; 199_999]);
    assert_contains(&refusal(&proto2(&lists)), &["nested more than"]);

    // MARKs closed by TUPLEs: each tuple holds the one before.
    let mut marks_nested = vec![MARK; 100_000];
    marks_nested.extend(vec![TUPLE; 100_000]);
    assert_contains(&refusal(&proto2(&marks_nested)), &["nested more than"]);
}

#[test]
fn the_memo_cannot_double_a_value_into_gigabytes() {
    let _s = serial();
    // memo[0] = [], then 64 times memo[0] = (memo[0], memo[0]): 6 bytes per doubling, 2^64
    // values if every copy were made.
    let mut body = vec![b']', b'q', 0];
    for _ in 0..64 {
        body.extend([b'h', 0, b'h', 0, 0x86, b'q', 0]);
    }
    let start = Instant::now();
    assert_contains(&refusal(&proto2(&body)), &["memo copies more values"]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn huge_memo_indices_and_length_fields_are_refused() {
    let _s = serial();
    let mut memo = vec![b'}', b'r'];
    memo.extend(u32::MAX.to_le_bytes());
    memo.push(b'j');
    memo.extend((u32::MAX - 1).to_le_bytes());
    assert_contains(&refusal(&proto2(&memo)), &["memo 4294967294 is missing"]);
    assert_contains(&refusal(&proto2(&[b'h', 7])), &["memo 7 is missing"]);

    // Lengths of 4 GB and more over a few bytes of data.
    for op in [b'X', b'B'] {
        let mut body = vec![op];
        body.extend(u32::MAX.to_le_bytes());
        body.extend(b"abc");
        assert_contains(&refusal(&proto2(&body)), &["truncated"]);
    }
    let mut long1 = vec![0x8a, 0xff];
    long1.extend(b"abc");
    assert_contains(&refusal(&proto2(&long1)), &["truncated"]);
    // LONG_BINUNICODE, BINBYTES8, BYTEARRAY8 (8-byte lengths) and LONG4 are never written
    // by torch.save for a checkpoint.
    for op in [0x8d, 0x8e, 0x96, 0x8b] {
        let mut body = vec![op];
        body.extend((4u64 << 30).to_le_bytes());
        body.extend(b"abc");
        assert_contains(&refusal(&proto2(&body)), &[&format!("opcode 0x{op:02x}")]);
    }
    // A FRAME that claims 2^63 bytes is only a hint; nothing is reserved for it.
    let mut frame = vec![0x80, 4, 0x95];
    frame.extend((1u64 << 63).to_le_bytes());
    frame.extend([b'N', STOP]);
    let (value, peak) = peak_heap(|| pickle::load(&frame));
    assert_bounded("frame", frame.len(), peak);
    assert_eq!(value.unwrap(), pickle::Value::None);
}

#[test]
fn every_truncation_and_many_corruptions_of_a_real_pickle_fail_cleanly() {
    let _s = serial();
    let pkl = real_data_pkl();
    assert!(pickle::load(&pkl).is_ok());
    for cut in 0..pkl.len() {
        assert!(pickle::load(&pkl[..cut]).is_err(), "prefix of {cut} bytes");
    }
    for at in 0..pkl.len() {
        for byte in [0x00, 0xff, MARK, 0x85, b'h', REDUCE, b'e', 0x93] {
            let mut bad = pkl.clone();
            bad[at] = byte;
            let (_, peak) = peak_heap(|| pickle::load(&bad));
            assert_bounded("corrupted pickle", bad.len(), peak);
        }
    }
}

#[test]
fn forged_tensor_sizes_strides_and_offsets_are_refused() {
    let _s = serial();
    let storage: Vec<u8> = (0..16u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let file = |tensor: Vec<u8>| {
        torch_zip(
            &state_dict_pickle(&[("w", tensor)]),
            &[("0", &storage)],
            b"little",
        )
    };
    // The helpers build a loadable checkpoint when nothing is forged.
    let ok = StateDict::from_bytes(
        &file(tensor_pickle("0", "FloatStorage", 1, &[2, 3], &[1, 2])),
        "ok.pth",
    )
    .unwrap();
    assert_eq!(
        ok.get("w", &[2, 3]).unwrap().data(),
        &[1.0, 3.0, 5.0, 2.0, 4.0, 6.0]
    );

    let cases: [(Vec<u8>, &str); 7] = [
        (
            tensor_pickle(
                "0",
                "FloatStorage",
                0,
                &[1_000_000, 1_000_000],
                &[1_000_000, 1],
            ),
            "1000000000000 elements from a storage of 16",
        ),
        (
            tensor_pickle("0", "FloatStorage", 1 << 40, &[4], &[1]),
            "reads element 1099511627779 of a storage of 16",
        ),
        (
            tensor_pickle(
                "0",
                "FloatStorage",
                0,
                &[1 << 32, 1 << 32, 1 << 32],
                &[1, 1, 1],
            ),
            "its size overflows",
        ),
        (
            tensor_pickle("0", "FloatStorage", 0, &[4], &[i64::MAX]),
            "its strides overflow",
        ),
        (
            tensor_pickle("0", "FloatStorage", 0, &[-4], &[1]),
            "a tensor size holds a value that is not a size",
        ),
        (
            tensor_pickle("7", "FloatStorage", 0, &[4], &[1]),
            "archive entry `archive/data/7`",
        ),
        (
            tensor_pickle("0", "LongStorage", 0, &[2], &[1]),
            "has dtype I64",
        ),
    ];
    for (tensor, needle) in cases {
        let msg = checkpoint_refusal(&file(tensor), "forged.pth");
        assert_contains(&msg, &[needle]);
    }
    // PyTorch 2.1+ on a big-endian machine stores storages big-endian and says so.
    let swapped: Vec<u8> = storage
        .chunks(4)
        .flat_map(|c| [c[3], c[2], c[1], c[0]])
        .collect();
    let big_endian = torch_zip(
        &state_dict_pickle(&[("w", tensor_pickle("0", "FloatStorage", 0, &[4], &[1]))]),
        &[("0", &swapped)],
        b"big",
    );
    let sd = StateDict::from_bytes(&big_endian, "be.pth").unwrap();
    assert_eq!(sd.get("w", &[4]).unwrap().data(), &[0.0, 1.0, 2.0, 3.0]);
    let odd_order = torch_zip(
        &state_dict_pickle(&[("w", tensor_pickle("0", "FloatStorage", 0, &[4], &[1]))]),
        &[("0", &storage)],
        b"middle",
    );
    assert_contains(
        &checkpoint_refusal(&odd_order, "odd.pth"),
        &["byteorder record says `middle`"],
    );
    let not_tensors = torch_zip(&state_dict_pickle(&[("w", int(3))]), &[], b"little");
    assert_contains(
        &checkpoint_refusal(&not_tensors, "odd.pth"),
        &["no state dict found", "`w` (an int)"],
    );
}

#[test]
fn zip_entry_counts_beyond_the_file_are_refused_before_the_zip_reader_reserves_them() {
    let _s = serial();
    let storage: Vec<u8> = (0..16u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let mut file = torch_zip(
        &state_dict_pickle(&[("w", tensor_pickle("0", "FloatStorage", 0, &[4], &[1]))]),
        &[("0", &storage)],
        b"little",
    );
    assert!(StateDict::from_bytes(&file, "ok.pth").is_ok());
    // The end-of-central-directory record's entry counts raised to the directory's offset:
    // the zip reader trusts any count up to that offset and reserves room for that many
    // entries (hundreds of bytes each) before reading one, while no more than one per 46
    // bytes of the file can exist.
    let eocd = file.len() - 22;
    assert_eq!(&file[eocd..eocd + 4], b"PK\x05\x06");
    let offset = u32::from_le_bytes(file[eocd + 16..eocd + 20].try_into().unwrap());
    let count = offset.min(u16::MAX as u32) as u16;
    assert!(count as usize * 46 > file.len());
    for at in [eocd + 8, eocd + 10] {
        file[at..at + 2].copy_from_slice(&count.to_le_bytes());
    }
    let msg = checkpoint_refusal(&file, "many.pth");
    assert_contains(
        &msg,
        &[&format!("declares {count} entries"), "bytes can hold"],
    );
}

fn safetensors_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn forged_safetensors_headers_are_refused_in_bounded_memory() {
    let _s = serial();
    let cases = [
        // Shape whose element count overflows 64 bits.
        safetensors_file(
            r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#,
            &[0; 16],
        ),
        // Offsets reversed, and offsets that disagree with the shape.
        safetensors_file(
            r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}"#,
            &[0; 16],
        ),
        safetensors_file(
            r#"{"w":{"dtype":"F32","shape":[1000000],"data_offsets":[0,16]}}"#,
            &[0; 16],
        ),
        // JSON nested far deeper than any header.
        safetensors_file(&format!("{{\"w\":{}", "[".repeat(100_000)), &[]),
    ];
    for file in cases {
        assert_contains(
            &checkpoint_refusal(&file, "forged.safetensors"),
            &["not a valid safetensors file"],
        );
    }
    // A header length of 50 MB over a file of a few bytes.
    let mut short = 50_000_000u64.to_le_bytes().to_vec();
    short.extend(b"{}");
    checkpoint_refusal(&short, "short.safetensors");

    let ints = safetensors_file(
        r#"{"w":{"dtype":"I32","shape":[4],"data_offsets":[0,16]}}"#,
        &[0; 16],
    );
    assert_contains(
        &checkpoint_refusal(&ints, "ints.safetensors"),
        &["tensor `w` has dtype I32; gaze reads float tensors"],
    );
}

/// A coordinate-attention checkpoint for `c` channels (mip 8).
fn coord_attention_checkpoint(c: usize) -> StateDict {
    let mip = 8;
    let mut entries = vec![
        ("conv1.weight".to_string(), vec![mip, c, 1, 1]),
        ("conv1.bias".into(), vec![mip]),
        ("conv2.weight".into(), vec![c, mip, 1, 1]),
        ("conv2.bias".into(), vec![c]),
        ("conv3.weight".into(), vec![c, mip, 1, 1]),
        ("conv3.bias".into(), vec![c]),
    ];
    for name in ["weight", "bias", "running_mean", "running_var"] {
        entries.push((format!("bn1.{name}"), vec![mip]));
    }
    let tensors = entries
        .into_iter()
        .map(|(k, shape)| (k, Tensor::from_fn(&shape, |i| 0.5 + (i % 5) as f32 * 0.1)));
    StateDict::new("ca.safetensors", tensors).unwrap()
}

// ---------------------------------------------------------------------------------------------
// 2. Inputs

fn npy_with_header(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = b"\x93NUMPY".to_vec();
    v.extend([version, 0]);
    if version == 1 {
        v.extend((header.len() as u16).to_le_bytes());
    } else {
        v.extend((header.len() as u32).to_le_bytes());
    }
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn npy_refusal(bytes: &[u8]) -> String {
    let (result, peak) = peak_heap(|| npy::parse(bytes, "x.npy"));
    assert_bounded("npy", bytes.len(), peak);
    let msg = result.unwrap_err().to_string();
    assert_contains(&msg, &["x.npy: not a usable .npy file"]);
    msg
}

#[test]
fn npy_files_that_lie_are_refused_in_bounded_memory() {
    let _s = serial();
    let petabytes = npy_with_header(
        1,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000, 1000), }",
        &[0; 64],
    );
    assert_contains(
        &npy_refusal(&petabytes),
        &["needs 4000000000000000 bytes of data, the file has 64"],
    );
    let mut long_header = b"\x93NUMPY\x02\x00".to_vec();
    long_header.extend(u32::MAX.to_le_bytes());
    long_header.extend(b"{'descr'");
    assert_contains(&npy_refusal(&long_header), &["cut off"]);
    for descr in ["<i4", "<i8", "|u1", "<f8", "<f2", "|b1"] {
        let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2,), }}");
        let msg = npy_refusal(&npy_with_header(1, &header, &[0; 16]));
        assert_contains(&msg, &[&format!("dtype '{descr}' is not float32")]);
    }
    for not_npy in [
        &b"\xff\xd8\xff\xe0 a JPEG"[..],
        b"1,2,3\n",
        b"",
        b"\x93NUMPY",
    ] {
        npy_refusal(not_npy);
    }
    let good = npy::to_bytes(&Tensor::zeros(&[1, 3, 4, 4]));
    for cut in 0..good.len() {
        npy_refusal(&good[..cut]);
    }
}

#[test]
fn wrong_rank_channels_and_empty_inputs_are_explained() {
    let _s = serial();
    let opts = Default::default();
    let build = |shape: &[usize]| {
        gaze::models::build_synthetic("resnet18", 1, &[shape.to_vec()], &opts)
            .unwrap_err()
            .to_string()
    };
    assert_contains(&build(&[3, 224, 224]), &["NCHW", "[3, 224, 224]"]);
    assert_contains(&build(&[1, 3, 0, 224]), &["non-empty", "[1, 3, 0, 224]"]);
    let sd = coord_attention_checkpoint(16);
    let msg = gaze::models::build("coord_attention", &sd, &[vec![1, 12, 8, 8]], &opts)
        .unwrap_err()
        .to_string();
    assert_contains(
        &msg,
        &[
            "ca.safetensors",
            "conv1.weight",
            "[8, 16, 1, 1]",
            "[8, 12, 1, 1]",
        ],
    );
    assert!(gaze::models::build("coord_attention", &sd, &[vec![1, 16, 8, 8]], &opts).is_ok());
}

#[test]
fn spatial_sizes_the_architecture_cannot_take_name_the_ones_it_can() {
    let _s = serial();
    let opts = Default::default();
    let build = |arch: &str, side: usize| {
        gaze::models::build_synthetic(arch, 1, &[vec![1, 3, side, side]], &opts)
    };
    for side in [64, 192, 417, 500] {
        let msg = build("resnet50_ta", side).unwrap_err().to_string();
        assert_contains(&msg, &["inputs of 193 to 416 pixels"]);
    }
    assert!(build("resnet50_ta", 224).is_ok());
    for side in [32, 127] {
        let msg = build("san10_pairwise", side).unwrap_err().to_string();
        assert_contains(&msg, &["SAN needs inputs of at least 128×128 pixels"]);
    }
    assert!(build("san10_pairwise", 128).is_ok());
}

// ---------------------------------------------------------------------------------------------
// 3. Device and 5. long runs

/// iAFF (§8.2) at a small size: 17 nodes, 15 dispatches (convs with folded BNs, means, adds,
/// blends), about 3 ms per inference on lavapipe, so a thousand runs stay within seconds.
fn small_model() -> (gaze::graph::Graph<Tensor>, Vec<Tensor>) {
    let shape = vec![2, 16, 12, 12];
    let shapes = [shape.clone(), shape.clone()];
    let graph = gaze::models::build_synthetic("iaff", 3, &shapes, &Default::default()).unwrap();
    let inputs = (0..2)
        .map(|k| Tensor::from_fn(&shape, |i| ((i * 37 + k * 11) % 101) as f32 / 50.0 - 1.0))
        .collect();
    (graph, inputs)
}

/// Resident set size in bytes: resident pages (`/proc/self/statm`, second field) times the page
/// size (`AT_PAGESZ`, entry 6 of the auxiliary vector in `/proc/self/auxv`).
#[cfg(target_os = "linux")]
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    let auxv = std::fs::read("/proc/self/auxv").unwrap();
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().unwrap());
    let page = auxv
        .chunks_exact(16)
        .find(|e| word(&e[..8]) == 6)
        .map(|e| word(&e[8..]))
        .unwrap();
    pages * page
}

#[test]
fn a_thousand_inferences_keep_memory_flat_and_outputs_identical() {
    let _s = serial();
    const RUNS: usize = 1000;
    const WARM_UP: usize = 50;
    // Allowed growth after the warm-up. Measured: none at all (the same pages stay resident).
    // A leak of one small buffer per dispatch (wgpu's and the driver's bookkeeping, about 1 kB)
    // over 950 runs of this model's ~15 dispatches would add ~14 MB of RSS; a leak of one
    // kilobyte of Rust heap per run, ~1 MB of heap.
    const MAX_RSS_GROWTH: u64 = 8 << 20;
    const MAX_HEAP_GROWTH: i64 = 1 << 20;
    let gpu = Gpu::new_blocking(&GpuOptions::default()).unwrap();
    let (graph, inputs) = small_model();
    let model = GpuGraph::new(&gpu, &graph).unwrap();
    let first = model.run_blocking(&gpu, &inputs).unwrap();
    assert!(first.data().iter().all(|v| v.is_finite()));
    let mut after_warm_up: (u64, isize) = (0, 0);
    let start = Instant::now();
    for run in 1..RUNS {
        let out = model.run_blocking(&gpu, &inputs).unwrap();
        // Bitwise: the same kernels on the same data in the same order.
        let same = out.shape() == first.shape()
            && out
                .data()
                .iter()
                .zip(first.data())
                .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "run {run} differs from the first");
        if run == WARM_UP {
            // On lavapipe "GPU memory" is host memory of this process: buffers, pipelines and
            // the driver's own allocations (made by C code, invisible to a Rust allocator)
            // all show up in the resident set, so RSS catches a leak on either side.
            #[cfg(target_os = "linux")]
            {
                after_warm_up = (resident_bytes(), LIVE_ALL.load(Ordering::Relaxed));
            }
        }
    }
    let elapsed = start.elapsed();
    #[cfg(target_os = "linux")]
    {
        let (rss, heap) = (resident_bytes(), LIVE_ALL.load(Ordering::Relaxed));
        let mib = |b: i64| b as f64 / (1 << 20) as f64;
        println!(
            "{RUNS} runs in {elapsed:?}: RSS after {WARM_UP} runs {:.1} MiB, after {RUNS} {:.1} MiB \
             (growth {:.2} MiB, bound {:.0} MiB); Rust heap {:.2} MiB -> {:.2} MiB",
            mib(after_warm_up.0 as i64),
            mib(rss as i64),
            mib(rss as i64 - after_warm_up.0 as i64),
            mib(MAX_RSS_GROWTH as i64),
            mib(after_warm_up.1 as i64),
            mib(heap as i64),
        );
        assert!(
            rss.saturating_sub(after_warm_up.0) < MAX_RSS_GROWTH,
            "RSS grew from {} to {rss} bytes over {} runs",
            after_warm_up.0,
            RUNS - WARM_UP
        );
        assert!(
            (heap as i64) - (after_warm_up.1 as i64) < MAX_HEAP_GROWTH,
            "the Rust heap grew from {} to {heap} bytes over {} runs",
            after_warm_up.1,
            RUNS - WARM_UP
        );
    }
    let _ = (after_warm_up, elapsed);
}

/// Runs `f` on its own thread and fails the test if it takes longer than `limit` (a hang).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, recv) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    recv.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("no answer within {limit:?} ({e}): a hang"))
}

#[test]
fn a_lost_device_is_an_error_and_a_new_session_works() {
    let _s = serial();
    let report = within(Duration::from_secs(120), || {
        let (graph, inputs) = small_model();
        let gpu = Gpu::new_blocking(&GpuOptions::default()).unwrap();
        let model = GpuGraph::new(&gpu, &graph).unwrap();
        let before = model.run_blocking(&gpu, &inputs).unwrap();
        let x = gpu.upload(&inputs[0]).unwrap();
        gpu.destroy_for_test();
        let mut errors = Vec::new();
        for _ in 0..2 {
            errors.push(model.run_blocking(&gpu, &inputs).map(|_| ()));
        }
        errors.push(gpu.read_blocking(&x).map(|_| ()));
        errors.push(
            GpuGraph::new(&gpu, &graph).and_then(|m| m.run_blocking(&gpu, &inputs).map(|_| ())),
        );
        let fresh = Gpu::new_blocking(&GpuOptions::default()).unwrap();
        let after = GpuGraph::new(&fresh, &graph)
            .and_then(|m| m.run_blocking(&fresh, &inputs))
            .unwrap();
        (errors, before, after)
    });
    let (errors, before, after) = report;
    for e in errors {
        let msg = e.unwrap_err().to_string();
        assert_contains(&msg, &["the GPU device was lost", "create a new session"]);
    }
    assert_eq!(before, after);
}

#[test]
fn nan_and_inf_inputs_run_without_crashing() {
    let _s = serial();
    let gpu = Gpu::new_blocking(&GpuOptions::default()).unwrap();
    let (graph, mut inputs) = small_model();
    inputs[0].data_mut()[5] = f32::NAN;
    inputs[0].data_mut()[300] = f32::INFINITY;
    inputs[1].data_mut()[7] = f32::NEG_INFINITY;
    let on_gpu = GpuGraph::new(&gpu, &graph)
        .and_then(|m| m.run_blocking(&gpu, &inputs))
        .unwrap();
    let on_cpu = gaze::graph::cpu::run(&graph, &inputs).unwrap();
    for out in [on_gpu, on_cpu] {
        assert!(out.data().iter().any(|v| !v.is_finite()));
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Inputs that once crashed, hung or exhausted memory, stored under tests/fixtures/regressions/
// as `<reader>-<what>.<ext>`: `pickle-*` go to the unpickler, `npy-*` to the .npy reader, the
// rest to `StateDict::from_bytes`. Add what fuzz/run.sh finds here: the memo-doubling pickle
// found by review, bare and in a zip, and a 2,120-byte zip from a 240 s run of the checkpoint
// target whose end record declares 11,523 entries on its disk (and 0 in all), for which the zip
// reader reserved 2.5 MB.

#[test]
fn stored_regressions_are_refused_in_bounded_memory() {
    let _s = serial();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (result, peak) = peak_heap(|| match name.split('-').next() {
            Some("pickle") => pickle::load(&bytes).map(|_| ()),
            Some("npy") => npy::parse(&bytes, &name).map(|_| ()),
            _ => StateDict::from_bytes(&bytes, &name).map(|_| ()),
        });
        assert_bounded(&name, bytes.len(), peak);
        assert!(result.is_err(), "{name} was accepted");
        seen += 1;
    }
    assert!(seen > 0, "no regression inputs under {dir}");
}
