//! The globals a checkpoint's pickle may name: PyTorch's own default allowlist for
//! `torch.load(f, weights_only=True)`, `_get_allowed_globals()` in
//! torch/_weights_only_unpickler.py (PyTorch 2.x), and nothing else. Everything a training
//! checkpoint holds (tensors, optimizer and scheduler states, `Counter`, sets, numbers, strings)
//! is built from these. Naming them never runs them: the unpickler builds plain values.
//!
//! This file is the one place that lists them.

/// Element types of torch storages and tensors.
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
    Complex64,
    Complex128,
    QInt8,
    QUInt8,
    QInt32,
    QUInt4x2,
    QUInt2x4,
    /// A dtype of the allowlist that has no storage class of its own (float8, uint16, ...):
    /// only `_rebuild_tensor_v3` over an untyped storage can name it.
    Other(&'static str),
}

impl Dtype {
    /// Bytes per element, as PyTorch's `_element_size`.
    pub fn size(self) -> usize {
        match self {
            Dtype::Complex128 => 16,
            Dtype::F64 | Dtype::I64 | Dtype::Complex64 => 8,
            Dtype::F32 | Dtype::I32 | Dtype::QInt32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool | Dtype::QInt8 | Dtype::QUInt8 => 1,
            Dtype::QUInt4x2 | Dtype::QUInt2x4 => 1,
            Dtype::Other(name) => other_dtype_size(name),
        }
    }

    /// The float types a model's weights may have; gaze converts them to f32.
    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16)
    }
}

