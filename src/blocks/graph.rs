//! A block's graph, described once and walked three ways: on the GPU ([`Graph::forward`]),
//! on the CPU with the reference ops ([`Graph::reference`]) and for shapes and costs
//! ([`Graph::summary`]). Values are dropped after their last use in a recording, so the
//! recorder reuses their buffers without the blocks saying so.

use ndarray::{Array4, ArrayView4};

use super::nodes::{ConcatInPlace, ConcatPart, MaxPoolValues, Op, ResizeAdd};
use super::{Summary, SummaryRow};
use crate::error::{Error, Result};
use crate::gpu::{IndexTensor, Recorder, Tensor};
use crate::ops::upsample::UpsampleMode;
use crate::ops::{Activation, Cost};
use std::sync::OnceLock;

/// A value flowing through a graph on the GPU.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Tensor(Tensor),
    Indices(IndexTensor),
}

/// A value flowing through a graph on the CPU.
#[derive(Clone, Debug)]
pub(crate) enum HostValue {
    Tensor(Array4<f32>),
    Indices(Array4<i64>),
}

impl Value {
    pub(crate) fn tensor(&self) -> Result<&Tensor> {
        match self {
            Value::Tensor(t) => Ok(t),
            Value::Indices(_) => Err(wiring("a tensor", "indices")),
        }
    }

    pub(crate) fn indices(&self) -> Result<&IndexTensor> {
        match self {
            Value::Indices(i) => Ok(i),
            Value::Tensor(_) => Err(wiring("indices", "a tensor")),
        }
    }
}

impl HostValue {
    pub(crate) fn tensor(&self) -> Result<ArrayView4<'_, f32>> {
        match self {
            HostValue::Tensor(t) => Ok(t.view()),
            HostValue::Indices(_) => Err(wiring("a tensor", "indices")),
        }
    }

    pub(crate) fn indices(&self) -> Result<ArrayView4<'_, i64>> {
        match self {
            HostValue::Indices(i) => Ok(i.view()),
            HostValue::Tensor(_) => Err(wiring("indices", "a tensor")),
        }
    }
}

fn wiring(want: &str, got: &str) -> Error {
    Error::Gpu(format!("graph wiring: a node wanted {want} and got {got}"))
}

/// What a node receives: its value inputs, and the shapes of the values it only sizes
/// itself by (which the graph does not keep alive for it).
pub(crate) struct Inputs<'a, V> {
    pub(crate) values: Vec<&'a V>,
    pub(crate) shapes: Vec<[usize; 4]>,
}

impl<V> Inputs<'_, V> {
    /// Value input `i`.
    pub(crate) fn get(&self, i: usize) -> Result<&V> {
        self.values
            .get(i)
            .copied()
            .ok_or_else(|| Error::Gpu(format!("graph wiring: no input {i}")))
    }

    /// Every value input, each through `f` (e.g. to its tensor).
    pub(crate) fn all<'v, T>(&'v self, f: impl Fn(&'v V) -> Result<T>) -> Result<Vec<T>> {
        self.values.iter().map(|v| f(v)).collect()
    }

    /// Shape input `i`.
    pub(crate) fn shape(&self, i: usize) -> Result<[usize; 4]> {
        self.shapes
            .get(i)
            .copied()
            .ok_or_else(|| Error::Gpu(format!("graph wiring: no shape input {i}")))
    }
}

/// One step of a graph: an op, layer or nested block over earlier values.
pub(crate) trait Node: std::fmt::Debug + Send + Sync {
    /// The output shapes for these input shapes (value inputs, then shape inputs), or the
    /// error the forward would return.
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>>;

    /// Parameters and MACs of the node on these inputs.
    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost>;

