//! Typed kernel interfaces. A kernel's uniform `Params` is a Pod struct declared once with
//! `wgsl_struct!`, which also records each field's name, WGSL type and offset; its storage
//! bindings are declared beside it, in order, with their access. tests/interfaces.rs reads every
//! shader with naga, at f32 and at f16, and checks both against these declarations, so a
//! swapped field or binding fails by name instead of as a wrong number.

/// The WGSL type of a uniform field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    U32,
    F32,
    /// `vec4<u32>`, written `[u32; 4]` in Rust.
    Vec4U32,
    Struct(&'static Layout),
    /// `array<S, N>` of a struct.
    Array(&'static Layout, u32),
}

/// One field of a uniform struct.
#[derive(Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    /// Byte offset in the Rust struct, which WGSL's layout must agree with.
    pub offset: usize,
}

/// A uniform struct as Rust lays it out.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [Field],
}

/// A struct that a shader declares field for field.
pub trait WgslStruct: bytemuck::Pod {
    const LAYOUT: Layout;
}

/// How a kernel uses a storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

/// A storage binding (1, 2, ... in declaration order): an `array<Elem>` of tensor elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub name: &'static str,
    pub access: Access,
    /// The element type of the array.
    pub elem: BindingElem,
}

/// What a binding's array holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingElem {
    /// The tensor element at the device's precision (`Elem`: f32 or f16).
    Tensor,
    /// f32 whatever the precision (partial sums).
    F32,
    /// A uniform window: the first `UNIFORM_WINDOW_BYTES` from an f32 tensor's start, as
    /// `array<vec4<f32>, 4096>`. A CPU device gathers a uniform array's values in one
    /// instruction where it loads a storage array's lane by lane, so small operands that every
    /// element reads (Coordinate Attention's gates) cost less this way.
    Window,
}

/// The bytes a uniform window binds (`BindingElem::Window`): WebGPU's guaranteed
/// `maxUniformBufferBindingSize`.
pub const UNIFORM_WINDOW_BYTES: u64 = 65536;

/// Declares a `#[repr(C)]` Pod struct and its `WgslStruct` layout from one field list. Field
/// types are `u32`, `f32`, `[u32; 4]` (a `vec4<u32>`), another such struct, or an array of one
/// (`[Role; 3]`).
#[macro_export]
macro_rules! wgsl_struct {
    ($(#[$meta:meta])* pub struct $name:ident {
        $($(#[$fmeta:meta])* $field:ident : $fty:tt),* $(,)?
    }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $fty),*
        }

        impl $crate::gpu::WgslStruct for $name {
            const LAYOUT: $crate::gpu::Layout = $crate::gpu::Layout {
                name: stringify!($name),
                size: ::core::mem::size_of::<$name>(),
                fields: &[$($crate::gpu::Field {
                    name: stringify!($field),
                    ty: $crate::wgsl_ty!($fty),
                    offset: ::core::mem::offset_of!($name, $field),
                }),*],
            };
        }
    };
}

/// The `Ty` of a field type written in `wgsl_struct!`.
#[macro_export]
macro_rules! wgsl_ty {
    (u32) => {
        $crate::gpu::Ty::U32
    };
    (f32) => {
        $crate::gpu::Ty::F32
    };
    ([u32; 4]) => {
        $crate::gpu::Ty::Vec4U32
    };
    ([$s:ident; $n:literal]) => {
        $crate::gpu::Ty::Array(&<$s as $crate::gpu::WgslStruct>::LAYOUT, $n)
    };
    ($s:ident) => {
        $crate::gpu::Ty::Struct(&<$s as $crate::gpu::WgslStruct>::LAYOUT)
    };
}

/// The tensor bindings of a kernel: `bindings![read x, read w, write y, read gates: window]`.
#[macro_export]
macro_rules! bindings {
    (@access read) => {
        $crate::gpu::Access::Read
    };
    (@access write) => {
        $crate::gpu::Access::ReadWrite
    };
    (@elem) => {
        $crate::gpu::BindingElem::Tensor
    };
    (@elem f32) => {
        $crate::gpu::BindingElem::F32
    };
    (@elem window) => {
        $crate::gpu::BindingElem::Window
    };
    ($($access:ident $name:ident $(: $elem:ident)?),* $(,)?) => {
        &[$($crate::gpu::Binding {
            name: stringify!($name),
            access: $crate::bindings!(@access $access),
            elem: $crate::bindings!(@elem $($elem)?),
        }),*]
    };
}

