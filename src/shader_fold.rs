//! A pipeline's `override` values folded into its shader before the driver sees it.
//!
//! Kernels pick their variant with WGSL `override` constants (the activation, a fused
//! residual, a gate, ...). wgpu substitutes their values at pipeline creation but keeps
//! every branch they select, and Mesa's compilers (lavapipe, llvmpipe's GL) inline and
//! optimise all of it before they fold the constants: the convolutions' stores inline
//! every activation, and that dead code was about half of lavapipe's pipeline creation
//! for them, even with its shader cache warm (measured in the README's Speed section). Drivers for real GPUs
//! pay for dead code too, in their front ends.
//!
//! So on the native backends a shader is parsed once by naga ([`Parsed`]), and for each
//! pipeline [`specialize`] substitutes the values (naga's own `process_overrides`), then
//! replaces each `if` whose condition became a constant and each `switch` whose selector
//! did with the branch taken (a call whose constant arguments decide the callee's
//! branches gets its own copy of the callee first), drops the statements after a taken
//! branch that returns, and removes the functions no longer called (naga's `compact`). The bindings the
//! removed code used stay in the entry point's interface (a phony use, as WGSL's
//! `_ = &binding;`), so the bind group layout wgpu derives from the module is the one
//! the unfolded shader had. The web keeps the WGSL path: a browser compiles WGSL itself.

use std::collections::HashMap;

use naga::back::pipeline_constants::process_overrides;
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use naga::{Block, Expression, Function, Handle, Literal, Module, Span, Statement, SwitchValue};

/// A shader parsed and validated once, specialised per pipeline by [`specialize`].
pub(crate) struct Parsed {
    module: Module,
    info: ModuleInfo,
    /// The `(group, binding)` of every resource the entry point uses.
    interface: Vec<naga::ResourceBinding>,
}

/// Parses and validates WGSL `source` (one of the crate's shaders, `name` for messages).
pub(crate) fn parse(name: &str, source: &str) -> Result<Parsed, String> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| format!("{name}: {}", e.emit_to_string(source)))?;
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .map_err(|e| format!("{name}: {}", e.emit_to_string(source)))?;
    let interface = match module.entry_points.first() {
        Some(_) => {
            let used = info.get_entry_point(0);
            module
                .global_variables
                .iter()
                .filter(|&(h, _)| !used[h].is_empty())
                .filter_map(|(_, v)| v.binding)
                .collect()
        }
        None => Vec::new(),
    };
    Ok(Parsed {
        module,
        info,
        interface,
    })
}

/// `parsed` with the override values `constants` substituted and the branches they
/// decide folded (see the module documentation). The result has no overrides left.
pub(crate) fn specialize(parsed: &Parsed, constants: &[(&str, f64)]) -> Result<Module, String> {
    let unfolded = substitute(parsed, constants)?;
    // The folding is an optimisation: a module it would leave invalid (a case it does
    // not handle) goes to the driver unfolded rather than failing.
    fold(parsed, &unfolded).or_else(|e| {
        log::warn!("segblocks: shader left unfolded (override values {constants:?}): {e}");
        Ok(unfolded)
    })
}

/// `parsed` with the override values substituted (naga's `process_overrides`).
fn substitute(parsed: &Parsed, constants: &[(&str, f64)]) -> Result<Module, String> {
    let mut values = naga::back::PipelineConstants::default();
    for &(name, value) in constants {
        values.insert(name.to_string(), value);
    }
    let entry = parsed
        .module
        .entry_points
        .first()
        .map(|e| (e.stage, e.name.as_str()));
    let (module, _) = process_overrides(&parsed.module, &parsed.info, entry, &values)
        .map_err(|e| format!("override values {constants:?}: {e}"))?;
    Ok(module.into_owned())
}

