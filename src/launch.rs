//! The typed link between Rust and WGSL.
//!
//! Every compute shader is described once by a `Kernel` (crate-internal): its file, the
//! Rust type of its uniform (a `#[repr(C)]` struct declared with the crate's `uniform!`
//! macro, mirroring the WGSL struct of the same name: [`Uniform`]), the Rust type of its
//! compile-time values ([`Specialize`]: override constants and `@specialize` constants,
//! by their WGSL names), its storage bindings by name and access ([`Binding`]), and its
//! workgroup size, which is injected into the shader (`WORKGROUP_SIZE`). An op plans a
//! dispatch on the CPU as a `Launch` (pure: testable without a GPU) and records it with
//! one generic recorder method, binding tensors by name. `tests/shaders.rs` parses every shader with naga and checks it against its
//! kernel: uniform field names and offsets, binding names and access modes, constant
//! names and the workgroup size.

/// The most loop iterations one shader invocation may run, all its loops together.
///
/// Mesa's llvmpipe and lavapipe end an invocation after 65,535 iterations without any
/// error (the results are simply wrong), and real GPUs' watchdogs end dispatches that run
/// too long, so every kernel is planned to stay below this budget: reductions that would
/// need more are split into partial results and a combining pass, and the few launches
/// that cannot be split (a pooling window of more than 32,768 values, a convolution
/// with more than 32,768 input channels per group) are refused with
/// [`Error::TooLarge`]. Half of Mesa's limit leaves a margin for
/// short loops a compiler leaves rolled.
pub const LOOP_BUDGET: u64 = 32_768;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::PooledBuffer;

/// Invocations per workgroup of every kernel unless its [`Kernel`] says otherwise.
pub(crate) const WORKGROUP_SIZE: u32 = 64;

/// How a kernel accesses a storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// `texture_2d<f32>`: a read-only buffer (an op binds it as it binds any input) whose vec4s the
    /// recorder copies into a texture, [`TEXEL_ROW`] to a row, before the dispatch. CPU
    /// adapters fetch texels with vector gathers over a SIMD register's invocations but
    /// load storage buffers one invocation at a time (lavapipe: 5x the throughput).
    Texels,
}

/// Texels per row of the textures behind [`Access::Texels`] bindings (the shaders'
/// `TEXEL_ROW`).
pub const TEXEL_ROW: u32 = 4096;

/// Rows of a texels texture every device allows (WebGPU's least
/// `max_texture_dimension_2d`): bindings of at most `TEXEL_ROW * TEXEL_ROWS_ANYWHERE`
/// vec4s fit on any device.
pub(crate) const TEXEL_ROWS_ANYWHERE: u32 = 8192;

/// One storage binding of a kernel (bindings 1, 2, ... of group 0, in order; binding 0 is
/// the uniform).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The WGSL variable's name.
    pub name: &'static str,
    /// Read or read-write.
    pub access: Access,
    /// Whether a launch may leave it unbound: the shader reads it only when one of its
    /// constants says the operand is present, and a small unused buffer fills the slot.
    pub optional: bool,
}

/// A read-only binding.
pub(crate) const fn read(name: &'static str) -> Binding {
    Binding {
        name,
        access: Access::Read,
        optional: false,
    }
}

/// A read-only binding that may be absent.
pub(crate) const fn read_opt(name: &'static str) -> Binding {
    Binding {
        name,
        access: Access::Read,
        optional: true,
    }
}

/// A read-only binding read as texels ([`Access::Texels`]).
pub(crate) const fn texels(name: &'static str) -> Binding {
    Binding {
        name,
        access: Access::Texels,
        optional: false,
    }
}

/// A read-write binding that may be absent.
pub(crate) const fn write_opt(name: &'static str) -> Binding {
    Binding {
        name,
        access: Access::ReadWrite,
        optional: true,
    }
}

/// A read-write binding.
pub(crate) const fn write(name: &'static str) -> Binding {
    Binding {
        name,
        access: Access::ReadWrite,
        optional: false,
    }
}

