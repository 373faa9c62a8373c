//! Lowers `if`, `for` and indexing.
//!
//! Before: `let mut acc = 0.0; for i in 0..n { acc = acc * x + c[i]; } acc`.
//! After: a loop stage whose body region computes `acc = acc' * x + c[i]` from the
//! carried value `acc'`, exports the new `acc`, and whose output is `acc` after the
//! loop. A branch is a region too. The `if` stage's outputs take the values of the
//! branch taken, so nothing from the other branch reaches a gradient.

use proc_macro2::Span;
use quote::{format_ident, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Block, Expr, ExprForLoop, ExprIf, Pat, Stmt};

use super::{IfStage, LoopStage, Lowerer, Op, Operand, Region, RegionScope, Stage, pretty};

/// The result of lowering one region.
struct Lowered {
    stages: Vec<Stage>,
    value: Option<Operand>,
    /// The binding of every outer variable the region assigned, by name.
    assigned: Vec<(String, Operand)>,
}

impl Lowerer<'_> {
    /// Lowers statements as a region of their own, restoring the scope afterwards.
    fn region(&mut self, statements: &[Stmt], setup: impl FnOnce(&mut Self)) -> Lowered {
        let saved_scope = self.scope.clone();
        let saved_stages = std::mem::take(&mut self.stages);
        self.regions.push(RegionScope::default());
        setup(self);
        let value = self.statements(statements).map(|(operand, _)| operand);
        let region = self.regions.pop().expect("pushed above");
        let assigned = region
            .assigned
            .iter()
            .filter_map(|name| {
                self.scope
                    .get(name)
                    .map(|operand| (name.clone(), operand.clone()))
            })
            .collect();
        let stages = std::mem::replace(&mut self.stages, saved_stages);
        self.scope = saved_scope;
        Lowered {
            stages,
            value,
            assigned,
        }
    }

    /// Lowers an `if`. `rest` contains the statements after an `if` whose branch returns,
    /// which become its `else` branch. Returns the `if`'s value, if it has one.
    pub(super) fn if_expr(&mut self, if_expr: &ExprIf, rest: Option<&[Stmt]>) -> Option<Operand> {
        let condition = self.renamed(&if_expr.cond);
        let condition_text = pretty(&*if_expr.cond);
        let then_statements = branch_statements(&if_expr.then_branch);
        let then_branch = self.region(&then_statements, |_| {});
        let else_branch = match (&if_expr.else_branch, rest) {
            (Some((_, else_expr)), _) => match &**else_expr {
                Expr::Block(block) => self.region(&branch_statements(&block.block), |_| {}),
                other => {
                    let statement = Stmt::Expr(other.clone(), None);
                    self.region(std::slice::from_ref(&statement), |_| {})
                }
            },
            (None, Some(rest)) => self.region(rest, |_| {}),
            (None, None) => self.region(&[], |_| {}),
        };
        let has_value = then_branch.value.is_some() && else_branch.value.is_some();

        let mut names: Vec<String> = Vec::new();
        for (name, _) in then_branch.assigned.iter().chain(&else_branch.assigned) {
            if !names.contains(name) && self.scope.contains_key(name) {
                names.push(name.clone());
            }
        }
        let export =
            |branch: &Lowered, name: &str, scope: &std::collections::HashMap<String, Operand>| {
                branch
                    .assigned
                    .iter()
                    .find(|(assigned, _)| assigned == name)
                    .map(|(_, operand)| operand.clone())
                    .unwrap_or_else(|| scope[name].clone())
            };
        let mut then_exports = Vec::new();
        let mut else_exports = Vec::new();
        let mut output_names = Vec::new();
        if has_value {
            then_exports.push(then_branch.value.clone().expect("checked above"));
            else_exports.push(else_branch.value.clone().expect("checked above"));
            output_names.push(None);
        }
        for name in &names {
            then_exports.push(export(&then_branch, name, &self.scope));
            else_exports.push(export(&else_branch, name, &self.scope));
            output_names.push(Some(name.clone()));
        }

        self.control_count += 1;
        let taken = format_ident!("__taken_{}", self.control_count);
        let mut outputs = Vec::new();
        for ((then_export, else_export), name) in
            then_exports.iter().zip(&else_exports).zip(&output_names)
        {
            let active = self.is_active(then_export) || self.is_active(else_export);
            let id = match name {
                Some(name) => {
                    let id = self.push_var(name, active);
                    self.note_binding(name, true);
                    self.scope.insert(name.clone(), Operand::Var(id));
                    id
                }
                None => self.temporary(active),
            };
            outputs.push(id);
        }
        let marker = match outputs.first() {
            Some(&first) => first,
            None => self.temporary(false),
        };
        let text = format!("if {condition_text}");
        self.stages.push(Stage {
            var: marker,
            op: Op::If(Box::new(IfStage {
                condition,
                condition_text,
                taken,
                branches: [
                    Region {
                        stages: then_branch.stages,
                        exports: then_exports,
                    },
                    Region {
                        stages: else_branch.stages,
                        exports: else_exports,
                    },
                ],
                outputs: outputs.clone(),
            })),
            span: if_expr.span(),
            text,
            symbols: Vec::new(),
        });
        has_value.then(|| Operand::Var(outputs[0]))
    }

    /// Lowers `for i in a..b { .. }` and `for x in array.iter() { .. }`.
    pub(super) fn for_loop(&mut self, for_loop: &ExprForLoop) {
        if let Some(label) = &for_loop.label {
            return self.error(
                label.span(),
                "loop labels are not supported in a differentiable function",
            );
        }
        let (index_name, index_span) = match &*for_loop.pat {
            Pat::Ident(pat) if pat.subpat.is_none() => (pat.ident.to_string(), pat.ident.span()),
            Pat::Wild(wild) => ("_".to_owned(), wild.span()),
            other => {
                return self.error(
                    other.span(),
                    "only `for name in ...` is supported; bind the loop variable to a name",
                );
            }
        };
        let (range, range_text, element_source) = match &*for_loop.expr {
            Expr::Range(range) => {
                if range.start.is_none() || range.end.is_none() {
                    return self.error(
                        range.span(),
                        "the range of a loop needs both bounds, as in `0..n`",
                    );
                }
                if self.mentions_active(&for_loop.expr) {
                    return self.error(
                        range.span(),
                        "the bounds of a loop cannot be differentiated; use integers",
                    );
                }
                (self.renamed(&for_loop.expr), pretty(&*for_loop.expr), None)
            }
            Expr::MethodCall(call) if call.method == "iter" && call.args.is_empty() => {
                let Some(source) = self.place(&call.receiver) else {
                    return self.error(
                        call.receiver.span(),
                        "`for x in ....iter()` needs a variable or a field before `.iter()`",
                    );
                };
                let receiver = super::value_tokens(&self.vars, &source, call.receiver.span());
                let span = call.span();
                (
                    quote_spanned!(span=> 0..(#receiver).len()),
                    format!("{}.iter()", self.display(&source)),
                    Some(source),
                )
            }
            other => {
                return self.error(
                    other.span(),
                    "a differentiable loop runs over an integer range `a..b` or `a..=b`, or over `array.iter()`",
                );
            }
        };
        let mut returns = ReturnFinder(None);
        returns.visit_block(&for_loop.body);
        if let Some(span) = returns.0 {
            return self.error(span, "`return` inside a loop is not supported; assign to a variable and return after the loop");
        }

        let mut names = Vec::new();
        let mut assignments = AssignmentFinder(Vec::new());
        assignments.visit_block(&for_loop.body);
        for name in assignments.0 {
            if self.scope.contains_key(&name) && !names.contains(&name) && name != index_name {
                names.push(name);
            }
        }
        let inits: Vec<Operand> = names.iter().map(|name| self.scope[name].clone()).collect();
        let statements = body_statements(&for_loop.body);

        // A carried variable that starts as a constant becomes differentiated once the
        // body mixes a differentiated value into it; lower again until that settles.
        let mut forced = vec![false; names.len()];
        let vars_before = self.vars.len();
        let temporaries_before = self.temporaries;
        let errors_before = self.errors.len();
        loop {
            self.vars.truncate(vars_before);
            self.temporaries = temporaries_before;
            self.errors.truncate(errors_before);
            let mut index = 0;
            let mut element = None;
            let mut carried = Vec::new();
            let lowered = self.region(&statements, |lowerer| {
                // In `for x in array.iter()`, `x` names the element; the position is `index`.
                let position_name = if element_source.is_some() {
                    "index"
                } else {
                    index_name.as_str()
                };
                index = lowerer.push_var(position_name, false);
                lowerer.vars[index].ident = format_ident!("__index_{}", index, span = index_span);
                lowerer
                    .regions
                    .last_mut()
                    .expect("inside a region")
                    .declared
                    .insert(index_name.clone());
                if let Some(source) = &element_source {
                    let id = lowerer.push_var(&index_name, lowerer.is_active(source));
                    lowerer.vars[id].ident = format_ident!("__element_{}", id, span = index_span);
                    element = Some((id, source.clone()));
                    lowerer.scope.insert(index_name.clone(), Operand::Var(id));
                } else {
                    lowerer
                        .scope
                        .insert(index_name.clone(), Operand::Var(index));
                }
                for (k, name) in names.iter().enumerate() {
                    let active = lowerer.is_active(&inits[k]) || forced[k];
                    let id = lowerer.push_var(name, active);
                    lowerer.vars[id].ident =
                        format_ident!("__carried_{}_{}", name.trim_start_matches("r#"), id);
                    lowerer.scope.insert(name.clone(), Operand::Var(id));
                    carried.push(id);
                }
            });
            let exports: Vec<Operand> = names
                .iter()
                .enumerate()
                .map(|(k, name)| {
                    lowered
                        .assigned
                        .iter()
                        .find(|(assigned, _)| assigned == name)
                        .map_or(Operand::Var(carried[k]), |(_, operand)| operand.clone())
                })
                .collect();
            let mut changed = false;
            for (k, export) in exports.iter().enumerate() {
                if self.is_active(export) && !self.vars[carried[k]].active {
                    forced[k] = true;
                    changed = true;
                }
            }
            if changed {
                continue;
            }
            self.control_count += 1;
            let id = self.control_count;
            let mut outputs = Vec::new();
            for (k, name) in names.iter().enumerate() {
                let output = self.push_var(name, self.vars[carried[k]].active);
                self.note_binding(name, true);
                self.scope.insert(name.clone(), Operand::Var(output));
                outputs.push(output);
            }
            let marker = match outputs.first() {
                Some(&first) => first,
                None => self.temporary(false),
            };
            self.stages.push(Stage {
                var: marker,
                op: Op::Loop(Box::new(LoopStage {
                    range: range.clone(),
                    range_text: range_text.clone(),
                    index,
                    element,
                    body: Region {
                        stages: lowered.stages,
                        exports,
                    },
                    inits: inits.clone(),
                    carried,
                    outputs,
                    id,
                })),
                span: for_loop.span(),
                text: format!("for {index_name} in {range_text}"),
                symbols: Vec::new(),
            });
            return;
        }
    }

    /// Lowers `x[i]`: the index must be a constant expression.
    pub(super) fn index(&mut self, index: &syn::ExprIndex) -> Option<Operand> {
        if !self.mentions_active(&index.expr) {
            return Some(self.constant(&Expr::Index(index.clone())));
        }
        if self.mentions_active(&index.index) {
            self.error(
                index.index.span(),
                "an index cannot be differentiated; use an integer expression",
            );
            return None;
        }
        let Some(base) = self.place(&index.expr) else {
            self.error(
                index.expr.span(),
                "only a variable or a field can be indexed in a differentiable function; bind the array with `let` first",
            );
            return None;
        };
        let position = self.renamed(&index.index);
        let text = format!("{}[{}]", self.display(&base), pretty(&*index.index));
        let symbol = format!("e[{}]", pretty(&*index.index));
        let span = index.span();
        Some(self.stage(
            Op::Index(base.clone(), position),
            span,
            text,
            vec![symbol],
            &[&base],
        ))
    }
}

/// Returns the statements of a branch, with a final `return e;` turned into the value `e`.
fn branch_statements(block: &Block) -> Vec<Stmt> {
    let mut statements = block.stmts.clone();
    if let Some(Stmt::Expr(Expr::Return(ret), _)) = statements.last() {
        if let Some(value) = &ret.expr {
            let value = (**value).clone();
            *statements.last_mut().expect("checked above") = Stmt::Expr(value, None);
        }
    }
    statements
}

/// Returns the statements of a loop body, where a final expression without `;` is a
/// statement too.
fn body_statements(block: &Block) -> Vec<Stmt> {
    let mut statements = block.stmts.clone();
    if let Some(Stmt::Expr(expr, semicolon @ None)) = statements.last_mut() {
        if !matches!(expr, Expr::If(_) | Expr::ForLoop(_)) {
            *semicolon = Some(Default::default());
        }
    }
    statements
}

/// Finds `return` in a loop body.
struct ReturnFinder(Option<Span>);

impl<'ast> Visit<'ast> for ReturnFinder {
    fn visit_expr_return(&mut self, ret: &'ast syn::ExprReturn) {
        self.0.get_or_insert(ret.return_token.span());
    }

    fn visit_expr_closure(&mut self, _closure: &'ast syn::ExprClosure) {}
}

/// Collects the names assigned with `=` or a compound assignment.
struct AssignmentFinder(Vec<String>);

impl<'ast> Visit<'ast> for AssignmentFinder {
    fn visit_expr_assign(&mut self, assign: &'ast syn::ExprAssign) {
        if let Expr::Path(path) = &*assign.left {
            if let Some(ident) = path.path.get_ident() {
                self.0.push(ident.to_string());
            }
        }
        syn::visit::visit_expr_assign(self, assign);
    }

    fn visit_expr_binary(&mut self, binary: &'ast syn::ExprBinary) {
        if super::compound_op(&binary.op).is_some() {
            if let Expr::Path(path) = &*binary.left {
                if let Some(ident) = path.path.get_ident() {
                    self.0.push(ident.to_string());
                }
            }
        }
        syn::visit::visit_expr_binary(self, binary);
    }
}