/// `unfolded` (from [`substitute`]) with its constant branches folded, validated.
fn fold(parsed: &Parsed, unfolded: &Module) -> Result<Module, String> {
    let mut module = unfolded.clone();
    specialize_calls(&mut module);
    fold_module(&mut module);
    keep_interface(&mut module, &parsed.interface);
    // Before `compact`, which may panic on an invalid module.
    Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .map_err(|e| format!("{e:?}"))?;
    naga::compact::compact(&mut module, naga::compact::KeepUnused::No);
    Ok(module)
}

/// Gives each call whose constant arguments decide branches of the callee (the
/// activation code of `activation4(GATE_ACT, v)`) a copy of the callee with those
/// arguments substituted, so that [`fold_module`] can fold its branches; then puts the
/// functions in call order again (a callee before its callers), as naga requires.
fn specialize_calls(module: &mut Module) {
    let mut copies = Vec::new();
    let mut decides = HashMap::new();
    for e in 0..module.entry_points.len() {
        let calls = constant_calls(module, &module.entry_points[e].function, &mut decides);
        let targets = copy_callees(module, calls, &mut copies);
        let f = &mut module.entry_points[e].function;
        retarget_calls(&mut f.body, &mut f.expressions, &mut targets.into_iter());
    }
    // Copies are appended and visited in turn: their calls may now have constant
    // arguments too.
    let mut next = 0;
    while next < module.functions.len() {
        let caller = module.functions.iter().nth(next).map(|(h, _)| h);
        next += 1;
        let Some(caller) = caller else { break };
        let calls = constant_calls(module, &module.functions[caller], &mut decides);
        let targets = copy_callees(module, calls, &mut copies);
        let f = module.functions.get_mut(caller);
        retarget_calls(&mut f.body, &mut f.expressions, &mut targets.into_iter());
    }
    if !copies.is_empty() {
        put_in_call_order(module);
    }
}

/// A call's callee and the constant arguments that decide its branches (none: the call
/// stays as it is).
type ConstantCall = Option<(Handle<Function>, Vec<(usize, Literal)>)>;

/// A copy of a function for constant arguments: the original, the arguments, the copy.
type CalleeCopy = (Handle<Function>, Vec<(usize, Literal)>, Handle<Function>);

/// Every call of `caller`, in the order [`retarget_calls`] visits them.
fn constant_calls(
    module: &Module,
    caller: &Function,
    decides: &mut HashMap<(Handle<Function>, usize), bool>,
) -> Vec<ConstantCall> {
    let values = Constants::of(caller, module);
    let mut calls = Vec::new();
    visit_calls(&caller.body, &mut |function, arguments| {
        let constant: Vec<(usize, Literal)> = arguments
            .iter()
            .enumerate()
            .filter_map(|(i, &a)| match values.literal(a)? {
                l @ (Literal::U32(_) | Literal::I32(_) | Literal::Bool(_)) => Some((i, l)),
                _ => None,
            })
            .filter(|&(i, _)| decides_branch(module, function, i, decides))
            .collect();
        calls.push((!constant.is_empty()).then_some((function, constant)));
    });
    calls
}

/// For each call of `calls`, the copy of its callee to call instead, made on first use.
fn copy_callees(
    module: &mut Module,
    calls: Vec<ConstantCall>,
    copies: &mut Vec<CalleeCopy>,
) -> Vec<Option<Handle<Function>>> {
    calls
        .into_iter()
        .map(|call| {
            let (callee, constant) = call?;
            if let Some(&(_, _, copy)) = copies
                .iter()
                .find(|(f, c, _)| *f == callee && *c == constant)
            {
                return Some(copy);
            }
            let mut copy = module.functions[callee].clone();
            for (_, expr) in copy.expressions.iter_mut() {
                if let Expression::FunctionArgument(i) = *expr {
                    if let Some(&(_, l)) = constant.iter().find(|(a, _)| *a == i as usize) {
                        *expr = Expression::Literal(l);
                    }
                }
            }
            copy.name = copy.name.map(|n| format!("{n}_{}", copies.len()));
            let span = module.functions.get_span(callee);
            let handle = module.functions.append(copy, span);
            copies.push((callee, constant, handle));
            Some(handle)
        })
        .collect()
}