/// A `#[repr(C)]` uniform struct whose WGSL twin has the same name and the same fields at
/// the same offsets (checked by `tests/shaders.rs`).
pub trait Uniform: bytemuck::Pod {
    /// The name of the struct in Rust and in WGSL.
    const NAME: &'static str;
    /// `(field name, byte offset)` in declaration order.
    fn fields() -> Vec<(&'static str, usize)>;
}

/// Declares a uniform struct mirrored in WGSL: `#[repr(C)]`, `Pod`, and its field names
/// and offsets for the reflection test. Fields are 4-byte scalars (`u32`, `i32`, `f32`).
macro_rules! uniform {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $($(#[$fmeta])* pub(crate) $field: $ty,)*
        }
        impl $crate::launch::Uniform for $name {
            const NAME: &'static str = stringify!($name);
            fn fields() -> Vec<(&'static str, usize)> {
                vec![$((stringify!($field), std::mem::offset_of!($name, $field))),*]
            }
        }
    };
}
pub(crate) use uniform;

/// The Rust side of a uniform's layout, for the reflection test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UniformLayout {
    /// Struct name (the same in Rust and WGSL).
    pub name: &'static str,
    /// Size in bytes.
    pub size: usize,
    /// `(field name, byte offset)` in declaration order.
    pub fields: Vec<(&'static str, usize)>,
}

/// Compile-time values of a kernel: WGSL `override` constants and `@specialize` constants
/// (see [`crate::shaders`]), written under their WGSL names. `Default` gives the values a
/// shader is validated with; the reflection test checks that the names a kernel's type
/// writes are exactly the constants its shader declares.
pub trait Specialize: Default {
    /// Writes every value.
    fn write(&self, c: &mut Constants);
}

impl Specialize for () {
    fn write(&self, _: &mut Constants) {}
}

/// A value that is one WGSL constant (see [`specialize!`]).
pub(crate) trait Constant {
    /// The constant's value.
    fn value(&self) -> u32;
}

impl Constant for u32 {
    fn value(&self) -> u32 {
        *self
    }
}

impl Constant for bool {
    fn value(&self) -> u32 {
        u32::from(*self)
    }
}

/// A count or size constant: at least 1, so that the zero of `Default` never sizes a
/// WGSL array at 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Count(pub(crate) u32);

impl Constant for Count {
    fn value(&self) -> u32 {
        self.0.max(1)
    }
}

/// Declares a kernel's compile-time values, the typed counterpart of its constants: each
/// field is another [`Specialize`] value (its constants written in place) or, with
/// `=> "NAME"`, the one constant `NAME` (its [`Constant`] value).
macro_rules! specialize {
    ($(#[$meta:meta])* $vis:vis struct $name:ident {
        $($(#[$fmeta:meta])* $field:ident : $ty:ty $(=> $constant:literal)?),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default)]
        $vis struct $name {
            $($(#[$fmeta])* $field: $ty,)*
        }
        impl $crate::launch::Specialize for $name {
            fn write(&self, c: &mut $crate::launch::Constants) {
                $($crate::launch::specialize!(@field c, self.$field $(, $constant)?);)*
            }
        }
    };
    (@field $c:ident, $value:expr) => {
        $crate::launch::Specialize::write(&$value, $c)
    };
    (@field $c:ident, $value:expr, $constant:literal) => {
        $c.set($constant, $crate::launch::Constant::value(&$value))
    };
}
pub(crate) use specialize;

/// A fieldless enum whose variants are the values of one WGSL constant (a shader's
/// `MODE`): `shader_modes! { /// doc\n vis enum Name { /// doc\n Default = 0, Other = 1, ... } }`.
/// The first variant is the default.
macro_rules! shader_modes {
    ($(#[$doc:meta])* $vis:vis enum $name:ident {
        $(#[$fdoc:meta])* $first:ident = $v0:literal
        $(, $(#[$vdoc:meta])* $variant:ident = $v:literal)* $(,)?
    }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(#[$fdoc])*
            #[default]
            $first = $v0,
            $($(#[$vdoc])* $variant = $v,)*
        }

        impl $crate::launch::Constant for $name {
            fn value(&self) -> u32 {
                *self as u32
            }
        }
    };
}
pub(crate) use shader_modes;

/// Compile-time values by WGSL name, sorted by name (a pipeline's cache key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Constants(Vec<(&'static str, u32)>);

impl Constants {
    /// Sets `name` (replacing an earlier value).
    pub fn set(&mut self, name: &'static str, value: u32) {
        match self.0.binary_search_by(|(n, _)| n.cmp(&name)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    /// Sets a boolean `name` (0 or 1).
    pub fn flag(&mut self, name: &'static str, value: bool) {
        self.set(name, u32::from(value));
    }

    /// The values, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        self.0.iter().copied()
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// One compute shader: its file, uniform type `U`, constants type `S`, bindings and
/// workgroup size.
pub(crate) struct Kernel<U, S = ()> {
    pub(crate) file: &'static str,
    pub(crate) bindings: &'static [Binding],
    pub(crate) workgroup_size: u32,
    types: PhantomData<fn() -> (U, S)>,
}

impl<U: Uniform, S: Specialize> Kernel<U, S> {
    /// A kernel with the default workgroup size.
    pub(crate) const fn new(file: &'static str, bindings: &'static [Binding]) -> Self {
        Kernel {
            file,
            bindings,
            workgroup_size: WORKGROUP_SIZE,
            types: PhantomData,
        }
    }

    /// The same kernel with `invocations` per workgroup.
    pub(crate) const fn sized(mut self, invocations: u32) -> Self {
        self.workgroup_size = invocations;
        self
    }

    /// Plans one dispatch with these values; set its grid with [`Launch::threads`] or
    /// [`Launch::workgroups`].
    pub(crate) fn launch(&'static self, spec: &S, uniform: &U) -> Launch {
        let mut constants = Constants::default();
        spec.write(&mut constants);
        constants.set("WORKGROUP_SIZE", self.workgroup_size);
        Launch {
            file: self.file,
            bindings: self.bindings,
            workgroup_size: self.workgroup_size,
            constants,
            uniform: bytemuck::bytes_of(uniform).to_vec(),
            workgroups: 1,
            loops: 0,
        }
    }
}

/// What the reflection test and the documentation know of a kernel, without its types.
pub trait KernelInfo: Sync {
    /// A description of the kernel.
    fn describe(&self) -> KernelDescription;
}

impl<U: Uniform, S: Specialize> KernelInfo for Kernel<U, S> {
    fn describe(&self) -> KernelDescription {
        let mut constants = Constants::default();
        S::default().write(&mut constants);
        constants.set("WORKGROUP_SIZE", self.workgroup_size);
        KernelDescription {
            file: self.file,
            uniform: UniformLayout {
                name: U::NAME,
                size: std::mem::size_of::<U>(),
                fields: U::fields(),
            },
            bindings: self.bindings.to_vec(),
            constants,
            workgroup_size: self.workgroup_size,
        }
    }
}

/// A kernel as the Rust side declares it (see [`crate::shaders::kernels`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelDescription {
    /// The shader file under `shaders/`.
    pub file: &'static str,
    /// The uniform at binding 0.
    pub uniform: UniformLayout,
    /// Bindings 1, 2, ... in order.
    pub bindings: Vec<Binding>,
    /// Every constant the kernel sets, at its default values (`WORKGROUP_SIZE` included).
    pub constants: Constants,
    /// Invocations per workgroup.
    pub workgroup_size: u32,
}

/// One dispatch planned on the CPU: the shader and its compile-time values, the uniform's
/// bytes and the grid. Buffers are bound when it is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Launch {
    pub(crate) file: &'static str,
    pub(crate) bindings: &'static [Binding],
    pub(crate) workgroup_size: u32,
    pub(crate) constants: Constants,
    pub(crate) uniform: Vec<u8>,
    /// Linear workgroup count (folded into a 2-D grid when recorded).
    pub(crate) workgroups: u64,
    /// The most loop iterations one invocation runs (all its loops together), as the plan
    /// computed it; checked against [`LOOP_BUDGET`] when recorded.
    pub(crate) loops: u64,
}

impl Launch {
    /// One invocation per item: `items` rounded up to whole workgroups.
    pub(crate) fn threads(mut self, items: usize) -> Self {
        self.workgroups = (items as u64).div_ceil(u64::from(self.workgroup_size));
        self
    }

    /// An explicit workgroup count.
    pub(crate) fn workgroups(mut self, count: usize) -> Self {
        self.workgroups = count as u64;
        self
    }

    /// Another workgroup size than the kernel's (`WORKGROUP_SIZE` in the shader), for
    /// kernels whose plan chooses it.
    pub(crate) fn workgroup_size(mut self, invocations: u32) -> Self {
        self.workgroup_size = invocations;
        self.constants.set("WORKGROUP_SIZE", invocations);
        self
    }

    /// Declares the loop iterations of one invocation (loops whose trip count comes from
    /// the uniform, or from a constant too large to be unrolled; short constant loops are
    /// unrolled by the compilers and cost nothing here).
    pub(crate) fn loops(mut self, iterations: u64) -> Self {
        self.loops = iterations;
        self
    }
}

/// The trip count of one loop of a shader, for [`loop_nest`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Trip {
    /// A count read from the uniform (or otherwise known only at run time).
    Uniform(u64),
    /// A count fixed by an override constant: unrolled by the compilers when short.
    Constant(u64),
}

/// Constant loops up to this trip count are unrolled by the shader compilers (the boundary
/// tests of every kernel family check this on Mesa).
const UNROLLED: u64 = 32;

/// The loop iterations one invocation runs in a nest of loops, outermost first: each loop
/// that stays a loop counts its trips, times the trips of the loops around it.
pub(crate) fn loop_nest(trips: &[Trip]) -> u64 {
    loop_tree(trips, &[])
}

/// [`loop_nest`] of `outer` with several sibling nests inside its innermost loop.
pub(crate) fn loop_tree(outer: &[Trip], inner: &[&[Trip]]) -> u64 {
    let mut runs = 1u64;
    let mut total = 0u64;
    for &t in outer {
        let (n, rolled) = match t {
            Trip::Uniform(n) => (n, true),
            Trip::Constant(n) => (n, n > UNROLLED),
        };
        if rolled {
            total = total.saturating_add(runs.saturating_mul(n));
        }
        runs = runs.saturating_mul(n);
    }
    inner.iter().fold(total, |t, nest| {
        t.saturating_add(runs.saturating_mul(loop_nest(nest)))
    })
}

/// Something that can be bound to a storage binding.
pub(crate) trait Bindable {
    fn buffer(&self) -> &Arc<PooledBuffer>;
    /// The bytes of it in use (a tensor's values; a buffer's requested size).
    fn bytes(&self) -> u64;
}

impl Bindable for Arc<PooledBuffer> {
    fn buffer(&self) -> &Arc<PooledBuffer> {
        self
    }
    fn bytes(&self) -> u64 {
        self.used_bytes()
    }
}

/// The buffers of one dispatch, by binding name.
#[derive(Default)]
pub(crate) struct Args<'a> {
    pub(crate) entries: Vec<(&'static str, Access, &'a Arc<PooledBuffer>)>,
    /// The bytes in use of each entry.
    bytes: Vec<u64>,
}

impl<'a> Args<'a> {
    pub(crate) fn new() -> Self {
        Args::default()
    }

    /// The bytes in use of the value bound as `name` (a view's own, not its buffer's).
    pub(crate) fn bytes_of(&self, name: &str) -> Option<u64> {
        let i = self.entries.iter().position(|(n, _, _)| *n == name)?;
        self.bytes.get(i).copied()
    }

    /// Binds `value` read-only as `name`.
    pub(crate) fn read(mut self, name: &'static str, value: &'a impl Bindable) -> Self {
        self.entries.push((name, Access::Read, value.buffer()));
        self.bytes.push(value.bytes());
        self
    }

    /// Binds `value` read-only as `name` when present (an optional binding).
    pub(crate) fn read_opt<B: Bindable>(self, name: &'static str, value: Option<&'a B>) -> Self {
        match value {
            Some(v) => self.read(name, v),
            None => self,
        }
    }

    /// Binds `value` read-write as `name` when present (an optional binding).
    pub(crate) fn write_opt<B: Bindable>(self, name: &'static str, value: Option<&'a B>) -> Self {
        match value {
            Some(v) => self.write(name, v),
            None => self,
        }
    }

    /// Binds `value` read-write as `name`.
    pub(crate) fn write(mut self, name: &'static str, value: &'a impl Bindable) -> Self {
        self.entries.push((name, Access::ReadWrite, value.buffer()));
        self.bytes.push(value.bytes());
        self
    }

    /// The bytes bound read-only and read-write: what the dispatch reads at least once,
    /// and what it may write (a buffer bound twice, as scalars and as vec4s, counts once).
    pub(crate) fn traffic(&self) -> (u64, u64) {
        let mut moved = (0, 0);
        for (i, ((_, access, buf), bytes)) in self.entries.iter().zip(&self.bytes).enumerate() {
            if self.entries[..i]
                .iter()
                .any(|(_, _, b)| Arc::ptr_eq(b, buf))
            {
                continue;
            }
            match access {
                Access::Read | Access::Texels => moved.0 += bytes,
                Access::ReadWrite => moved.1 += bytes,
            }
        }
        moved
    }

    /// The buffer for each of `bindings` in order (`None` for an absent optional one), or
    /// an error naming what does not match: a missing, unknown or doubly given name, a
    /// wrong access mode, or a buffer bound for writing that is also bound elsewhere.
    pub(crate) fn resolve(
        &self,
        file: &str,
        bindings: &[Binding],
    ) -> Result<Vec<Option<&'a Arc<PooledBuffer>>>> {
        let bug = |what: String| Err(Error::Gpu(format!("{file}: {what}")));
        if bindings.len() > crate::gpu::MAX_BINDINGS {
            return bug(format!("declares {} bindings", bindings.len()));
        }
        for (i, (name, _, _)) in self.entries.iter().enumerate() {
            if !bindings.iter().any(|b| b.name == *name) {
                return bug(format!("binds `{name}`, which the kernel does not declare"));
            }
            if self.entries[..i].iter().any(|(n, _, _)| n == name) {
                return bug(format!("binds `{name}` twice"));
            }
        }
        let mut out = Vec::with_capacity(bindings.len());
        for b in bindings {
            match self.entries.iter().find(|(n, _, _)| *n == b.name) {
                // A read-only operand may be read as texels: the recorder copies it.
                Some((_, access, _))
                    if *access != b.access
                        && !(*access == Access::Read && b.access == Access::Texels) =>
                {
                    return bug(format!(
                        "binds `{}` as {access:?}, declared {:?}",
                        b.name, b.access
                    ))
                }
                Some((_, _, buf)) => out.push(Some(*buf)),
                None if b.optional => out.push(None),
                None => return bug(format!("leaves `{}` unbound", b.name)),
            }
        }
        // A buffer written by the dispatch may not be bound a second time (wgpu refuses
        // a read-write binding that aliases another binding).
        for (name, access, buf) in &self.entries {
            if *access == Access::ReadWrite
                && self
                    .entries
                    .iter()
                    .any(|(n, _, other)| n != name && Arc::ptr_eq(buf, other))
            {
                return Err(Error::InvalidParam {
                    name,
                    reason: format!("{file}: the output buffer is also one of the inputs"),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_stay_sorted_and_replace() {
        let mut c = Constants::default();
        c.set("KW", 3);
        c.set("ACT", 1);
        c.set("KW", 5);
        c.flag("SUM", true);
        let v: Vec<_> = c.iter().collect();
        assert_eq!(v, vec![("ACT", 1), ("KW", 5), ("SUM", 1)]);
        assert_eq!(c.get("KW"), Some(5));
        assert_eq!(c.get("KH"), None);
    }

    #[test]
    fn loops_count_what_stays_a_loop() {
        // Short constant loops unroll: only the run-time loop counts, times nothing.
        assert_eq!(loop_nest(&[Trip::Uniform(10), Trip::Constant(3)]), 10);
        // A long constant loop inside stays a loop: 10 + 10 * 40.
        assert_eq!(loop_nest(&[Trip::Uniform(10), Trip::Constant(40)]), 410);
        // An unrolled constant loop outside multiplies the loop inside it.
        assert_eq!(loop_nest(&[Trip::Constant(8), Trip::Uniform(5)]), 40);
        // Two sibling nests inside one loop.
        let t = loop_tree(
            &[Trip::Uniform(4)],
            &[&[Trip::Uniform(2)], &[Trip::Constant(64)]],
        );
        assert_eq!(t, 4 + 4 * 2 + 4 * 64);
        assert_eq!(
            loop_nest(&[Trip::Uniform(u64::MAX), Trip::Uniform(2)]),
            u64::MAX
        );
    }
}