/// A WGSL type as the shader spells it (`u32`, `vec4<u32>`, a struct's name).
fn type_name(module: &naga::Module, ty: naga::Handle<naga::Type>) -> String {
    use naga::TypeInner;
    let scalar = |s: &naga::Scalar| {
        let kind = match s.kind {
            naga::ScalarKind::Uint => "u",
            naga::ScalarKind::Sint => "i",
            naga::ScalarKind::Float => "f",
            _ => "?",
        };
        format!("{kind}{}", s.width * 8)
    };
    let t = &module.types[ty];
    match &t.inner {
        TypeInner::Scalar(s) => scalar(s),
        TypeInner::Vector { size, scalar: s } => format!("vec{}<{}>", *size as u8, scalar(s)),
        TypeInner::Array { base, .. } => format!("array<{}>", type_name(module, *base)),
        inner => t.name.clone().unwrap_or_else(|| format!("{inner:?}")),
    }
}

/// Checks the WGSL type `ty` against the Rust field type `want`, at `path`.
fn check_type(
    module: &naga::Module,
    ty: naga::Handle<naga::Type>,
    want: Ty,
    path: &str,
) -> Result<(), String> {
    use naga::{ArraySize, ScalarKind, TypeInner, VectorSize};
    let inner = &module.types[ty].inner;
    let ok = match (want, inner) {
        (Ty::U32, TypeInner::Scalar(s)) => s.kind == ScalarKind::Uint && s.width == 4,
        (Ty::F32, TypeInner::Scalar(s)) => s.kind == ScalarKind::Float && s.width == 4,
        (Ty::Vec4U32, TypeInner::Vector { size, scalar }) => {
            *size == VectorSize::Quad && scalar.kind == ScalarKind::Uint && scalar.width == 4
        }
        (Ty::Struct(layout), TypeInner::Struct { .. }) => {
            return check_struct(module, ty, layout, path)
        }
        (
            Ty::Array(layout, n),
            TypeInner::Array {
                base,
                size: ArraySize::Constant(len),
                stride,
            },
        ) => {
            if len.get() != n || *stride as usize != layout.size {
                return Err(format!(
                    "`{path}` is array<{}, {len}> of stride {stride} in WGSL, [{}; {n}] of \
                     {} bytes in Rust",
                    type_name(module, *base),
                    layout.name,
                    layout.size
                ));
            }
            return check_struct(module, *base, layout, path);
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{path}` is {} in WGSL but {want:?} in Rust",
            type_name(module, ty)
        ))
    }
}

/// Checks a WGSL struct member by member: names, order, offsets and types, and its size.
fn check_struct(
    module: &naga::Module,
    ty: naga::Handle<naga::Type>,
    layout: &Layout,
    path: &str,
) -> Result<(), String> {
    let naga::TypeInner::Struct { members, span } = &module.types[ty].inner else {
        return Err(format!(
            "`{path}` is {} in WGSL, not a struct like Rust's {}",
            type_name(module, ty),
            layout.name
        ));
    };
    let names = |it: &mut dyn Iterator<Item = &str>| it.collect::<Vec<_>>().join(", ");
    if members.len() != layout.fields.len() {
        return Err(format!(
            "`{path}` has the fields ({}) in WGSL but ({}) in Rust's {}",
            names(&mut members.iter().map(|m| m.name.as_deref().unwrap_or("?"))),
            names(&mut layout.fields.iter().map(|f| f.name)),
            layout.name
        ));
    }
    for (i, (member, field)) in members.iter().zip(layout.fields).enumerate() {
        let name = member.name.as_deref().unwrap_or("?");
        let at = format!("{path}.{}", field.name);
        if name != field.name {
            return Err(format!(
                "field {i} of `{path}` is `{name}` in WGSL but `{}` in Rust's {}",
                field.name, layout.name
            ));
        }
        if member.offset as usize != field.offset {
            return Err(format!(
                "`{at}` is at byte {} in WGSL but {} in Rust",
                member.offset, field.offset
            ));
        }
        check_type(module, member.ty, field.ty, &at)?;
    }
    if *span as usize != layout.size {
        return Err(format!(
            "`{path}` is {span} bytes in WGSL but {} in Rust's {}",
            layout.size, layout.name
        ));
    }
    Ok(())
}

/// Checks that binding `index` is the uniform window `want`: `array<vec4<f32>, N>` of
/// `UNIFORM_WINDOW_BYTES`, read-only by being uniform.
fn check_window(
    module: &naga::Module,
    index: u32,
    global: &naga::GlobalVariable,
    want: &Binding,
) -> Result<(), String> {
    use naga::{ArraySize, ScalarKind, TypeInner, VectorSize};
    let name = global.name.as_deref().unwrap_or("?");
    let vec4_f32 = |base: naga::Handle<naga::Type>| {
        matches!(module.types[base].inner, TypeInner::Vector { size: VectorSize::Quad, scalar }
            if scalar.kind == ScalarKind::Float && scalar.width == 4)
    };
    let window = match &module.types[global.ty].inner {
        TypeInner::Array {
            base,
            size: ArraySize::Constant(len),
            ..
        } => vec4_f32(*base) && u64::from(len.get()) * 16 == UNIFORM_WINDOW_BYTES,
        _ => false,
    };
    let uniform = global.space == naga::AddressSpace::Uniform;
    if name != want.name || want.access != Access::Read || !uniform || !window {
        return Err(format!(
            "binding {index} `{name}` in WGSL is not the uniform window `{}` Rust declares \
             (a uniform array<vec4<f32>, {}>)",
            want.name,
            UNIFORM_WINDOW_BYTES / 16
        ));
    }
    Ok(())
}

/// Checks a validated module's bindings against the kernel's declaration: binding 0 is the
/// uniform `params`, bindings 1.. the storage arrays of tensor elements (`f32` or `f16` by
/// `precision`) or uniform windows, in order, with their names and access.
pub(crate) fn check_module(
    module: &naga::Module,
    params: &Layout,
    bindings: &[Binding],
    precision: crate::Precision,
) -> Result<(), String> {
    use naga::{AddressSpace, ScalarKind, StorageAccess, TypeInner};
    let mut globals: Vec<(u32, &naga::GlobalVariable)> = module
        .global_variables
        .iter()
        .filter_map(|(_, g)| Some((g.binding.as_ref()?.binding, g)))
        .collect();
    globals.sort_by_key(|(b, _)| *b);
    let declared = 1 + bindings.len();
    if globals.len() != declared || globals.iter().enumerate().any(|(i, (b, _))| *b != i as u32) {
        return Err(format!(
            "the shader binds {:?}, but Rust declares bindings 0..{declared} (params, then {})",
            globals.iter().map(|(b, _)| *b).collect::<Vec<_>>(),
            bindings
                .iter()
                .map(|b| b.name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let (_, uniform) = globals[0];
    if uniform.space != AddressSpace::Uniform {
        return Err("binding 0 is not a uniform".into());
    }
    check_struct(module, uniform.ty, params, "Params")?;
    let elem_width = match precision {
        crate::Precision::F32 => 4,
        crate::Precision::F16 => 2,
    };
    for ((index, global), want) in globals[1..].iter().zip(bindings) {
        let name = global.name.as_deref().unwrap_or("?");
        if want.elem == BindingElem::Window {
            check_window(module, *index, global, want)?;
            continue;
        }
        let access = match global.space {
            AddressSpace::Storage { access } if access.contains(StorageAccess::STORE) => {
                Access::ReadWrite
            }
            AddressSpace::Storage { .. } => Access::Read,
            _ => return Err(format!("binding {index} `{name}` is not storage")),
        };
        if name != want.name || access != want.access {
            return Err(format!(
                "binding {index} is `{name}` ({access:?}) in WGSL but `{}` ({:?}) in Rust",
                want.name, want.access
            ));
        }
        let (width, what) = match want.elem {
            BindingElem::Tensor => (elem_width, format!("the {precision} tensor element")),
            BindingElem::F32 | BindingElem::Window => (4, "f32".to_string()),
        };
        let elem_ok = match &module.types[global.ty].inner {
            TypeInner::Array { base, .. } => matches!(
                module.types[*base].inner,
                TypeInner::Scalar(s) if s.kind == ScalarKind::Float && s.width == width
            ),
            _ => false,
        };
        if !elem_ok {
            return Err(format!(
                "binding {index} `{name}` is not an array of {what}"
            ));
        }
    }
    Ok(())
}