/// Whether argument `argument` of `function` decides one of its branches: it is a
/// `switch` selector, an operand of an `if` condition, or such an argument of a call.
fn decides_branch(
    module: &Module,
    function: Handle<Function>,
    argument: usize,
    decides: &mut HashMap<(Handle<Function>, usize), bool>,
) -> bool {
    if let Some(&d) = decides.get(&(function, argument)) {
        return d;
    }
    let f = &module.functions[function];
    let is_argument =
        |h: Handle<Expression>| f.expressions[h] == Expression::FunctionArgument(argument as u32);
    let operand = |h: Handle<Expression>| match f.expressions[h] {
        Expression::Binary { left, right, .. } => is_argument(left) || is_argument(right),
        Expression::Unary { expr, .. } => is_argument(expr),
        _ => is_argument(h),
    };
    let mut found = false;
    let mut passed = Vec::new();
    visit_statements(&f.body, &mut |s| match s {
        Statement::Switch { selector, .. } => found |= operand(*selector),
        Statement::If { condition, .. } => found |= operand(*condition),
        Statement::Call {
            function: callee,
            arguments,
            ..
        } => passed.extend(
            arguments
                .iter()
                .enumerate()
                .filter(|&(_, &a)| is_argument(a))
                .map(|(j, _)| (*callee, j)),
        ),
        _ => {}
    });
    let d = found
        || passed
            .into_iter()
            .any(|(callee, j)| decides_branch(module, callee, j, decides));
    decides.insert((function, argument), d);
    d
}

/// Calls `visit` on every statement of `block`, at any depth, outer ones first.
fn visit_statements(block: &Block, visit: &mut impl FnMut(&Statement)) {
    for s in block.iter() {
        visit(s);
        match s {
            Statement::Block(b) => visit_statements(b, visit),
            Statement::If { accept, reject, .. } => {
                visit_statements(accept, visit);
                visit_statements(reject, visit);
            }
            Statement::Switch { cases, .. } => {
                for c in cases {
                    visit_statements(&c.body, visit);
                }
            }
            Statement::Loop {
                body, continuing, ..
            } => {
                visit_statements(body, visit);
                visit_statements(continuing, visit);
            }
            _ => {}
        }
    }
}

/// Calls `visit` with the callee and arguments of every call in `block`, in order.
fn visit_calls(block: &Block, visit: &mut impl FnMut(Handle<Function>, &[Handle<Expression>])) {
    visit_statements(block, &mut |s| {
        if let Statement::Call {
            function,
            arguments,
            ..
        } = s
        {
            visit(*function, arguments);
        }
    });
}

/// Points each call of `block` (in [`visit_calls`]' order) at its entry of `targets`,
/// where there is one, and its result with it.
fn retarget_calls(
    block: &mut Block,
    expressions: &mut naga::Arena<Expression>,
    targets: &mut impl Iterator<Item = Option<Handle<Function>>>,
) {
    for s in block.iter_mut() {
        if let Statement::Call {
            function, result, ..
        } = s
        {
            if let Some(Some(target)) = targets.next() {
                *function = target;
                if let Some(r) = result {
                    expressions[*r] = Expression::CallResult(target);
                }
            }
        }
        match s {
            Statement::Block(b) => retarget_calls(b, expressions, targets),
            Statement::If { accept, reject, .. } => {
                retarget_calls(accept, expressions, targets);
                retarget_calls(reject, expressions, targets);
            }
            Statement::Switch { cases, .. } => {
                for c in cases {
                    retarget_calls(&mut c.body, expressions, targets);
                }
            }
            Statement::Loop {
                body, continuing, ..
            } => {
                retarget_calls(body, expressions, targets);
                retarget_calls(continuing, expressions, targets);
            }
            _ => {}
        }
    }
}

