//! A restricted unpickler for `torch.save` checkpoints.
//!
//! It understands the opcodes `torch.save` emits, builds plain values, and accepts exactly the
//! globals that rebuild tensors and ordered dicts. Any other global (`os.system`,
//! `builtins.eval`, ...) stops the load the moment the pickle names it: nothing is ever called.

use crate::error::{Error, Result};

/// Element types of torch storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }
}

/// The callables a checkpoint may name.
#[derive(Clone, Debug, PartialEq)]
pub enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(Dtype),
}

/// A tensor as the pickle describes it; its bytes live in the archive entry `data/<key>`.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage_key: String,
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
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(Global),
    Storage { key: String, dtype: Dtype },
    Tensor(TensorRef),
    Mark,
}

fn allowed_global(module: &str, name: &str) -> Option<Global> {
    let storage = |d| Some(Global::Storage(d));
    match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch", "FloatStorage") => storage(Dtype::F32),
        ("torch", "DoubleStorage") => storage(Dtype::F64),
        ("torch", "HalfStorage") => storage(Dtype::F16),
        ("torch", "BFloat16Storage") => storage(Dtype::BF16),
        ("torch", "LongStorage") => storage(Dtype::I64),
        ("torch", "IntStorage") => storage(Dtype::I32),
        ("torch", "ShortStorage") => storage(Dtype::I16),
        ("torch", "CharStorage") => storage(Dtype::I8),
        ("torch", "ByteStorage") => storage(Dtype::U8),
        ("torch", "BoolStorage") => storage(Dtype::Bool),
        _ => None,
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
    Error::Invalid(format!("checkpoint pickle: {}", msg.into()))
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
        let g = allowed_global(module, name).ok_or_else(|| {
            fail(format!(
                "it names `{module}.{name}`, which gaze refuses: a checkpoint may only rebuild \
                 tensors and dicts, and nothing in it is ever executed"
            ))
        })?;
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
            (Value::List(list), false) => {
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

    fn run(mut self) -> Result<Value> {
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
                b'.' => return Ok(self.pop()?.value),
                b'}' => self.push(Value::Dict(Vec::new())),
                b']' => self.push(Value::List(Vec::new())),
                b')' => self.push(Value::Tuple(Vec::new())),
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
                    if n > 8 {
                        return Err(fail("an integer wider than 64 bits"));
                    }
                    let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                        [0xff; 8]
                    } else {
                        [0; 8]
                    };
                    buf[..n].copy_from_slice(bytes);
                    self.push(Value::Int(i64::from_le_bytes(buf)));
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
                b'e' => {
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
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?.value;
                    // The result holds at most what the arguments held.
                    let (depth, nodes) = (args.depth, args.nodes);
                    let value = reduce(callable, args.value)?;
                    self.stack.push(Slot {
                        value,
                        depth,
                        nodes,
                    });
                }
                b'b' => {
                    // The state of an OrderedDict (a state_dict's `_metadata`) or of a tensor
                    // (empty): neither changes a value gaze reads.
                    let _state = self.pop()?;
                    match self.top()?.value {
                        Value::Dict(_) | Value::Tensor(_) => {}
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

/// `('storage', storage_type, key, location, numel)`, torch's persistent id of a storage.
fn persistent_storage(pid: Value) -> Result<Value> {
    let Value::Tuple(items) = pid else {
        return Err(fail("a persistent id that is not a tuple"));
    };
    match items.as_slice() {
        [Value::Str(kind), Value::Global(Global::Storage(dtype)), Value::Str(key), ..]
            if kind == "storage" =>
        {
            Ok(Value::Storage {
                key: key.clone(),
                dtype: *dtype,
            })
        }
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

fn reduce(callable: Value, args: Value) -> Result<Value> {
    let Value::Tuple(args) = args else {
        return Err(fail("REDUCE arguments are not a tuple"));
    };
    match callable {
        Value::Global(Global::OrderedDict) if args.is_empty() => Ok(Value::Dict(Vec::new())),
        Value::Global(Global::RebuildTensorV2) => match args.as_slice() {
            [Value::Storage { key, dtype }, Value::Int(offset), size, stride, ..]
                if *offset >= 0 =>
            {
                Ok(Value::Tensor(TensorRef {
                    storage_key: key.clone(),
                    dtype: *dtype,
                    offset: *offset as usize,
                    size: usize_list(size, "a tensor size")?,
                    stride: usize_list(stride, "a tensor stride")?,
                }))
            }
            _ => Err(fail("_rebuild_tensor_v2 called with unexpected arguments")),
        },
        Value::Global(Global::RebuildParameter) => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => Err(fail("_rebuild_parameter without a tensor")),
        },
        _ => Err(fail(
            "a call to something that is not a tensor or dict constructor",
        )),
    }
}

/// Unpickles `data` without executing anything.
pub fn load(data: &[u8]) -> Result<Value> {
    Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Default::default(),
        copy_budget: (data.len() as u64).saturating_mul(4).saturating_add(1024),
    }
    .run()
}