/// What an allowed global stands for in the unpickler.
#[derive(Clone, Debug, PartialEq)]
pub enum Global {
    OrderedDict,
    Counter,
    Set,
    ByteArray,
    Complex,
    /// `_codecs.encode`: protocol 2's way of writing `bytes`.
    Encode,
    Size,
    Device,
    Layout,
    /// `torch.Tensor`, `torch.nn.parameter.Parameter` and the legacy tensor classes.
    TensorClass,
    Storage(Dtype),
    /// `torch.storage.TypedStorage`, which a pickle names only as a type.
    TypedStorage,
    Dtype(Dtype),
    QScheme,
    Rebuild(Rebuild),
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`: `func(*args)`.
    RebuildFromType,
}

/// The tensor rebuild functions of `torch._utils` that PyTorch allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rebuild {
    Tensor,
    TensorV2,
    TensorV3,
    Parameter,
    ParameterWithState,
    DeviceTensorFromCpuTensor,
    /// Allowed, but they make tensors gaze cannot take weights from; the name says which.
    Unsupported(&'static str),
}

const STORAGES: [(&str, Dtype); 17] = [
    ("FloatStorage", Dtype::F32),
    ("DoubleStorage", Dtype::F64),
    ("HalfStorage", Dtype::F16),
    ("BFloat16Storage", Dtype::BF16),
    ("LongStorage", Dtype::I64),
    ("IntStorage", Dtype::I32),
    ("ShortStorage", Dtype::I16),
    ("CharStorage", Dtype::I8),
    ("ByteStorage", Dtype::U8),
    ("BoolStorage", Dtype::Bool),
    ("ComplexFloatStorage", Dtype::Complex64),
    ("ComplexDoubleStorage", Dtype::Complex128),
    ("QInt8Storage", Dtype::QInt8),
    ("QUInt8Storage", Dtype::QUInt8),
    ("QInt32Storage", Dtype::QInt32),
    ("QUInt4x2Storage", Dtype::QUInt4x2),
    ("QUInt2x4Storage", Dtype::QUInt2x4),
];

const TENSOR_CLASSES: [&str; 10] = [
    "FloatTensor",
    "DoubleTensor",
    "HalfTensor",
    "BFloat16Tensor",
    "LongTensor",
    "IntTensor",
    "ShortTensor",
    "CharTensor",
    "ByteTensor",
    "BoolTensor",
];

/// `torch.<name>` dtypes, by the name `str(dtype)` gives.
const DTYPES: [(&str, Dtype); 17] = [
    ("float32", Dtype::F32),
    ("float64", Dtype::F64),
    ("float16", Dtype::F16),
    ("bfloat16", Dtype::BF16),
    ("int64", Dtype::I64),
    ("int32", Dtype::I32),
    ("int16", Dtype::I16),
    ("int8", Dtype::I8),
    ("uint8", Dtype::U8),
    ("bool", Dtype::Bool),
    ("complex64", Dtype::Complex64),
    ("complex128", Dtype::Complex128),
    ("qint8", Dtype::QInt8),
    ("quint8", Dtype::QUInt8),
    ("qint32", Dtype::QInt32),
    ("quint4x2", Dtype::QUInt4x2),
    ("quint2x4", Dtype::QUInt2x4),
];

/// The other dtypes of the allowlist, with their element sizes in bytes (the sub-byte ones are
/// stored a byte per element).
const OTHER_DTYPES: [(&str, usize); 29] = [
    ("complex32", 4),
    ("bcomplex32", 4),
    ("bits16", 2),
    ("bits1x8", 1),
    ("bits2x4", 1),
    ("bits4x2", 1),
    ("bits8", 1),
    ("float4_e2m1fn_x2", 1),
    ("float8_e4m3fn", 1),
    ("float8_e4m3fnuz", 1),
    ("float8_e5m2", 1),
    ("float8_e5m2fnuz", 1),
    ("float8_e8m0fnu", 1),
    ("uint16", 2),
    ("uint32", 4),
    ("uint64", 8),
    ("uint1", 1),
    ("uint2", 1),
    ("uint3", 1),
    ("uint4", 1),
    ("uint5", 1),
    ("uint6", 1),
    ("uint7", 1),
    ("int1", 1),
    ("int2", 1),
    ("int3", 1),
    ("int4", 1),
    ("int5", 1),
    ("int6", 1),
];

fn other_dtype_size(name: &str) -> usize {
    OTHER_DTYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(1, |(_, size)| *size)
}

const QSCHEMES: [&str; 5] = [
    "per_tensor_affine",
    "per_tensor_symmetric",
    "per_channel_affine",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
];

const UNSUPPORTED_REBUILDS: [(&str, &str); 5] = [
    ("_rebuild_qtensor", "a quantized tensor"),
    ("_rebuild_sparse_tensor", "a sparse tensor"),
    ("_rebuild_meta_tensor_no_storage", "a meta tensor (no data)"),
    ("_rebuild_wrapper_subclass", "a tensor subclass"),
    (
        "_rebuild_device_tensor_from_numpy",
        "a tensor from a numpy array",
    ),
];

fn rebuild(name: &str) -> Option<Rebuild> {
    let known = match name {
        "_rebuild_tensor" => Rebuild::Tensor,
        "_rebuild_tensor_v2" => Rebuild::TensorV2,
        "_rebuild_tensor_v3" => Rebuild::TensorV3,
        "_rebuild_parameter" => Rebuild::Parameter,
        "_rebuild_parameter_with_state" => Rebuild::ParameterWithState,
        "_rebuild_device_tensor_from_cpu_tensor" => Rebuild::DeviceTensorFromCpuTensor,
        _ => {
            let (_, what) = UNSUPPORTED_REBUILDS.iter().find(|(n, _)| *n == name)?;
            Rebuild::Unsupported(what)
        }
    };
    Some(known)
}

fn torch_attribute(name: &str) -> Option<Global> {
    if let Some((_, d)) = STORAGES.iter().find(|(n, _)| *n == name) {
        return Some(Global::Storage(*d));
    }
    if let Some((_, d)) = DTYPES.iter().find(|(n, _)| *n == name) {
        return Some(Global::Dtype(*d));
    }
    if let Some((n, _)) = OTHER_DTYPES.iter().find(|(n, _)| *n == name) {
        return Some(Global::Dtype(Dtype::Other(n)));
    }
    if TENSOR_CLASSES.contains(&name) || name == "Tensor" {
        return Some(Global::TensorClass);
    }
    if QSCHEMES.contains(&name) {
        return Some(Global::QScheme);
    }
    match name {
        "Size" => Some(Global::Size),
        "device" => Some(Global::Device),
        _ => None,
    }
}

/// The global `module.name`, if PyTorch's weights-only unpickler allows it by default.
pub fn allowed_global(module: &str, name: &str) -> Option<Global> {
    // Python 2 pickles name the builtins module `__builtin__` (pickle's own IMPORT_MAPPING).
    let module = if module == "__builtin__" {
        "builtins"
    } else {
        module
    };
    match module {
        "collections" => match name {
            "OrderedDict" => Some(Global::OrderedDict),
            "Counter" => Some(Global::Counter),
            _ => None,
        },
        "builtins" => match name {
            "set" => Some(Global::Set),
            "bytearray" => Some(Global::ByteArray),
            "complex" => Some(Global::Complex),
            _ => None,
        },
        "_codecs" if name == "encode" => Some(Global::Encode),
        "torch" => torch_attribute(name),
        "torch.cuda" => match torch_attribute(name)? {
            g @ (Global::TensorClass | Global::Storage(_)) => Some(g),
            _ => None,
        },
        "torch.sparse" | "torch.cuda.sparse" if TENSOR_CLASSES.contains(&name) => {
            Some(Global::TensorClass)
        }
        "torch.nn.parameter" if name == "Parameter" => Some(Global::TensorClass),
        "torch.serialization" if name == "_get_layout" => Some(Global::Layout),
        "torch.storage" => match name {
            "UntypedStorage" => Some(Global::Storage(Dtype::U8)),
            "TypedStorage" => Some(Global::TypedStorage),
            _ => None,
        },
        "torch._utils" => rebuild(name).map(Global::Rebuild),
        "torch._tensor" if name == "_rebuild_from_type_v2" => Some(Global::RebuildFromType),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytorchs_defaults_are_allowed_and_nothing_callable_else() {
        for (m, n) in [
            ("collections", "OrderedDict"),
            ("collections", "Counter"),
            ("builtins", "set"),
            ("__builtin__", "set"),
            ("_codecs", "encode"),
            ("torch", "FloatStorage"),
            ("torch.cuda", "HalfStorage"),
            ("torch", "bfloat16"),
            ("torch", "float8_e4m3fn"),
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch._utils", "_rebuild_qtensor"),
            ("torch.nn.parameter", "Parameter"),
            ("torch.storage", "UntypedStorage"),
            ("torch", "Size"),
        ] {
            assert!(allowed_global(m, n).is_some(), "{m}.{n}");
        }
        for (m, n) in [
            ("os", "system"),
            ("builtins", "eval"),
            ("builtins", "getattr"),
            ("collections", "defaultdict"),
            ("torch", "load"),
            ("torch.cuda", "float32"),
            ("torch._utils", "_rebuild_anything"),
            ("torch.nn.modules.conv", "Conv2d"),
            ("numpy.core.multiarray", "scalar"),
        ] {
            assert!(allowed_global(m, n).is_none(), "{m}.{n}");
        }
    }
}