/// Rebuilds the function arena so that every callee precedes its callers (naga
/// validates functions in arena order), keeping only the functions reached from an
/// entry point.
fn put_in_call_order(module: &mut Module) {
    fn visit(
        f: Handle<Function>,
        old: &naga::Arena<Function>,
        seen: &mut [bool],
        order: &mut Vec<Handle<Function>>,
    ) {
        if std::mem::replace(&mut seen[f.index()], true) {
            return;
        }
        let mut callees = Vec::new();
        visit_calls(&old[f].body, &mut |c, _| callees.push(c));
        for c in callees {
            visit(c, old, seen, order);
        }
        order.push(f);
    }
    let old = module.functions.take();
    let mut order = Vec::new();
    let mut seen = vec![false; old.len()];
    for e in &module.entry_points {
        let mut callees = Vec::new();
        visit_calls(&e.function.body, &mut |c, _| callees.push(c));
        for c in callees {
            visit(c, &old, &mut seen, &mut order);
        }
    }
    let mut new_handle = HashMap::new();
    for f in order {
        let h = module.functions.append(old[f].clone(), old.get_span(f));
        new_handle.insert(f, h);
    }
    let remap = |f: &mut Function| {
        let mut targets = Vec::new();
        visit_calls(&f.body, &mut |c, _| targets.push(Some(new_handle[&c])));
        retarget_calls(&mut f.body, &mut f.expressions, &mut targets.into_iter());
    };
    for (_, f) in module.functions.iter_mut() {
        remap(f);
    }
    for e in module.entry_points.iter_mut() {
        remap(&mut e.function);
    }
}

/// Folds the constant branches of every function and entry point of `module`.
fn fold_module(module: &mut Module) {
    let Module {
        functions,
        entry_points,
        constants,
        global_expressions,
        ..
    } = module;
    let fold = |f: &mut Function| {
        let body = std::mem::take(&mut f.body);
        let ctx = Constants {
            expressions: &f.expressions,
            constants,
            global_expressions,
        };
        let mut dead = Vec::new();
        f.body = fold_block(body, &ctx, &mut dead).0;
        // The expressions of the removed code: no statement evaluates them any more,
        // which the validator refuses unless they are constants.
        let initializers: Vec<_> = f
            .local_variables
            .iter()
            .filter_map(|(_, v)| v.init)
            .collect();
        for h in dead {
            if !initializers.contains(&h) {
                f.expressions[h] = Expression::Literal(Literal::Bool(false));
            }
        }
    };
    for (_, f) in functions.iter_mut() {
        fold(f);
    }
    for e in entry_points.iter_mut() {
        fold(&mut e.function);
    }
}

/// Where a function's expressions find their constant values.
struct Constants<'a> {
    expressions: &'a naga::Arena<Expression>,
    constants: &'a naga::Arena<naga::Constant>,
    global_expressions: &'a naga::Arena<Expression>,
}

impl<'a> Constants<'a> {
    fn of(f: &'a Function, module: &'a Module) -> Self {
        Constants {
            expressions: &f.expressions,
            constants: &module.constants,
            global_expressions: &module.global_expressions,
        }
    }