    /// The summary rows of the node named `name` (one row; nested blocks give theirs).
    fn rows(&self, name: &str, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<SummaryRow>> {
        let cost = self.cost(inputs)?;
        let output = *self
            .shapes(inputs)?
            .first()
            .ok_or_else(|| Error::Gpu(format!("graph: node {name} has no output")))?;
        Ok(vec![SummaryRow {
            name: name.to_string(),
            output,
            params: cost.params,
            macs: cost.macs,
        }])
    }

    /// Records the node.
    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>>;

    /// The CPU reference of the node.
    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>>;

    /// The node as an [`Op`], for [`Graph::forward_plan`] to recognise resizes,
    /// concatenations and max pools; `None` for every other node.
    fn as_op(&self) -> Option<&Op> {
        None
    }
}

/// A value of a graph under construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValueId(usize);

#[derive(Debug)]
struct Step {
    name: String,
    node: Box<dyn Node>,
    inputs: Vec<ValueId>,
    shape_inputs: Vec<ValueId>,
    outputs: Vec<ValueId>,
}

/// A block's computation: named nodes in execution order over values, from one input to
/// one output (a graph nested in a network's may hand further outputs to it; a recurrent
/// network's takes its states as further inputs).
#[derive(Debug)]
pub struct Graph {
    steps: Vec<Step>,
    values: usize,
    /// Values `0..inputs` are the graph's inputs.
    inputs: usize,
    outputs: Vec<ValueId>,
    /// What [`Graph::forward_all`] records ([`Graph::forward_plan`]), made at its first
    /// call.
    plan: OnceLock<Vec<Planned>>,
}

/// A step of the forward plan: one of the graph's, or one that replaces it (a
/// concatenation that absorbed the resizes only it reads, a max pool without indices).
#[derive(Debug)]
enum Planned {
    Step(usize),
    Replaced(Step),
}

impl Default for Graph {
    fn default() -> Self {
        Graph::new()
    }
}

impl Graph {
    /// An empty graph whose value 0 is its input.
    pub(crate) fn new() -> Self {
        Graph::with_inputs(1)
    }

    /// An empty graph whose values `0..inputs` are its inputs ([`Graph::input_at`]). Such a
    /// graph runs on its own ([`Graph::forward_inputs`]); nested in another as a node it
    /// receives only its first input (a typed error about its inputs).
    pub(crate) fn with_inputs(inputs: usize) -> Self {
        Graph {
            steps: Vec::new(),
            values: inputs,
            inputs,
            outputs: Vec::new(),
            plan: OnceLock::new(),
        }
    }

    /// The graph's input.
    pub(crate) fn input(&self) -> ValueId {
        ValueId(0)
    }

    /// The graph's input `i` (of [`Graph::with_inputs`]).
    pub(crate) fn input_at(&self, i: usize) -> ValueId {
        debug_assert!(i < self.inputs);
        ValueId(i)
    }

    /// Appends a node with one output.
    pub(crate) fn add(
        &mut self,
        name: impl Into<String>,
        node: impl Node + 'static,
        inputs: &[ValueId],
    ) -> ValueId {
        self.add_sized(name, node, inputs, &[])
    }

    /// Appends a node with `outputs` outputs.
    pub(crate) fn add_multi(
        &mut self,
        name: impl Into<String>,
        node: impl Node + 'static,
        inputs: &[ValueId],
        outputs: usize,
    ) -> Vec<ValueId> {
        self.push(name.into(), Box::new(node), inputs, &[], outputs)
    }

    /// Appends a node with one output that also reads the shapes of `shapes_of`.
    pub(crate) fn add_sized(
        &mut self,
        name: impl Into<String>,
        node: impl Node + 'static,
        inputs: &[ValueId],
        shapes_of: &[ValueId],
    ) -> ValueId {
        self.push(name.into(), Box::new(node), inputs, shapes_of, 1)[0]
    }

    /// `x` resized by `mode` to the height and width of `like`
    /// (`F.interpolate(x, size=like.shape[-2:], mode=...)`).
    pub(crate) fn resize_like(
        &mut self,
        name: impl Into<String>,
        mode: UpsampleMode,
        x: ValueId,
        like: ValueId,
    ) -> ValueId {
        self.add_sized(name, Op::ResizeLike(mode), &[x], &[like])
    }

    fn push(
        &mut self,
        name: String,
        node: Box<dyn Node>,
        inputs: &[ValueId],
        shapes_of: &[ValueId],
        outputs: usize,
    ) -> Vec<ValueId> {
        let outs: Vec<ValueId> = (0..outputs).map(|i| ValueId(self.values + i)).collect();
        self.values += outputs;
        self.plan = OnceLock::new();
        self.steps.push(Step {
            name,
            node,
            inputs: inputs.to_vec(),
            shape_inputs: shapes_of.to_vec(),
            outputs: outs.clone(),
        });
        outs
    }

