//! A restricted unpickler for `torch.save` checkpoints.
//!
//! It understands the opcodes `torch.save` emits, builds plain values, and accepts exactly the
//! globals of PyTorch's own weights-only allowlist (allowlist.rs). Any other global
//! (`os.system`, `builtins.eval`, a model's class, ...) stops the load the moment the pickle
//! names it, and an allowed one is never called either: gaze builds the value it stands for.

use crate::error::{Error, Result};

use super::allowlist::allowed_global;
pub use super::allowlist::{Dtype, Global, Rebuild};

/// A storage as a persistent id names it: `('storage', type, key, location, numel)` in zip
/// files, with a sixth item, the view, in the legacy format. Its bytes live elsewhere: the
/// archive entry `data/<key>`, or the legacy file's storage section.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: Dtype,
    /// Elements, as the pickle declares them (checked against the bytes present).
    pub numel: u64,
    /// Legacy storage views: `numel` elements from element `offset` of storage `key`.
    pub view: Option<StorageView>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StorageView {
    pub key: String,
    pub offset: u64,
    pub numel: u64,
}

/// A tensor as the pickle describes it: a strided view of a storage.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub dtype: Dtype,
    pub offset: usize,
    pub size: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Global(Global),
    // Boxed: the unpickler holds a value per pickle byte or so, and the memory bound
    // (tests/robustness.rs, fuzz/) is in bytes per input byte; unboxed they would triple
    // every value's size.
    Storage(Box<StorageRef>),
    Tensor(Box<TensorRef>),
    /// A value PyTorch's unpickler would build that gaze keeps only by kind ("a complex
    /// number", "a quantized tensor", ...): nothing a model's weights are made of.
    Opaque(&'static str),
}

impl Value {
    /// What the value is, for messages: "a tensor", "an int", "a dict of 3 entries".
    pub fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(_) | Value::BigInt(_) => "an int".into(),
            Value::Float(_) => "a float".into(),
            Value::Str(_) => "a string".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Tuple(v) => format!("a tuple of {}", v.len()),
            Value::List(v) => format!("a list of {}", v.len()),
            Value::Dict(v) => format!("a dict of {} entries", v.len()),
            Value::Set(v) => format!("a set of {}", v.len()),
            Value::Global(g) => format!("the global {g:?}"),
            Value::Storage(_) => "a storage".into(),
            Value::Tensor(t) => format!("a tensor {:?}", t.size),
            Value::Opaque(what) => what.to_string(),
        }
    }
}

/// Deeper values than this are refused: a state dict nests a handful of levels, and dropping or
/// copying a value recurses once per level, so a forged chain of a million one-byte TUPLE1s
/// would otherwise overflow the stack.
const MAX_DEPTH: u32 = 100;

/// A value with the size of its tree: `depth` levels, `nodes` values in all.
#[derive(Clone)]
struct Slot {
    value: Value,
    depth: u32,
    nodes: u64,
}

impl Slot {
    fn leaf(value: Value) -> Self {
        Self {
            value,
            depth: 0,
            nodes: 1,
        }
    }

    /// Depth and value count of a container holding `parts`; too deep is an error.
    fn measure(parts: &[Slot]) -> Result<(u32, u64)> {
        let depth = 1 + parts.iter().map(|s| s.depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(fail(format!(
                "values nested more than {MAX_DEPTH} deep; a state dict is a few levels"
            )));
        }
        let nodes = parts.iter().fold(1u64, |n, s| n.saturating_add(s.nodes));
        Ok((depth, nodes))
    }
}

fn values(slots: Vec<Slot>) -> Vec<Value> {
    slots.into_iter().map(|s| s.value).collect()
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Slot>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u32, Slot>,
    /// Values the memo may still copy. The memo stores and hands out copies, so without a budget
    /// a few bytes per step could double a value again and again; copies are limited to four
    /// values per byte of the pickle (the pickles torch.save writes copy one value per two or three bytes).
    copy_budget: u64,
}