    /// The value of `expr` where it is a literal or a constant (an override after
    /// substitution is one), or a comparison or logical operation of such values (an
    /// argument substituted by [`specialize_calls`] is compared in the callee).
    fn literal(&self, expr: Handle<Expression>) -> Option<Literal> {
        use naga::{BinaryOperator as B, UnaryOperator as U};
        match self.expressions[expr] {
            Expression::Literal(l) => Some(l),
            Expression::Constant(c) => match self.global_expressions[self.constants[c].init] {
                Expression::Literal(l) => Some(l),
                _ => None,
            },
            Expression::Unary {
                op: U::LogicalNot,
                expr,
            } => match self.literal(expr)? {
                Literal::Bool(b) => Some(Literal::Bool(!b)),
                _ => None,
            },
            Expression::Binary { op, left, right } => {
                let (a, b) = (self.literal(left)?, self.literal(right)?);
                let ordering = match (a, b) {
                    (Literal::U32(a), Literal::U32(b)) => a.cmp(&b),
                    (Literal::I32(a), Literal::I32(b)) => a.cmp(&b),
                    (Literal::Bool(a), Literal::Bool(b)) => {
                        return match op {
                            B::LogicalAnd | B::And => Some(Literal::Bool(a && b)),
                            B::LogicalOr | B::InclusiveOr => Some(Literal::Bool(a || b)),
                            B::Equal => Some(Literal::Bool(a == b)),
                            B::NotEqual => Some(Literal::Bool(a != b)),
                            _ => None,
                        }
                    }
                    _ => return None,
                };
                let holds = match op {
                    B::Equal => ordering.is_eq(),
                    B::NotEqual => ordering.is_ne(),
                    B::Less => ordering.is_lt(),
                    B::LessEqual => ordering.is_le(),
                    B::Greater => ordering.is_gt(),
                    B::GreaterEqual => ordering.is_ge(),
                    _ => return None,
                };
                Some(Literal::Bool(holds))
            }
            _ => None,
        }
    }
}

/// `block` with its constant branches folded, and whether it ends by returning (so that
/// whatever follows it in the enclosing block never runs).
fn fold_block(block: Block, ctx: &Constants, dead: &mut Vec<Handle<Expression>>) -> (Block, bool) {
    let mut out = Block::with_capacity(block.len());
    let mut statements = block.span_into_iter();
    while let Some((statement, span)) = statements.next() {
        let taken = match statement {
            Statement::If {
                condition,
                accept,
                reject,
            } => match ctx.literal(condition) {
                Some(Literal::Bool(c)) => {
                    let (taken, not_taken) = if c {
                        (accept, reject)
                    } else {
                        (reject, accept)
                    };
                    removed(&not_taken, dead);
                    Some(taken)
                }
                _ => {
                    let accept = fold_block(accept, ctx, dead).0;
                    let reject = fold_block(reject, ctx, dead).0;
                    out.push(
                        Statement::If {
                            condition,
                            accept,
                            reject,
                        },
                        span,
                    );
                    None
                }
            },
            Statement::Switch { selector, cases } => {
                match ctx.literal(selector).and_then(|v| taken_case(&cases, v)) {
                    Some((taken, cases_taken)) => {
                        for (i, case) in cases.iter().enumerate() {
                            if !cases_taken.contains(&i) {
                                removed(&case.body, dead);
                            }
                        }
                        Some(taken)
                    }
                    None => {
                        let cases = cases
                            .into_iter()
                            .map(|c| naga::SwitchCase {
                                body: fold_block(c.body, ctx, dead).0,
                                ..c
                            })
                            .collect();
                        out.push(Statement::Switch { selector, cases }, span);
                        None
                    }
                }
            }
            Statement::Loop {
                body,
                continuing,
                break_if,
            } => {
                out.push(
                    Statement::Loop {
                        body: fold_block(body, ctx, dead).0,
                        continuing: fold_block(continuing, ctx, dead).0,
                        break_if,
                    },
                    span,
                );
                None
            }
            Statement::Block(b) => Some(b),
            s @ (Statement::Return { .. } | Statement::Kill) => {
                out.push(s, span);
                removed(&Block::from_vec(statements.map(|(s, _)| s).collect()), dead);
                return (out, true);
            }
            s => {
                out.push(s, span);
                None
            }
        };
        if let Some(taken) = taken {
            let (taken, returns) = fold_block(taken, ctx, dead);
            // A block of its own: the expressions it emits stay scoped to it.
            out.push(Statement::Block(taken), span);
            if returns {
                removed(&Block::from_vec(statements.map(|(s, _)| s).collect()), dead);
                return (out, true);
            }
        }
    }
    (out, false)
}