    /// Marks the graph's outputs (the first is the block's output).
    pub(crate) fn set_outputs(&mut self, outputs: &[ValueId]) {
        self.outputs = outputs.to_vec();
        self.plan = OnceLock::new();
    }

    /// The steps the GPU records: the graph's, except that a concatenation takes in each
    /// of its inputs made by a resize that nothing else reads (not another node, not as a
    /// shape, not as an output) and writes it in place ([`ConcatInPlace`]), those resizes
    /// dropped, and a max pool whose indices nothing reads writes its values alone
    /// ([`MaxPoolValues`]). The reference and the summary walk the graph as built.
    fn forward_plan(&self) -> Vec<Planned> {
        let mut uses = vec![0usize; self.values];
        let mut sized_by = vec![false; self.values];
        let mut producer = vec![None; self.values];
        for (i, s) in self.steps.iter().enumerate() {
            for v in &s.inputs {
                uses[v.0] += 1;
            }
            for v in &s.shape_inputs {
                sized_by[v.0] = true;
            }
            if let [out] = s.outputs[..] {
                producer[out.0] = Some(i);
            }
        }
        // Read by `n` nodes and nothing else: no shape input, not an output.
        let read_by =
            |v: &ValueId, n: usize| uses[v.0] == n && !sized_by[v.0] && !self.outputs.contains(v);
        // The step and op of the resize that made `v`, where one node only reads `v`. A
        // resize reads one value; `ResizeLike` one shape too, `Upsample` none (the fused
        // nodes take the shape inputs in order).
        let sole_resize = |v: &ValueId| {
            producer[v.0].filter(|_| read_by(v, 1)).and_then(|j| {
                let step = &self.steps[j];
                let op = step.node.as_op()?;
                let shapes = match op {
                    Op::ResizeLike(_) => 1,
                    Op::Upsample(_) => 0,
                    _ => return None,
                };
                let wired = step.inputs.len() == 1 && step.shape_inputs.len() == shapes;
                wired.then(|| (j, op.clone()))
            })
        };
        let mut absorbed = vec![false; self.steps.len()];
        let mut plan = Vec::with_capacity(self.steps.len());
        for (i, s) in self.steps.iter().enumerate() {
            let op = s.node.as_op();
            if let (Some(Op::MaxPool(p)), [values, indices]) = (op, &s.outputs[..]) {
                if read_by(indices, 0) {
                    plan.push(Planned::Replaced(Step {
                        name: s.name.clone(),
                        node: Box::new(MaxPoolValues(*p)),
                        inputs: s.inputs.clone(),
                        shape_inputs: s.shape_inputs.clone(),
                        outputs: vec![*values],
                    }));
                    continue;
                }
            }
            // A sum with a resize only it reads: the resize's store adds.
            let act = match op {
                Some(Op::Add) => Some(Activation::None),
                Some(Op::AddThen(act)) => Some(*act),
                _ => None,
            };
            if let (Some(act), [a, b]) = (act, &s.inputs[..]) {
                let resized = [(a, b), (b, a)]
                    .into_iter()
                    .find_map(|(v, other)| Some((sole_resize(v)?, *other)));
                if let Some(((j, resize), other)) = resized {
                    absorbed[j] = true;
                    let resize_step = &self.steps[j];
                    plan.push(Planned::Replaced(Step {
                        name: s.name.clone(),
                        node: Box::new(ResizeAdd { resize, act }),
                        inputs: vec![resize_step.inputs[0], other],
                        shape_inputs: resize_step.shape_inputs.clone(),
                        outputs: s.outputs.clone(),
                    }));
                    continue;
                }
            }
            if !matches!(op, Some(Op::Concat)) {
                plan.push(Planned::Step(i));
                continue;
            }
            let mut parts = Vec::with_capacity(s.inputs.len());
            let (mut inputs, mut shape_inputs) = (Vec::new(), Vec::new());
            for v in &s.inputs {
                match sole_resize(v) {
                    Some((j, op)) => {
                        absorbed[j] = true;
                        parts.push(ConcatPart::Resize(op));
                        inputs.extend(&self.steps[j].inputs);
                        shape_inputs.extend(&self.steps[j].shape_inputs);
                    }
                    None => {
                        parts.push(ConcatPart::Copy);
                        inputs.push(*v);
                    }
                }
            }
            if parts.iter().all(|p| matches!(p, ConcatPart::Copy)) {
                plan.push(Planned::Step(i));
                continue;
            }
            plan.push(Planned::Replaced(Step {
                name: s.name.clone(),
                node: Box::new(ConcatInPlace { parts }),
                inputs,
                shape_inputs,
                outputs: s.outputs.clone(),
            }));
        }
        plan.retain(|p| !matches!(p, Planned::Step(j) if absorbed[*j]));
        plan
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True for a graph without nodes.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The node names in execution order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.name.as_str())
    }