fn fail(msg: impl Into<String>) -> Error {
    Error::Checkpoint(format!("checkpoint pickle: {}", msg.into()))
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| fail(format!("truncated at byte {}", self.pos)))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| fail("bad length"))?,
        ))
    }

    fn pop(&mut self) -> Result<Slot> {
        self.stack
            .pop()
            .ok_or_else(|| fail(format!("stack underflow at byte {}", self.pos)))
    }

    fn push(&mut self, value: Value) {
        self.stack.push(Slot::leaf(value));
    }

    fn top(&mut self) -> Result<&mut Slot> {
        let pos = self.pos;
        self.stack
            .last_mut()
            .ok_or_else(|| fail(format!("stack underflow at byte {pos}")))
    }

    fn pop_mark(&mut self) -> Result<Vec<Slot>> {
        let mark = self.marks.pop().ok_or_else(|| fail("MARK expected"))?;
        if mark > self.stack.len() {
            return Err(fail("MARK beyond the stack"));
        }
        let items = self.stack.split_off(mark);
        Ok(items)
    }

    fn push_tuple(&mut self, items: Vec<Slot>) -> Result<()> {
        let (depth, nodes) = Slot::measure(&items)?;
        self.stack.push(Slot {
            value: Value::Tuple(values(items)),
            depth,
            nodes,
        });
        Ok(())
    }

    fn text(&mut self, n: usize) -> Result<Value> {
        let bytes = self.take(n)?;
        let s = std::str::from_utf8(bytes).map_err(|_| fail("a string is not UTF-8"))?;
        Ok(Value::Str(s.to_string()))
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| fail("unterminated GLOBAL"))?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| fail("GLOBAL name is not text"))
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        let g = allowed_global(module, name).ok_or_else(|| refused(self.data, module, name))?;
        self.push(Value::Global(g));
        Ok(())
    }

    /// Moves `items` into the dict (SETITEM/SETITEMS) or list (APPEND/APPENDS) on top of the
    /// stack, which grows by their size.
    fn extend_top(&mut self, items: Vec<Slot>, into_dict: bool) -> Result<()> {
        let (depth, nodes) = Slot::measure(&items)?;
        let top = self.top()?;
        top.depth = top.depth.max(depth);
        top.nodes = top.nodes.saturating_add(nodes - 1);
        match (&mut top.value, into_dict) {
            (Value::Dict(dict), true) => {
                if !items.len().is_multiple_of(2) {
                    return Err(fail("SETITEMS with an odd number of items"));
                }
                let mut it = values(items).into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    dict.push((k, v));
                }
                Ok(())
            }
            (Value::List(list), false) | (Value::Set(list), false) => {
                list.extend(values(items));
                Ok(())
            }
            (_, true) => Err(fail("SETITEM on something that is not a dict")),
            (_, false) => Err(fail("APPEND on something that is not a list")),
        }
    }

    /// Pays for copying `nodes` values out of or into the memo.
    fn charge(&mut self, nodes: u64) -> Result<()> {
        self.copy_budget = self.copy_budget.checked_sub(nodes).ok_or_else(|| {
            fail("the memo copies more values than the size of the pickle justifies")
        })?;
        Ok(())
    }

    fn memo_put(&mut self, key: u32) -> Result<()> {
        let nodes = self.top()?.nodes;
        self.charge(nodes)?;
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<()> {
        let nodes = self
            .memo
            .get(&key)
            .map(|s| s.nodes)
            .ok_or_else(|| fail(format!("memo {key} is missing")))?;
        self.charge(nodes)?;
        if let Some(v) = self.memo.get(&key).cloned() {
            self.stack.push(v);
        }
        Ok(())
    }

    /// Runs to STOP; returns the value and the bytes consumed.
    fn run(mut self) -> Result<(Value, usize)> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                }
                0x95 => {
                    self.u64()?;
                }
                b'.' => return Ok((self.pop()?.value, self.pos)),
                b'}' => self.push(Value::Dict(Vec::new())),
                b']' => self.push(Value::List(Vec::new())),
                b')' => self.push(Value::Tuple(Vec::new())),
                0x8f => self.push(Value::Set(Vec::new())),
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64));
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let bytes = self.take(n)?;
                    let value = long1(bytes);
                    self.push(value);
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().map_err(|_| fail("bad float"))?);
                    self.push(Value::Float(v));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.text(n)?;
                    self.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.text(n)?;
                    self.push(v);
                }
                b'U' => {
                    // SHORT_BINSTRING: a Python 2 `str`, decoded as torch.load does (UTF-8).
                    let n = self.u8()? as usize;
                    let v = self.text(n)?;
                    self.push(v);
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let v = self.take(n)?.to_vec();
                    self.push(Value::Bytes(v));
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let v = self.take(n)?.to_vec();
                    self.push(Value::Bytes(v));
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_tuple(items)?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(fail("stack underflow in TUPLE"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_tuple(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend_top(vec![k, v], true)?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, true)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_top(vec![v], false)?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, false)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let (name, module) = (self.pop()?.value, self.pop()?.value);
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.global(&m, &n)?,
                        _ => return Err(fail("STACK_GLOBAL needs two strings")),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?.value;
                    let storage = persistent_storage(pid)?;
                    self.push(storage);
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?.value;
                    // The result holds at most what the arguments held.
                    let (depth, nodes) = (args.depth, args.nodes);
                    let value = if op == b'R' {
                        reduce(callable, args.value)?
                    } else {
                        new_object(callable, args.value)?
                    };
                    self.stack.push(Slot {
                        value,
                        depth,
                        nodes,
                    });
                }
                b'b' => {
                    // The state of an OrderedDict (a state_dict's `_metadata`), of a tensor or
                    // parameter (hooks, attributes), or of another allowed object: none changes
                    // a value gaze reads. PyTorch refuses BUILD on anything else, and so does gaze.
                    let _state = self.pop()?;
                    match self.top()?.value {
                        Value::Dict(_)
                        | Value::Tensor(_)
                        | Value::Set(_)
                        | Value::Bytes(_)
                        | Value::Opaque(_) => {}
                        _ => return Err(fail("BUILD on an object gaze does not rebuild")),
                    }
                }
                _ => {
                    return Err(fail(format!(
                    "opcode 0x{op:02x} at byte {at} is not one torch.save writes for a checkpoint"
                )))
                }
            }
            if self.stack.len() > 1 << 24 {
                return Err(fail("the stack grew past 16 million values"));
            }
        }
    }
}