/// The statements a `switch` on the constant `value` runs: the matching case (or the
/// default) and those it falls through to, and which cases those are. `None` (the switch stays) where one of them
/// leaves the switch with `break`, which would mean another statement outside it.
fn taken_case(
    cases: &[naga::SwitchCase],
    value: Literal,
) -> Option<(Block, std::ops::Range<usize>)> {
    let matches = |v: &SwitchValue| match (*v, value) {
        (SwitchValue::U32(a), Literal::U32(b)) => a == b,
        (SwitchValue::I32(a), Literal::I32(b)) => a == b,
        _ => false,
    };
    let first = cases
        .iter()
        .position(|c| matches(&c.value))
        .or_else(|| cases.iter().position(|c| c.value == SwitchValue::Default))?;
    let mut taken = Block::new();
    let mut end = first;
    for case in &cases[first..] {
        if breaks(&case.body) {
            return None;
        }
        taken.extend_block(case.body.clone());
        end += 1;
        if !case.fall_through {
            break;
        }
    }
    Some((taken, first..end))
}

/// Adds to `dead` the expressions that `block` evaluates (its `Emit`s, the results of
/// its calls and other statements with one), at any depth.
fn removed(block: &Block, dead: &mut Vec<Handle<Expression>>) {
    visit_statements(block, &mut |s| match s {
        Statement::Emit(range) => dead.extend(range.clone()),
        Statement::Call {
            result: Some(r), ..
        }
        | Statement::Atomic {
            result: Some(r), ..
        }
        | Statement::WorkGroupUniformLoad { result: r, .. }
        | Statement::SubgroupBallot { result: r, .. }
        | Statement::SubgroupGather { result: r, .. }
        | Statement::SubgroupCollectiveOperation { result: r, .. } => dead.push(*r),
        _ => {}
    });
}

/// Whether `block` has a `break` that leaves the statement enclosing it (one not inside
/// a nested loop or switch).
fn breaks(block: &Block) -> bool {
    block.iter().any(|s| match s {
        Statement::Break => true,
        Statement::Block(b) => breaks(b),
        Statement::If { accept, reject, .. } => breaks(accept) || breaks(reject),
        _ => false,
    })
}