    /// Walks the graph with `run` for each node, dropping every value after its last use
    /// (the graph's outputs excepted), and returns the outputs.
    fn walk<V: Clone>(
        &self,
        inputs: Vec<V>,
        shape_of: impl Fn(&V) -> [usize; 4],
        run: impl FnMut(&Step, &Inputs<'_, V>) -> Result<Vec<V>>,
    ) -> Result<Vec<V>> {
        let steps: Vec<&Step> = self.steps.iter().collect();
        self.walk_steps(&steps, inputs, shape_of, run)
    }

    /// [`Graph::walk`] over `steps` (the graph's, or its forward plan's).
    fn walk_steps<V: Clone>(
        &self,
        steps: &[&Step],
        inputs: Vec<V>,
        shape_of: impl Fn(&V) -> [usize; 4],
        mut run: impl FnMut(&Step, &Inputs<'_, V>) -> Result<Vec<V>>,
    ) -> Result<Vec<V>> {
        if inputs.len() != self.inputs {
            return Err(Error::InvalidParam {
                name: "inputs",
                reason: format!(
                    "the graph takes {} inputs, got {}",
                    self.inputs,
                    inputs.len()
                ),
            });
        }
        let mut last_use = vec![None; self.values];
        for (i, s) in steps.iter().enumerate() {
            for v in &s.inputs {
                last_use[v.0] = Some(i);
            }
        }
        let mut values: Vec<Option<V>> = vec![None; self.values];
        let mut shapes: Vec<Option<[usize; 4]>> = vec![None; self.values];
        for (i, input) in inputs.into_iter().enumerate() {
            shapes[i] = Some(shape_of(&input));
            values[i] = Some(input);
        }
        for (i, s) in steps.iter().enumerate() {
            let outs = {
                let get = |v: &ValueId| {
                    values[v.0].as_ref().ok_or_else(|| {
                        Error::Gpu(format!("graph: {} reads a value that is gone", s.name))
                    })
                };
                let inputs = Inputs {
                    values: s.inputs.iter().map(get).collect::<Result<_>>()?,
                    shapes: s
                        .shape_inputs
                        .iter()
                        .map(|v| shapes[v.0].ok_or_else(|| Error::Gpu("graph: no shape".into())))
                        .collect::<Result<_>>()?,
                };
                run(s, &inputs)?
            };
            for (id, v) in s.outputs.iter().zip(outs) {
                shapes[id.0] = Some(shape_of(&v));
                values[id.0] = Some(v);
            }
            for v in &s.inputs {
                if last_use[v.0] == Some(i) && !self.outputs.contains(v) {
                    values[v.0] = None;
                }
            }
        }
        self.outputs
            .iter()
            .map(|v| {
                values[v.0]
                    .take()
                    .ok_or_else(|| Error::Gpu("graph: an output was never computed".into()))
            })
            .collect()
    }

    /// Records the graph on `input`; returns every output.
    pub(crate) fn forward_all(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<Vec<Value>> {
        self.forward_inputs(rec, &[input])
    }

    /// Records the graph on its inputs ([`Graph::with_inputs`]); returns every output.
    pub(crate) fn forward_inputs(
        &self,
        rec: &mut Recorder<'_>,
        inputs: &[&Tensor],
    ) -> Result<Vec<Value>> {
        let plan = self.plan.get_or_init(|| self.forward_plan());
        let steps: Vec<&Step> = plan
            .iter()
            .map(|p| match p {
                Planned::Step(i) => &self.steps[*i],
                Planned::Replaced(s) => s,
            })
            .collect();
        self.walk_steps(
            &steps,
            inputs.iter().map(|t| Value::Tensor((*t).clone())).collect(),
            value_shape,
            |s, inputs| {
                rec.enter_layer(&s.name);
                let outputs = s.node.forward(rec, inputs);
                rec.leave_layer();
                outputs
            },
        )
    }

    /// Records the graph on `input`; returns its output.
    pub(crate) fn forward(&self, rec: &mut Recorder<'_>, input: &Tensor) -> Result<Tensor> {
        first(self.forward_all(rec, input)?)?.tensor().cloned()
    }

    /// The CPU reference of the graph on `input`; returns every output.
    pub(crate) fn reference_all(&self, input: ArrayView4<f32>) -> Result<Vec<HostValue>> {
        self.reference_inputs(&[input])
    }

    /// The CPU reference of the graph on its inputs; returns every output.
    pub(crate) fn reference_inputs(&self, inputs: &[ArrayView4<f32>]) -> Result<Vec<HostValue>> {
        self.walk(
            inputs
                .iter()
                .map(|x| HostValue::Tensor(x.to_owned()))
                .collect(),
            host_shape,
            |s, inputs| s.node.reference(inputs),
        )
    }

    /// The CPU reference of the graph on `input`.
    pub(crate) fn reference(&self, input: ArrayView4<f32>) -> Result<Array4<f32>> {
        Ok(first(self.reference_all(input)?)?.tensor()?.to_owned())
    }

    /// Every node's summary rows for an input of shape `input`, in execution order; the
    /// output shapes of every output.
    pub(crate) fn summary_all(&self, input: [usize; 4]) -> Result<(Summary, Vec<[usize; 4]>)> {
        self.summary_inputs(&[input])
    }

    /// [`Graph::summary_all`] for the shapes of every input.
    pub(crate) fn summary_inputs(
        &self,
        inputs: &[[usize; 4]],
    ) -> Result<(Summary, Vec<[usize; 4]>)> {
        let mut summary = Summary::default();
        let outputs = self.walk(
            inputs.to_vec(),
            |s| *s,
            |s, inputs| {
                summary.rows.extend(s.node.rows(&s.name, inputs)?);
                s.node.shapes(inputs)
            },
        )?;
        Ok((summary, outputs))
    }

    /// Every node's summary rows for an input of shape `input`.
    pub(crate) fn summary(&self, input: [usize; 4]) -> Result<Summary> {
        Ok(self.summary_all(input)?.0)
    }

    /// The output shape for an input of shape `input`, or the error the forward would
    /// return.
    pub(crate) fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        first(self.summary_all(input)?.1)
    }
}

fn first<V>(v: Vec<V>) -> Result<V> {
    v.into_iter()
        .next()
        .ok_or_else(|| Error::Gpu("graph: no output".into()))
}

fn value_shape(v: &Value) -> [usize; 4] {
    match v {
        Value::Tensor(t) => t.shape(),
        Value::Indices(i) => i.shape(),
    }
}

fn host_shape(v: &HostValue) -> [usize; 4] {
    let s = match v {
        HostValue::Tensor(t) => t.shape(),
        HostValue::Indices(i) => i.shape(),
    };
    [s[0], s[1], s[2], s[3]]
}

/// A nested graph is a node: its rows come prefixed with the node's name.
impl Node for Graph {
    fn shapes(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<[usize; 4]>> {
        Ok(self.summary_all(*inputs.get(0)?)?.1)
    }

    fn cost(&self, inputs: &Inputs<'_, [usize; 4]>) -> Result<Cost> {
        let s = self.summary(*inputs.get(0)?)?;
        Ok(Cost {
            params: s.total_params(),
            macs: s.total_macs(),
            bytes: 0,
        })
    }

    fn rows(&self, name: &str, inputs: &Inputs<'_, [usize; 4]>) -> Result<Vec<SummaryRow>> {
        let s = self.summary(*inputs.get(0)?)?;
        Ok(s.rows
            .into_iter()
            .map(|r| SummaryRow {
                name: if name.is_empty() {
                    r.name
                } else {
                    format!("{name}.{}", r.name)
                },
                ..r
            })
            .collect())
    }

    fn forward(&self, rec: &mut Recorder<'_>, inputs: &Inputs<'_, Value>) -> Result<Vec<Value>> {
        self.forward_all(rec, inputs.get(0)?.tensor()?)
    }

    fn reference(&self, inputs: &Inputs<'_, HostValue>) -> Result<Vec<HostValue>> {
        self.reference_all(inputs.get(0)?.tensor()?)
    }
}