/// The error for a global outside the allowlist. A whole pickled model (`torch.save(model)`)
/// names its class first; its pickle also holds the `_modules` and `_parameters` of every
/// `nn.Module`, which is how the message can say so without running anything.
fn refused(pickle: &[u8], module: &str, name: &str) -> Error {
    let contains = |needle: &[u8]| pickle.windows(needle.len()).any(|w| w == needle);
    if contains(b"_modules") && contains(b"_parameters") {
        return fail(format!(
            "it names the class `{module}.{name}`: this file is a whole model saved with \
             torch.save(model), which only that class's code can load, and gaze never runs \
             code from a checkpoint. Save its weights instead, in Python, from a file you trust: \
             torch.save(torch.load(f, weights_only=False).state_dict(), 'weights.pth')"
        ));
    }
    fail(format!(
        "it names `{module}.{name}`, which gaze refuses: a checkpoint may only name what \
         PyTorch's torch.load(weights_only=True) allows, and nothing in it is ever executed"
    ))
}

/// LONG1: a little-endian two's-complement integer of `bytes.len()` bytes.
fn long1(bytes: &[u8]) -> Value {
    if bytes.len() > 8 {
        return Value::BigInt(bytes.to_vec());
    }
    let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
        [0xff; 8]
    } else {
        [0; 8]
    };
    buf[..bytes.len()].copy_from_slice(bytes);
    Value::Int(i64::from_le_bytes(buf))
}

fn count(v: &Value, what: &str) -> Result<u64> {
    match v {
        Value::Int(n) if *n >= 0 => Ok(*n as u64),
        _ => Err(fail(format!("{what} is not a count"))),
    }
}