/// Keeps every resource of `interface` in the entry point's interface: a named
/// expression naming the variable counts as a use (WGSL's phony assignment), generates
/// no code, and is what keeps the derived bind group layout whole.
fn keep_interface(module: &mut Module, interface: &[naga::ResourceBinding]) {
    let Some(entry) = module.entry_points.first_mut() else {
        return;
    };
    for (handle, var) in module.global_variables.iter() {
        if var.binding.as_ref().is_some_and(|b| interface.contains(b)) {
            let f = &mut entry.function;
            let expr = f
                .expressions
                .append(Expression::GlobalVariable(handle), Span::UNDEFINED);
            f.named_expressions
                .insert(expr, format!("_keep_binding_{}", handle.index()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHADER: &str = "
        override MODE: u32 = 0u;
        override FLAG: bool = false;
        @group(0) @binding(0) var<storage, read> a: array<f32>;
        @group(0) @binding(1) var<storage, read_write> b: array<f32>;
        @group(0) @binding(2) var<storage, read> c: array<f32>;

        fn pick(code: u32, v: f32) -> f32 {
            switch code {
                case 1u: { return v * 2.0; }
                case 2u, 3u: { return exp(v); }
                default: { return v; }
            }
        }

        fn shape(code: u32, v: f32) -> f32 {
            return pick(code, v) + 1.0;
        }

        @compute @workgroup_size(1)
        fn main(@builtin(global_invocation_id) id: vec3<u32>) {
            var v = a[id.x];
            if (FLAG) {
                let extra = c[id.x];
                v += extra;
            }
            if (MODE == 7u) {
                b[id.x] = 0.0;
                return;
            }
            b[id.x] = shape(MODE, v) + pick(id.x, v);
        }
    ";

    /// The statements of every function and entry point of `module`, at any depth.
    fn statements(module: &Module) -> Vec<Statement> {
        let mut all = Vec::new();
        let functions = module.functions.iter().map(|(_, f)| f);
        for f in functions.chain(module.entry_points.iter().map(|e| &e.function)) {
            visit_statements(&f.body, &mut |s| all.push(s.clone()));
        }
        all
    }

    fn specialized(mode: u32, flag: bool) -> (Module, ModuleInfo) {
        let parsed = parse("test", SHADER).unwrap();
        let values = [
            ("MODE", f64::from(mode)),
            ("FLAG", f64::from(u8::from(flag))),
        ];
        let module = specialize(&parsed, &values).unwrap();
        let info = Validator::new(ValidationFlags::all(), Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("mode {mode}, flag {flag}: {e:?}"));
        (module, info)
    }

    fn switches(module: &Module) -> usize {
        let s = statements(module);
        s.iter()
            .filter(|s| matches!(s, Statement::Switch { .. }))
            .count()
    }

    #[test]
    fn constant_branches_and_the_calls_they_decide_are_folded() {
        for mode in [0, 1, 2, 3, 9] {
            let (module, _) = specialized(mode, false);
            // `pick(id.x, v)` keeps its switch; the copy for `shape(MODE, v)` has none.
            assert_eq!(switches(&module), 1, "mode {mode}");
            assert!(
                !statements(&module)
                    .iter()
                    .any(|s| matches!(s, Statement::If { .. })),
                "mode {mode}"
            );
            assert!(module.overrides.is_empty());
            // main, shape's copy, pick's copy and pick.
            let names: Vec<_> = module
                .functions
                .iter()
                .map(|(_, f)| f.name.clone())
                .collect();
            assert_eq!(module.functions.len(), 3, "mode {mode}: {names:?}");
        }
    }

    #[test]
    fn code_after_a_taken_return_is_dropped() {
        let (module, _) = specialized(7, true);
        let calls = statements(&module)
            .iter()
            .filter(|s| matches!(s, Statement::Call { .. }))
            .count();
        assert_eq!(calls, 0);
        assert!(module.functions.is_empty());
    }

    #[test]
    fn bindings_used_only_by_removed_code_stay_in_the_interface() {
        for flag in [false, true] {
            let (module, info) = specialized(1, flag);
            let used = info.get_entry_point(0);
            let bindings: Vec<u32> = module
                .global_variables
                .iter()
                .filter(|&(h, _)| !used[h].is_empty())
                .filter_map(|(_, v)| v.binding.as_ref().map(|b| b.binding))
                .collect();
            assert_eq!(bindings, [0, 1, 2], "flag {flag}");
        }
    }

    /// Every kernel the library launches, at its default constants: the folding applies
    /// (no fallback), and the interface is the unfolded one.
    #[test]
    fn every_kernel_folds_to_a_valid_module_with_the_same_bindings() {
        let interface = |module: &Module| {
            let info = Validator::new(ValidationFlags::all(), Capabilities::all())
                .validate(module)
                .unwrap();
            let used = info.get_entry_point(0);
            let mut b: Vec<_> = module
                .global_variables
                .iter()
                .filter(|&(h, _)| !used[h].is_empty())
                .filter_map(|(_, v)| v.binding)
                .map(|b| (b.group, b.binding))
                .collect();
            b.sort();
            b
        };
        let kernels = crate::shaders::kernels();
        assert!(kernels.len() > 40, "{}", kernels.len());
        for k in kernels {
            let declared = crate::shaders::specializations(k.file);
            let is_specialize = |n: &str| declared.iter().any(|(d, _)| d == n);
            let specialize: Vec<(&str, u32)> = k
                .constants
                .iter()
                .filter(|(n, _)| is_specialize(n))
                .collect();
            let overrides: Vec<(&str, f64)> = k
                .constants
                .iter()
                .filter(|(n, _)| !is_specialize(n))
                .map(|(n, v)| (n, f64::from(v)))
                .collect();
            let binding = crate::shaders::ParamsBinding::Uniform;
            let source = crate::shaders::source_with(k.file, &specialize, binding).unwrap();
            let parsed = parse(k.file, &source).unwrap();
            let unfolded = substitute(&parsed, &overrides).unwrap();
            let folded = fold(&parsed, &unfolded).unwrap_or_else(|e| panic!("{}: {e}", k.file));
            assert_eq!(interface(&folded), interface(&unfolded), "{}", k.file);
        }
    }

    /// The convolutions' stores keep only the activation they run: with it chosen at
    /// run time (AT_RUN) and no parametric one, no activation's switch is left, with or
    /// without a sigmoid gate on the input.
    #[test]
    fn the_pointwise_store_keeps_no_activation_switch() {
        let source = crate::shaders::source_with(
            "conv_pointwise_texels.wgsl",
            &[],
            crate::shaders::ParamsBinding::Uniform,
        )
        .unwrap();
        let parsed = parse("conv_pointwise_texels.wgsl", &source).unwrap();
        for gated in [0.0, 1.0] {
            let values = [
                ("ACT", 255.0),
                ("PACT", 0.0),
                ("GATED", gated),
                ("GATE_ACT", 3.0),
            ];
            let unfolded = substitute(&parsed, &values).unwrap();
            assert!(switches(&unfolded) >= 2, "{}", switches(&unfolded));
            let folded = fold(&parsed, &unfolded).unwrap();
            assert_eq!(switches(&folded), 0, "gated {gated}");
        }
    }

    /// The GEMM convolution keeps the inner loop of one arithmetic: f16 arithmetic
    /// (`HALF_MATH`, two loops: the step's products and the steps' sum) or f32 (one).
    #[test]
    fn the_gemm_keeps_one_arithmetic() {
        use crate::shaders::{source_with, ParamsBinding, HALF_MATH, PRECISION};
        let loops = |m: &Module| {
            statements(m)
                .iter()
                .filter(|s| matches!(s, Statement::Loop { .. }))
                .count()
        };
        for math in [0, 1] {
            let specialize = [(PRECISION, 1), (HALF_MATH, math)];
            let source = source_with("conv_gemm.wgsl", &specialize, ParamsBinding::Uniform);
            let parsed = parse("conv_gemm.wgsl", &source.unwrap()).unwrap();
            let unfolded = substitute(&parsed, &[]).unwrap();
            let folded = fold(&parsed, &unfolded).unwrap();
            let removed = loops(&unfolded) - loops(&folded);
            assert_eq!(removed, if math == 1 { 1 } else { 2 }, "HALF_MATH = {math}");
        }
    }

    #[test]
    fn a_switch_left_by_break_is_kept() {
        let source = "
            override MODE: u32 = 0u;
            @group(0) @binding(0) var<storage, read_write> b: array<f32>;
            @compute @workgroup_size(1)
            fn main() {
                var v = 1.0;
                switch MODE {
                    case 1u: { v = 2.0; break; }
                    default: { v = 3.0; }
                }
                b[0] = v;
            }
        ";
        let parsed = parse("test", source).unwrap();
        for mode in [0.0, 1.0] {
            let module = specialize(&parsed, &[("MODE", mode)]).unwrap();
            Validator::new(ValidationFlags::all(), Capabilities::all())
                .validate(&module)
                .unwrap();
            // The break is inside case 1: folding case 1 would need it rewritten.
            assert_eq!(switches(&module), usize::from(mode == 1.0), "mode {mode}");
        }
    }
}