/// `('storage', storage_type, key, location, numel[, view])`, torch's persistent id of a
/// storage; the legacy format adds `view`: None, or `(view_key, offset, numel)`.
fn persistent_storage(pid: Value) -> Result<Value> {
    let Value::Tuple(items) = pid else {
        return Err(fail("a persistent id that is not a tuple"));
    };
    let key_text = |v: &Value| match v {
        Value::Str(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    };
    match items.as_slice() {
        [Value::Str(kind), Value::Global(Global::Storage(dtype)), key, _location, numel, rest @ ..]
            if kind == "storage" && rest.len() <= 1 =>
        {
            let key = key_text(key).ok_or_else(|| fail("a storage key that is not text"))?;
            let view = match rest.first() {
                None | Some(Value::None) => None,
                Some(Value::Tuple(v)) if v.len() == 3 => Some(StorageView {
                    key: key_text(&v[0]).ok_or_else(|| fail("a view key that is not text"))?,
                    offset: count(&v[1], "a storage view's offset")?,
                    numel: count(&v[2], "a storage view's size")?,
                }),
                Some(_) => return Err(fail("a storage view that is not (key, offset, size)")),
            };
            Ok(Value::Storage(Box::new(StorageRef {
                key,
                dtype: *dtype,
                numel: count(numel, "a storage's element count")?,
                view,
            })))
        }
        [Value::Str(kind), ..] if kind == "module" => Err(fail(
            "it holds the source code of a model class (a whole model saved with \
             torch.save(model)); save model.state_dict() instead",
        )),
        _ => Err(fail("a persistent id that is not a torch storage")),
    }
}

fn usize_list(v: &Value, what: &str) -> Result<Vec<usize>> {
    let Value::Tuple(items) = v else {
        return Err(fail(format!("{what} is not a tuple")));
    };
    items
        .iter()
        .map(|i| match i {
            Value::Int(n) if *n >= 0 => Ok(*n as usize),
            _ => Err(fail(format!("{what} holds a value that is not a size"))),
        })
        .collect()
}

/// `_rebuild_tensor(storage, offset, size, stride)`, and v2/v3, which add `requires_grad`,
/// hooks and (v3) the dtype the untyped storage holds.
fn rebuild_tensor(kind: Rebuild, args: Vec<Value>) -> Result<Value> {
    let name = match kind {
        Rebuild::Tensor => "_rebuild_tensor",
        Rebuild::TensorV2 => "_rebuild_tensor_v2",
        _ => "_rebuild_tensor_v3",
    };
    let unexpected = || fail(format!("{name} called with unexpected arguments"));
    let dtype = match (kind, args.get(6)) {
        (Rebuild::TensorV3, Some(Value::Global(Global::Dtype(d)))) => Some(*d),
        (Rebuild::TensorV3, _) => return Err(unexpected()),
        _ => None,
    };
    let min_args = if kind == Rebuild::Tensor { 4 } else { 6 };
    if args.len() < min_args {
        return Err(unexpected());
    }
    match args.as_slice() {
        [Value::Storage(storage), Value::Int(offset), size, stride, ..] if *offset >= 0 => {
            Ok(Value::Tensor(Box::new(TensorRef {
                dtype: dtype.unwrap_or(storage.dtype),
                storage: (**storage).clone(),
                offset: *offset as usize,
                size: usize_list(size, "a tensor size")?,
                stride: usize_list(stride, "a tensor stride")?,
            })))
        }
        _ => Err(unexpected()),
    }
}

/// An (ordered) dict from `()`, `(dict,)` or `([(key, value), ...],)`.
fn dict_from(args: Vec<Value>) -> Option<Value> {
    match args.into_iter().next() {
        None => Some(Value::Dict(Vec::new())),
        Some(Value::Dict(d)) => Some(Value::Dict(d)),
        Some(Value::List(pairs)) => pairs
            .into_iter()
            .map(|p| match p {
                Value::Tuple(kv) if kv.len() == 2 => {
                    let mut kv = kv.into_iter();
                    Some((kv.next()?, kv.next()?))
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(Value::Dict),
        Some(_) => None,
    }
}

/// `_codecs.encode(text, 'latin1')`: how protocol 2 writes `bytes`.
fn latin1(args: &[Value]) -> Option<Value> {
    match args {
        [Value::Str(text), Value::Str(codec)] if codec == "latin1" || codec == "latin-1" => text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect::<Option<Vec<u8>>>()
            .map(Value::Bytes),
        _ => None,
    }
}

/// REDUCE: the value the allowed global `callable` would return for `args`, built without
/// calling anything.
fn reduce(callable: Value, args: Value) -> Result<Value> {
    let Value::Global(global) = callable else {
        return Err(fail(format!(
            "a call to {}, which is not an allowed global",
            callable.describe()
        )));
    };
    let Value::Tuple(args) = args else {
        return Err(fail("REDUCE arguments are not a tuple"));
    };
    let odd_call = || {
        fail(format!(
            "{global:?} called with arguments gaze does not expect"
        ))
    };
    match global {
        Global::OrderedDict | Global::Counter => dict_from(args).ok_or_else(odd_call),
        Global::Set => match args.into_iter().next() {
            None => Ok(Value::Set(Vec::new())),
            Some(Value::List(v) | Value::Tuple(v) | Value::Set(v)) => Ok(Value::Set(v)),
            Some(_) => Err(odd_call()),
        },
        Global::ByteArray => match args.into_iter().next() {
            None => Ok(Value::Bytes(Vec::new())),
            Some(b @ Value::Bytes(_)) => Ok(b),
            Some(_) => Ok(Value::Opaque("a bytearray")),
        },
        Global::Encode => latin1(&args).ok_or_else(odd_call),
        Global::Complex => Ok(Value::Opaque("a complex number")),
        Global::Device => Ok(Value::Opaque("a torch.device")),
        Global::Layout => Ok(Value::Opaque("a tensor layout")),
        Global::Size => match args.into_iter().next() {
            Some(t @ Value::Tuple(_)) => Ok(t),
            _ => Err(odd_call()),
        },
        Global::Rebuild(kind @ (Rebuild::Tensor | Rebuild::TensorV2 | Rebuild::TensorV3)) => {
            rebuild_tensor(kind, args)
        }
        Global::Rebuild(
            Rebuild::Parameter | Rebuild::ParameterWithState | Rebuild::DeviceTensorFromCpuTensor,
        )
        | Global::TensorClass => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => Err(fail(format!("{global:?} without a tensor"))),
        },
        Global::Rebuild(Rebuild::Unsupported(what)) => Ok(Value::Opaque(what)),
        Global::RebuildFromType => match <[Value; 4]>::try_from(args) {
            Ok([func, _new_type, inner @ Value::Tuple(_), _state]) => reduce(func, inner),
            _ => Err(odd_call()),
        },
        Global::Storage(_) | Global::TypedStorage | Global::Dtype(_) | Global::QScheme => {
            Err(odd_call())
        }
    }
}

/// NEWOBJ: `cls.__new__(cls, *args)` for an allowed class, as PyTorch's unpickler allows it
/// (a `Parameter` wraps its tensor; the containers start empty and are filled by SETITEMS or
/// BUILD).
fn new_object(cls: Value, args: Value) -> Result<Value> {
    let Value::Global(global) = cls else {
        return Err(fail(format!(
            "NEWOBJ of {}, which is not an allowed class",
            cls.describe()
        )));
    };
    let Value::Tuple(args) = args else {
        return Err(fail("NEWOBJ arguments are not a tuple"));
    };
    match global {
        Global::TensorClass => Ok(match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => t,
            _ => Value::Opaque("an empty tensor"),
        }),
        Global::OrderedDict | Global::Counter => Ok(Value::Dict(Vec::new())),
        Global::Set => Ok(Value::Set(Vec::new())),
        Global::Size => reduce(Value::Global(global), Value::Tuple(args)),
        Global::ByteArray | Global::Complex | Global::Device => {
            Ok(Value::Opaque("an object of an allowed class"))
        }
        _ => Err(fail(format!("NEWOBJ of {global:?}, which is not a class"))),
    }
}

fn machine(data: &[u8]) -> Machine<'_> {
    Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Default::default(),
        copy_budget: (data.len() as u64).saturating_mul(4).saturating_add(1024),
    }
}

/// Unpickles `data` without executing anything.
pub fn load(data: &[u8]) -> Result<Value> {
    Ok(machine(data).run()?.0)
}

/// Unpickles the first pickle of `data`; returns it and the bytes it took, for files that
/// hold several pickles one after another (the legacy torch.save format).
pub fn load_prefix(data: &[u8]) -> Result<(Value, usize)> {
    machine(data).run()
}

#[cfg(test)]
mod tests {
    /// The memory bound on hostile pickles (1 MiB + 512 bytes per input byte) assumes small
    /// values: the memo may copy four per input byte, and the stack and vectors double.
    /// `tests/fixtures/regressions/checkpoint-wide-values.pth` broke it when tensors were
    /// stored unboxed (160-byte values).
    #[test]
    fn values_stay_small() {
        assert!(
            std::mem::size_of::<super::Value>() <= 40,
            "{}",
            std::mem::size_of::<super::Value>()
        );
    }
}
