//! Lowers a function body to stages: one primitive operation each, over named operands.
//!
//! Before: `let g = x + y; g * z`. After: stage `g = add(x, y)`, stage `f = mul(g, z)`,
//! output `f`. Subexpressions become temporaries `t1`, `t2`, ...; an expression with no
//! differentiated variable in it is one constant stage, emitted as written.

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{BinOp, Block, Expr, Ident, Member, Pat, Stmt, Type, UnOp};

use crate::signature::{Passing, Signature};

mod control;

/// A value of the body: an argument or a stage.
pub struct Var {
    /// The name shown in the trace.
    pub name: String,
    /// The identifier in the generated code.
    pub ident: Ident,
    /// The passing of an argument; stages are owned values.
    pub passing: Passing,
    /// Whether a gradient flows through it.
    pub active: bool,
    /// Whether it is an argument.
    pub is_arg: bool,
    /// Whether it is defined inside a branch or a loop body, so the reverse sweep
    /// reaches it through a reference into the saved values.
    pub in_region: bool,
}

/// An input of a stage.
#[derive(Clone)]
pub enum Operand {
    Var(usize),
    /// A field of a variable, e.g. `model.w1`.
    Field(usize, Vec<Member>),
    /// An expression with no differentiated variable in it, names already renamed.
    Const(TokenStream, String),
}

/// One argument of a call to another differentiable function.
pub struct CallArg {
    /// The argument expression as passed, with renamed variables.
    pub expr: TokenStream,
    /// The variable or field that receives its gradient, if it has one.
    pub target: Option<Operand>,
}

pub enum Op {
    Unary(TokenStream, Operand),
    Binary(TokenStream, Operand, Operand),
    Method(TokenStream, Operand),
    Method2(TokenStream, Operand, Operand),
    MulAdd(Operand, Operand, Operand),
    Cast(Operand, Type),
    Copy(Operand),
    Detach(Operand),
    Call {
        vjp: TokenStream,
        args: Vec<CallArg>,
    },
    Const(TokenStream, Option<Type>),
    /// `x[i]` or `x[[i, j]]`: the index is a constant expression.
    Index(Operand, TokenStream),
    /// `(a, b)`: a tuple of up to four values, differentiated element by element.
    Tuple(Vec<Operand>),
    If(Box<IfStage>),
    Loop(Box<LoopStage>),
}

/// The stages of a branch or a loop body, and the values it hands out.
pub struct Region {
    pub stages: Vec<Stage>,
    /// One operand per output of the enclosing `if` or loop, in order.
    pub exports: Vec<Operand>,
}

/// `if condition { .. } else { .. }`: only the branch taken runs, forward and back.
pub struct IfStage {
    /// The condition on primal values, with renamed variables.
    pub condition: TokenStream,
    pub condition_text: String,
    /// The `bool` that records which branch ran.
    pub taken: Ident,
    pub branches: [Region; 2],
    /// The variables that take the value of the branch taken: the `if`'s value, then
    /// every outer variable assigned in a branch.
    pub outputs: Vec<usize>,
}

/// `for i in range { .. }` over an integer range; the values each iteration needs in the
/// reverse sweep are pushed to buffers reserved at loop entry.
pub struct LoopStage {
    /// The range expression, with renamed variables.
    pub range: TokenStream,
    pub range_text: String,
    /// The loop variable, an integer.
    pub index: usize,
    /// The element bound by `for x in array.iter()`, read by index each iteration.
    pub element: Option<(usize, Operand)>,
    pub body: Region,
    /// Per carried variable: its value on entry to the loop ...
    pub inits: Vec<Operand>,
    /// ... its value at the start of each iteration ...
    pub carried: Vec<usize>,
    /// ... and after the loop.
    pub outputs: Vec<usize>,
    /// Names the buffers and the iteration count.
    pub id: usize,
}

pub struct Stage {
    pub var: usize,
    pub op: Op,
    pub span: Span,
    /// The expression over operand names, e.g. `g * z`.
    pub text: String,
    /// The local derivative with respect to each active operand, in symbols.
    pub symbols: Vec<String>,
}

pub struct Body {
    pub vars: Vec<Var>,
    pub stages: Vec<Stage>,
    /// The stage holding the result.
    pub output: usize,
}

struct Lowerer<'a> {
    vars: Vec<Var>,
    stages: Vec<Stage>,
    scope: HashMap<String, Operand>,
    errors: &'a mut Vec<syn::Error>,
    krate: &'a TokenStream,
    temporaries: usize,
    /// The branches and loop bodies being lowered, innermost last.
    regions: Vec<RegionScope>,
    /// How many `if`s and loops were lowered, to name their helper variables.
    control_count: usize,
    function_name: Ident,
}

/// The names a branch or loop body declares and assigns, to separate block-local
/// names from the outer variables it changes.
#[derive(Default)]
struct RegionScope {
    declared: std::collections::HashSet<String>,
    assigned: Vec<String>,
}

/// Lowers `block`, collecting every unsupported construct into `errors`.
pub fn lower(
    block: &Block,
    signature: &Signature,
    function_name: &Ident,
    krate: &TokenStream,
    errors: &mut Vec<syn::Error>,
) -> Option<Body> {
    let errors_before = errors.len();
    let mut lowerer = Lowerer {
        vars: Vec::new(),
        stages: Vec::new(),
        scope: HashMap::new(),
        errors,
        krate,
        temporaries: 0,
        regions: Vec::new(),
        control_count: 0,
        function_name: function_name.clone(),
    };
    for arg in &signature.args {
        let id = lowerer.vars.len();
        lowerer.vars.push(Var {
            name: arg.ident.to_string(),
            ident: arg.ident.clone(),
            passing: arg.passing,
            active: arg.differentiated,
            is_arg: true,
            in_region: false,
        });
        lowerer
            .scope
            .insert(arg.ident.to_string(), Operand::Var(id));
    }
    let result = lowerer.block(block);
    let output = result.map(|(operand, span)| lowerer.output_stage(operand, span, function_name));
    let Lowerer { vars, stages, .. } = lowerer;
    if errors.len() > errors_before {
        return None;
    }
    output.map(|output| Body {
        vars,
        stages,
        output,
    })
}

impl Lowerer<'_> {
    fn macro_message(&self) -> String {
        format!(
            "macro calls are not supported in a differentiable function; write the expression out, and inspect values with `{}_trace(...)`",
            self.function_name
        )
    }

    fn error(&mut self, span: Span, message: impl std::fmt::Display) {
        self.errors.push(syn::Error::new(span, message));
    }

    fn block(&mut self, block: &Block) -> Option<(Operand, Span)> {
        let result = self.statements(&block.stmts);
        if result.is_none() && !ends_with_value(&block.stmts) {
            let span = block
                .stmts
                .last()
                .map_or(block.brace_token.span.close(), Spanned::span);
            self.error(
                span,
                "the body must end with the value to return, an expression without a trailing `;`",
            );
        }
        result
    }

    /// Lowers statements and returns the value they end with, if any. An `if` whose
    /// branch returns takes the statements after it as its `else` branch.
    fn statements(&mut self, statements: &[Stmt]) -> Option<(Operand, Span)> {
        let mut result = None;
        let count = statements.len();
        for (index, stmt) in statements.iter().enumerate() {
            let last = index + 1 == count;
            match stmt {
                Stmt::Local(local) => self.local(local),
                Stmt::Expr(Expr::Return(ret), _) if last => match &ret.expr {
                    Some(expr) => result = self.expr(expr).map(|operand| (operand, expr.span())),
                    None => self.error(ret.span(), "`return` needs a value in a differentiable function"),
                },
                Stmt::Expr(Expr::If(if_expr), _) if !last && returns_in_then(if_expr) && if_expr.else_branch.is_none() => {
                    let rest = &statements[index + 1..];
                    if !ends_with_value(rest) {
                        let span = rest.last().map_or(if_expr.span(), Spanned::span);
                        self.error(span, "the statements after an early `return` must end with the value to return");
                        return None;
                    }
                    return self.if_expr(if_expr, Some(rest)).map(|operand| (operand, if_expr.span()));
                }
                Stmt::Expr(Expr::If(if_expr), semicolon) if !last || semicolon.is_some() => {
                    self.if_expr(if_expr, None);
                }
                Stmt::Expr(Expr::ForLoop(for_loop), _) => self.for_loop(for_loop),
                Stmt::Expr(expr, None) if last => {
                    result = self.expr(expr).map(|operand| (operand, expr.span()));
                }
                Stmt::Expr(expr, _) => self.statement(expr),
                Stmt::Item(item) => self.error(
                    item.span(),
                    "items inside a differentiable function are not supported; move them outside the function",
                ),
                Stmt::Macro(mac) => {
                    let message = self.macro_message();
                    self.error(mac.mac.path.span(), message);
                }
            }
        }
        result
    }

    fn local(&mut self, local: &syn::Local) {
        let (ident, ty) = match &local.pat {
            Pat::Ident(pat) if pat.subpat.is_none() => (pat.ident.clone(), None),
            Pat::Type(typed) => match &*typed.pat {
                Pat::Ident(pat) if pat.subpat.is_none() => (pat.ident.clone(), Some((*typed.ty).clone())),
                other => return self.error(other.span(), "only `let name = ...` and `let name: Type = ...` are supported; destructure in separate `let`s"),
            },
            other => return self.error(other.span(), "only `let name = ...` and `let name: Type = ...` are supported; destructure in separate `let`s"),
        };
        let Some(init) = &local.init else {
            return self.error(
                local.span(),
                "a `let` without a value is not supported; give it a value where it is declared",
            );
        };
        if let Some((_, diverge)) = &init.diverge {
            return self.error(
                diverge.span(),
                "`let ... else` is not supported in a differentiable function",
            );
        }
        self.bind(&ident, &init.expr, ty, false);
    }

    /// Binds `ident` to the value of `expr`, naming the stage that computes it;
    /// `assignment` is true for `x = ...` and false for `let x = ...`.
    fn bind(&mut self, ident: &Ident, expr: &Expr, ty: Option<Type>, assignment: bool) {
        let stages_before = self.stages.len();
        let Some(operand) = self.expr(expr) else {
            return;
        };
        let name = ident.to_string();
        let bound = match operand {
            Operand::Var(id)
                if id >= self.first_new_var(stages_before) && !self.vars[id].is_arg =>
            {
                self.vars[id].name = name.clone();
                self.vars[id].ident = format_ident!(
                    "__{}_{}",
                    name.trim_start_matches("r#"),
                    id,
                    span = ident.span()
                );
                Operand::Var(id)
            }
            Operand::Const(tokens, text) => {
                let id = self.push_var(&name, false);
                self.stages.push(Stage {
                    var: id,
                    op: Op::Const(tokens, ty),
                    span: expr.span(),
                    text,
                    symbols: Vec::new(),
                });
                Operand::Var(id)
            }
            alias => alias,
        };
        self.note_binding(&name, assignment);
        self.scope.insert(name, bound);
    }

    /// Records a `let` as local to the current region, and an assignment to a variable
    /// declared outside it as one the region hands out.
    fn note_binding(&mut self, name: &str, assignment: bool) {
        let Some(region) = self.regions.last_mut() else {
            return;
        };
        if !assignment {
            region.declared.insert(name.to_owned());
        } else if !region.declared.contains(name)
            && !region.assigned.iter().any(|assigned| assigned == name)
        {
            region.assigned.push(name.to_owned());
        }
    }

    fn first_new_var(&self, stages_before: usize) -> usize {
        self.stages
            .get(stages_before)
            .map_or(usize::MAX, |stage| stage.var)
    }

    fn statement(&mut self, expr: &Expr) {
        match expr {
            Expr::Assign(assign) => match &*assign.left {
                Expr::Path(path) if path.path.get_ident().is_some() => {
                    let ident = path.path.get_ident().expect("checked above").clone();
                    if !self.scope.contains_key(&ident.to_string()) {
                        return self.error(ident.span(), format!("cannot find `{ident}` to assign to"));
                    }
                    self.bind(&ident, &assign.right, None, true);
                }
                other => self.error(
                    other.span(),
                    "only assignment to a local variable is supported; build a new value instead",
                ),
            },
            Expr::Binary(binary) if compound_op(&binary.op).is_some() => match &*binary.left {
                Expr::Path(path) if path.path.get_ident().is_some() => {
                    let ident = path.path.get_ident().expect("checked above").clone();
                    let op = compound_op(&binary.op).expect("checked above");
                    let combined = Expr::Binary(syn::ExprBinary {
                        attrs: Vec::new(),
                        left: binary.left.clone(),
                        op,
                        right: Box::new(Expr::Paren(syn::ExprParen {
                            attrs: Vec::new(),
                            paren_token: Default::default(),
                            expr: binary.right.clone(),
                        })),
                    });
                    self.bind(&ident, &combined, None, true);
                }
                other => self.error(
                    other.span(),
                    "only compound assignment to a local variable is supported; build a new value instead",
                ),
            },
            Expr::Break(_) | Expr::Continue(_) => self.error(
                expr.span(),
                "`break` and `continue` are not supported in a differentiable function; keep every iteration and choose values with `if`",
            ),
            other => {
                if self.expr(other).is_some() {
                    self.error(
                        other.span(),
                        "this statement has no effect on the result; remove it, or bind it with `let`",
                    );
                }
            }
        }
    }

    fn push_var(&mut self, name: &str, active: bool) -> usize {
        let id = self.vars.len();
        self.vars.push(Var {
            name: name.to_owned(),
            ident: format_ident!("__{}_{}", name, id),
            passing: Passing::Value,
            active,
            is_arg: false,
            in_region: !self.regions.is_empty(),
        });
        id
    }

    fn temporary(&mut self, active: bool) -> usize {
        self.temporaries += 1;
        let name = format!("t{}", self.temporaries);
        self.push_var(&name, active)
    }

    fn is_active(&self, operand: &Operand) -> bool {
        match operand {
            Operand::Var(id) | Operand::Field(id, _) => self.vars[*id].active,
            Operand::Const(..) => false,
        }
    }

    pub fn display(&self, operand: &Operand) -> String {
        display(&self.vars, operand)
    }

    fn stage(
        &mut self,
        op: Op,
        span: Span,
        text: String,
        symbols: Vec<String>,
        operands: &[&Operand],
    ) -> Operand {
        let active = operands.iter().any(|operand| self.is_active(operand));
        let id = self.temporary(active);
        self.stages.push(Stage {
            var: id,
            op,
            span,
            text,
            symbols,
        });
        Operand::Var(id)
    }

    /// Returns whether `expr` mentions a differentiated variable.
    fn mentions_active(&self, expr: &Expr) -> bool {
        struct Finder<'b, 'c> {
            lowerer: &'b Lowerer<'c>,
            found: bool,
        }
        impl<'ast> Visit<'ast> for Finder<'_, '_> {
            fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
                // The shape of a differentiated array is a constant of the function.
                if !is_shape_method(&call.method) {
                    self.visit_expr(&call.receiver);
                }
                for arg in &call.args {
                    self.visit_expr(arg);
                }
            }

            fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
                if let Some(ident) = path.path.get_ident() {
                    if let Some(operand) = self.lowerer.scope.get(&ident.to_string()) {
                        self.found |= self.lowerer.is_active(operand);
                    }
                }
            }
        }
        let mut finder = Finder {
            lowerer: self,
            found: false,
        };
        finder.visit_expr(expr);
        finder.found
    }

    /// Rewrites the local names in a constant expression to their generated identifiers.
    fn renamed(&self, expr: &Expr) -> TokenStream {
        struct Renamer<'b, 'c> {
            lowerer: &'b Lowerer<'c>,
        }
        impl VisitMut for Renamer<'_, '_> {
            fn visit_expr_mut(&mut self, expr: &mut Expr) {
                if let Expr::Path(path) = expr {
                    if let Some(ident) = path.path.get_ident() {
                        if let Some(operand) = self.lowerer.scope.get(&ident.to_string()) {
                            let span = ident.span();
                            let tokens = value_tokens(&self.lowerer.vars, operand, span);
                            *expr = syn::parse2(tokens)
                                .expect("a variable or field path parses as an expression");
                            return;
                        }
                    }
                }
                syn::visit_mut::visit_expr_mut(self, expr);
            }
        }
        let mut expr = expr.clone();
        Renamer { lowerer: self }.visit_expr_mut(&mut expr);
        expr.into_token_stream()
    }

    fn constant(&self, expr: &Expr) -> Operand {
        Operand::Const(self.renamed(expr), pretty(expr))
    }

    fn expr(&mut self, expr: &Expr) -> Option<Operand> {
        if let Some(operand) = self.place(expr) {
            return Some(operand);
        }
        let macros = nested_macros(expr);
        if !macros.is_empty() {
            for path in macros {
                let message = self.macro_message();
                self.error(path.span(), message);
            }
            return None;
        }
        if !self.mentions_active(expr) && is_plain_constant(expr) {
            return Some(self.constant(expr));
        }
        match expr {
            Expr::Paren(paren) => self.expr(&paren.expr),
            Expr::Group(group) => self.expr(&group.expr),
            Expr::Reference(reference) => {
                if let Some(mutability) = &reference.mutability {
                    self.error(
                        mutability.span(),
                        "`&mut` is not supported in a differentiable function",
                    );
                    return None;
                }
                self.expr(&reference.expr)
            }
            Expr::Unary(unary) => match unary.op {
                UnOp::Deref(_) => self.expr(&unary.expr),
                UnOp::Neg(_) => {
                    let operand = self.expr(&unary.expr)?;
                    let krate = self.krate;
                    let op = quote_spanned!(unary.span()=> #krate::__private::ops::Neg);
                    let text = format!("-{}", self.display_paren(&operand));
                    self.unary_stage(op, operand, unary.span(), text, "-1".to_owned())
                }
                _ => {
                    self.error(
                        unary.op.span(),
                        "`!` on a differentiated value is not supported",
                    );
                    None
                }
            },
            Expr::Binary(binary) => self.binary(binary),
            Expr::Path(path) => {
                if let Some(ident) = path.path.get_ident() {
                    if let Some(operand) = self.scope.get(&ident.to_string()) {
                        return Some(operand.clone());
                    }
                }
                Some(self.constant(expr))
            }
            Expr::Field(field) => {
                let operand = self.expr(&field.base)?;
                match operand {
                    Operand::Var(id) if self.vars[id].is_arg || !self.vars[id].active => {
                        Some(Operand::Field(id, vec![field.member.clone()]))
                    }
                    Operand::Field(id, mut members) => {
                        members.push(field.member.clone());
                        Some(Operand::Field(id, members))
                    }
                    _ => {
                        self.error(
                            field.member.span(),
                            "field access is supported on arguments only; bind the struct to an argument",
                        );
                        None
                    }
                }
            }
            Expr::MethodCall(call) => self.method_call(call),
            Expr::Call(call) => self.call(call),
            Expr::Cast(cast) => {
                let operand = self.expr(&cast.expr)?;
                let text = format!("{} as {}", self.display_paren(&operand), pretty(&*cast.ty));
                let ty = (*cast.ty).clone();
                let span = cast.span();
                Some(self.stage(
                    Op::Cast(operand.clone(), ty),
                    span,
                    text,
                    vec!["1".to_owned()],
                    &[&operand],
                ))
            }
            Expr::Lit(_) => Some(self.constant(expr)),
            Expr::If(if_expr) => {
                let value = self.if_expr(if_expr, None);
                if value.is_none() && if_expr.else_branch.is_some() {
                    self.error(
                        if_expr.if_token.span(),
                        "both branches of this `if` must end with a value",
                    );
                }
                value
            }
            Expr::Index(index) => self.index(index),
            Expr::Tuple(tuple) if (2..=4).contains(&tuple.elems.len()) => {
                let mut elements = Vec::new();
                for element in &tuple.elems {
                    elements.push(self.expr(element));
                }
                let elements: Vec<Operand> = elements.into_iter().collect::<Option<_>>()?;
                let text = format!(
                    "({})",
                    elements
                        .iter()
                        .map(|element| self.display(element))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let symbols = elements
                    .iter()
                    .enumerate()
                    .filter(|(_, element)| self.is_active(element))
                    .map(|(position, _)| format!("e{position}"))
                    .collect();
                let refs: Vec<&Operand> = elements.iter().collect();
                Some(self.stage(
                    Op::Tuple(elements.clone()),
                    tuple.span(),
                    text,
                    symbols,
                    &refs,
                ))
            }
            other => {
                self.unsupported(other);
                None
            }
        }
    }

    /// Returns the operand of a variable or a field path of one, active or not, so that
    /// it is passed by reference like any operand.
    fn place(&self, expr: &Expr) -> Option<Operand> {
        match expr {
            Expr::Path(path) => {
                let ident = path.path.get_ident()?;
                self.scope.get(&ident.to_string()).cloned()
            }
            Expr::Field(field) => match self.place(&field.base)? {
                Operand::Var(id) if self.vars[id].is_arg || !self.vars[id].active => {
                    Some(Operand::Field(id, vec![field.member.clone()]))
                }
                Operand::Field(id, mut members) => {
                    members.push(field.member.clone());
                    Some(Operand::Field(id, members))
                }
                _ => None,
            },
            Expr::Paren(paren) => self.place(&paren.expr),
            _ => None,
        }
    }

    fn unsupported(&mut self, expr: &Expr) {
        let (span, message) = match expr {
            Expr::Match(e) => (
                e.match_token.span(),
                "`match` is not supported in a differentiable function; write it as `if` / `else if` / `else`",
            ),
            Expr::While(e) => (
                e.while_token.span(),
                "`while` loops are not supported in a differentiable function; use `for i in 0..n` with a bound on the count, and `if` inside it",
            ),
            Expr::Loop(e) => (
                e.loop_token.span(),
                "`loop` is not supported in a differentiable function; use `for i in 0..n` with a bound on the count, and `if` inside it",
            ),
            Expr::ForLoop(e) => (
                e.for_token.span(),
                "a `for` loop is a statement, not a value; write it on its own and use the variables it assigns",
            ),
            Expr::Closure(e) => (
                e.or1_token.span(),
                "closures are not supported in a differentiable function; write a separate `#[differentiable]` function and call it",
            ),
            Expr::Macro(e) => (
                e.mac.path.span(),
                "macro calls are not supported in a differentiable function; write the expression out",
            ),
            Expr::Block(e) => (
                e.block.brace_token.span.join(),
                "blocks are not supported in a differentiable function; use `let` bindings",
            ),
            Expr::Tuple(e) => (
                e.paren_token.span.join(),
                "tuples are not supported as values in a differentiable function; return a `#[derive(Differentiable)]` struct or one value",
            ),
            Expr::Array(e) => (
                e.bracket_token.span.join(),
                "array literals of differentiated values are not supported; build the array outside",
            ),
            Expr::Struct(e) => (
                e.brace_token.span.join(),
                "struct literals of differentiated values are not supported; return one value",
            ),
            Expr::Assign(e) => (
                e.eq_token.span(),
                "assignment is only supported as a statement",
            ),
            Expr::Return(e) => (
                e.return_token.span(),
                "`return` is only supported as the last statement",
            ),
            Expr::Break(e) => (
                e.break_token.span(),
                "`break` is not supported in a differentiable function; keep every iteration and choose values with `if`",
            ),
            Expr::Continue(e) => (
                e.continue_token.span(),
                "`continue` is not supported in a differentiable function; keep every iteration and choose values with `if`",
            ),
            Expr::Try(e) => (
                e.question_token.span(),
                "`?` is not supported in a differentiable function; use `.unwrap()` or check the input outside",
            ),
            Expr::Range(e) => (
                e.span(),
                "ranges are not supported as values in a differentiable function",
            ),
            other => (
                other.span(),
                "this expression is not supported in a differentiable function; use arithmetic, float methods and calls to `#[differentiable]` functions",
            ),
        };
        self.error(span, message);
    }

    fn display_paren(&self, operand: &Operand) -> String {
        let text = self.display(operand);
        if text.contains(' ') && !text.starts_with('(') {
            format!("({text})")
        } else {
            text
        }
    }

    fn unary_stage(
        &mut self,
        op: TokenStream,
        operand: Operand,
        span: Span,
        text: String,
        symbol: String,
    ) -> Option<Operand> {
        Some(self.stage(
            Op::Unary(op, operand.clone()),
            span,
            text,
            vec![symbol],
            &[&operand],
        ))
    }

    fn binary(&mut self, binary: &syn::ExprBinary) -> Option<Operand> {
        let (name, symbol) = match binary.op {
            BinOp::Add(_) => ("Add", "+"),
            BinOp::Sub(_) => ("Sub", "-"),
            BinOp::Mul(_) => ("Mul", "*"),
            BinOp::Div(_) => ("Div", "/"),
            ref op => {
                self.error(
                    op.span(),
                    format!(
                        "`{}` on differentiated values is not supported here; use `+`, `-`, `*`, `/`, `max` or `min`",
                        op.to_token_stream()
                    ),
                );
                return None;
            }
        };
        let lhs = self.expr(&binary.left);
        let rhs = self.expr(&binary.right);
        let (lhs, rhs) = (lhs?, rhs?);
        let krate = self.krate;
        let op_ident = Ident::new(name, Span::call_site());
        let op = quote_spanned!(binary.op.span()=> #krate::__private::ops::#op_ident);
        let (a, b) = (self.display_paren(&lhs), self.display_paren(&rhs));
        let text = format!("{a} {symbol} {b}");
        let symbols = match name {
            "Add" => vec!["1".to_owned(), "1".to_owned()],
            "Sub" => vec!["1".to_owned(), "-1".to_owned()],
            "Mul" => vec![b.clone(), a.clone()],
            _ => vec![format!("1/{b}"), format!("-{a}/{b}²")],
        };
        let symbols = self.active_symbols(&[&lhs, &rhs], symbols);
        Some(self.stage(
            Op::Binary(op, lhs.clone(), rhs.clone()),
            binary.span(),
            text,
            symbols,
            &[&lhs, &rhs],
        ))
    }

    fn active_symbols(&self, operands: &[&Operand], symbols: Vec<String>) -> Vec<String> {
        operands
            .iter()
            .zip(symbols)
            .filter(|(operand, _)| self.is_active(operand))
            .map(|(_, symbol)| symbol)
            .collect()
    }

    fn method_call(&mut self, call: &syn::ExprMethodCall) -> Option<Operand> {
        let method = call.method.to_string();
        let span = call.method.span();
        let krate = self.krate.clone();
        let receiver = self.expr(&call.receiver)?;
        let a = self.display_paren(&receiver);
        let args: Vec<&Expr> = call.args.iter().collect();
        let expect_args = |lowerer: &mut Self, count: usize| {
            if args.len() == count {
                true
            } else {
                lowerer.error(
                    span,
                    format!(
                        "`{method}` takes {count} argument(s) here, found {}",
                        args.len()
                    ),
                );
                false
            }
        };
        if let Some((op_name, symbol)) = unary_method(&method) {
            if !expect_args(self, 0) {
                return None;
            }
            let op_ident = Ident::new(op_name, span);
            let op = quote_spanned!(span=> #krate::__private::ops::#op_ident);
            let text = format!("{a}.{method}()");
            let symbol = symbol.replace("{a}", &a);
            return self.unary_stage(op, receiver, call.span(), text, symbol);
        }
        match method.as_str() {
            "powi" => {
                if !expect_args(self, 1) {
                    return None;
                }
                if self.mentions_active(args[0]) {
                    self.error(args[0].span(), "the exponent of `powi` is an integer and has no derivative; use `powf` to differentiate the exponent");
                    return None;
                }
                let n = self.renamed(args[0]);
                let n_text = pretty(args[0]);
                let op = quote_spanned!(span=> #krate::__private::ops::Powi(#n));
                let text = format!("{a}.powi({n_text})");
                let symbol = format!("{n_text}·{a}^({n_text}-1)");
                self.unary_stage(op, receiver, call.span(), text, symbol)
            }
            "powf" | "hypot" | "atan2" | "max" | "min" => {
                if !expect_args(self, 1) {
                    return None;
                }
                let rhs = self.expr(args[0])?;
                let b = self.display_paren(&rhs);
                let op_ident = Ident::new(&capitalize(&method), span);
                let op = quote_spanned!(span=> #krate::__private::ops::#op_ident);
                let text = format!("{a}.{method}({b})");
                let symbols = match method.as_str() {
                    "powf" => vec![format!("{b}·{a}^({b}-1)"), format!("{a}^{b}·ln({a})")],
                    "hypot" => vec![format!("{a}/hypot"), format!("{b}/hypot")],
                    "atan2" => vec![format!("{b}/({a}²+{b}²)"), format!("-{a}/({a}²+{b}²)")],
                    "max" => vec![format!("[{a} ≥ {b}]"), format!("[{b} ≥ {a}]")],
                    _ => vec![format!("[{a} ≤ {b}]"), format!("[{b} ≤ {a}]")],
                };
                let symbols = self.active_symbols(&[&receiver, &rhs], symbols);
                Some(self.stage(
                    Op::Binary(op, receiver.clone(), rhs.clone()),
                    call.span(),
                    text,
                    symbols,
                    &[&receiver, &rhs],
                ))
            }
            "mul_add" => {
                if !expect_args(self, 2) {
                    return None;
                }
                let m = self.expr(args[0]);
                let c = self.expr(args[1]);
                let (m, c) = (m?, c?);
                let text = format!("{a}.mul_add({}, {})", self.display(&m), self.display(&c));
                let symbols = vec![self.display(&m), a.clone(), "1".to_owned()];
                let symbols = self.active_symbols(&[&receiver, &m, &c], symbols);
                Some(self.stage(
                    Op::MulAdd(receiver.clone(), m.clone(), c.clone()),
                    call.span(),
                    text,
                    symbols,
                    &[&receiver, &m, &c],
                ))
            }
            "dot" => {
                if !expect_args(self, 1) {
                    return None;
                }
                let rhs = self.expr(args[0])?;
                let b = self.display_paren(&rhs);
                let op = quote_spanned!(span=> #krate::rules::methods::Dot);
                let text = format!("{a}.dot({b})");
                let symbols = self.active_symbols(
                    &[&receiver, &rhs],
                    vec![format!("ḡ·{b}ᵀ"), format!("{a}ᵀ·ḡ")],
                );
                Some(self.stage(
                    Op::Method2(op, receiver.clone(), rhs.clone()),
                    call.span(),
                    text,
                    symbols,
                    &[&receiver, &rhs],
                ))
            }
            _ => {
                let Some((op_name, takes_arg)) = array_method(&method) else {
                    self.error(
                        span,
                        format!(
                            "no derivative rule for the method `{method}`; use a method listed in `stagegrad::rules`, or move the computation into a function marked `#[differentiable]` or `#[differentiable(vjp = path)]`"
                        ),
                    );
                    return None;
                };
                if !expect_args(self, usize::from(takes_arg)) {
                    return None;
                }
                let op_ident = Ident::new(op_name, span);
                let (op, arg_text) = if takes_arg {
                    if self.mentions_active(args[0]) {
                        self.error(args[0].span(), format!("the argument of `{method}` cannot be differentiated; pass a constant"));
                        return None;
                    }
                    let value = self.renamed(args[0]);
                    (
                        quote_spanned!(span=> #krate::rules::methods::#op_ident(#value)),
                        pretty(args[0]),
                    )
                } else {
                    (
                        quote_spanned!(span=> #krate::rules::methods::#op_ident),
                        String::new(),
                    )
                };
                let text = format!("{a}.{method}({arg_text})");
                let symbol = format!("∂{method}/∂{a}");
                Some(self.stage(
                    Op::Method(op, receiver.clone()),
                    call.span(),
                    text,
                    vec![symbol],
                    &[&receiver],
                ))
            }
        }
    }

    fn call(&mut self, call: &syn::ExprCall) -> Option<Operand> {
        let Expr::Path(func) = &*call.func else {
            self.error(
                call.func.span(),
                "only calls to named functions are supported in a differentiable function",
            );
            return None;
        };
        let last = func.path.segments.last().expect("a path has a segment");
        if last.ident == "detach" && call.args.len() == 1 {
            let operand = self.expr(&call.args[0])?;
            let text = format!("detach({})", self.display(&operand));
            let id = self.temporary(false);
            self.stages.push(Stage {
                var: id,
                op: Op::Detach(operand),
                span: call.span(),
                text,
                symbols: Vec::new(),
            });
            return Some(Operand::Var(id));
        }
        if !call.args.iter().any(|arg| self.mentions_active(arg)) {
            return Some(self.constant(&Expr::Call(call.clone())));
        }
        if func.path.segments.len() >= 2 && is_float_method(&last.ident) && !call.args.is_empty() {
            // `f64::sin(x)` and `T::max(a, b)` are the methods `x.sin()` and `a.max(b)`.
            let method = syn::ExprMethodCall {
                attrs: Vec::new(),
                receiver: Box::new(call.args[0].clone()),
                dot_token: Default::default(),
                method: last.ident.clone(),
                turbofish: None,
                paren_token: call.paren_token,
                args: call.args.iter().skip(1).cloned().collect(),
            };
            return self.method_call(&method);
        }
        let mut args = Vec::new();
        let mut operands = Vec::new();
        let mut texts = Vec::new();
        for arg in &call.args {
            let (expr, target, text) = self.call_arg(arg)?;
            if let Some(target) = &target {
                operands.push(target.clone());
            }
            args.push(CallArg { expr, target });
            texts.push(text);
        }
        let mut path = func.path.clone();
        let last = path.segments.last_mut().expect("a path has a segment");
        let generics = std::mem::replace(&mut last.arguments, syn::PathArguments::None);
        let name = last.ident.to_string();
        let span = last.ident.span();
        let vjp = quote_spanned!(span=> #path::__stagegrad_vjp #generics);
        let text = format!("{name}({})", texts.join(", "));
        let symbols = operands
            .iter()
            .filter(|operand| self.is_active(operand))
            .map(|operand| format!("∂{name}/∂{}", self.display(operand)))
            .collect();
        let refs: Vec<&Operand> = operands.iter().collect();
        let operands_for_activity = refs.clone();
        Some(self.stage(
            Op::Call { vjp, args },
            call.span(),
            text,
            symbols,
            &operands_for_activity,
        ))
    }

    /// Lowers one argument of a call: how to pass it and where its gradient goes.
    fn call_arg(&mut self, arg: &Expr) -> Option<(TokenStream, Option<Operand>, String)> {
        let text = pretty(arg);
        if !self.mentions_active(arg) {
            return Some((self.renamed(arg), None, text));
        }
        let (inner, by_reference) = match arg {
            Expr::Reference(reference) => (&*reference.expr, true),
            other => (other, false),
        };
        if let Expr::Call(wrapper) = inner {
            if wrapper.func.to_token_stream().to_string() == "Some"
                && wrapper.args.len() == 1
                && !by_reference
            {
                let (expr, target, inner_text) = self.call_arg(&wrapper.args[0])?;
                let text = format!("Some({inner_text})");
                return Some((quote!(::core::option::Option::Some(#expr)), target, text));
            }
        }
        let operand = self.expr(inner)?;
        let text = if by_reference {
            format!("&{}", self.display(&operand))
        } else {
            self.display(&operand)
        };
        let span = arg.span();
        let expr = if by_reference {
            ref_tokens(&self.vars, &operand, span, false)
        } else {
            match &operand {
                Operand::Var(id) if self.vars[*id].passing != Passing::Value => {
                    value_tokens(&self.vars, &operand, span)
                }
                _ => {
                    let reference = ref_tokens(&self.vars, &operand, span, false);
                    let krate = self.krate;
                    quote_spanned!(span=> #krate::__private::duplicate(#reference))
                }
            }
        };
        Some((expr, Some(operand), text))
    }

    fn output_stage(&mut self, operand: Operand, span: Span, function_name: &Ident) -> usize {
        if let Operand::Var(id) = operand {
            let is_temporary = !self.vars[id].is_arg
                && self.vars[id].name.starts_with('t')
                && self.stages.last().is_some_and(|stage| stage.var == id);
            if is_temporary {
                self.vars[id].name = function_name.to_string();
                self.vars[id].ident = format_ident!("__{}_out", function_name);
                return id;
            }
        }
        let text = self.display(&operand);
        let active = self.is_active(&operand);
        let id = self.push_var(&function_name.to_string(), active);
        self.vars[id].ident = format_ident!("__{}_out", function_name);
        let op = match operand {
            Operand::Const(tokens, _) => Op::Const(tokens, None),
            other => Op::Copy(other),
        };
        self.stages.push(Stage {
            var: id,
            op,
            span,
            text,
            symbols: vec!["1".to_owned()],
        });
        id
    }
}

/// Returns the operator of `a op= b` as the binary operator of `a = a op b`.
fn compound_op(op: &BinOp) -> Option<BinOp> {
    match op {
        BinOp::AddAssign(token) => Some(BinOp::Add(syn::Token![+](token.span()))),
        BinOp::SubAssign(token) => Some(BinOp::Sub(syn::Token![-](token.span()))),
        BinOp::MulAssign(token) => Some(BinOp::Mul(syn::Token![*](token.span()))),
        BinOp::DivAssign(token) => Some(BinOp::Div(syn::Token![/](token.span()))),
        _ => None,
    }
}

/// Returns whether statements end with a value: a final expression without `;` that is not a
/// loop, or a `return`.
fn ends_with_value(statements: &[Stmt]) -> bool {
    match statements.last() {
        Some(Stmt::Expr(Expr::Return(_), _)) => true,
        Some(Stmt::Expr(Expr::ForLoop(_) | Expr::While(_) | Expr::Loop(_), _)) => false,
        Some(Stmt::Expr(_, None)) => true,
        _ => false,
    }
}

/// Returns the path of every macro call inside `expr`. The lowering cannot read a
/// macro's tokens, so a differentiated value inside one would be missed.
fn nested_macros(expr: &Expr) -> Vec<syn::Path> {
    struct Finder(Vec<syn::Path>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            self.0.push(mac.path.clone());
        }
    }
    let mut finder = Finder(Vec::new());
    finder.visit_expr(expr);
    finder.0
}

/// Returns whether `method` reads only the shape of an array, which has no derivative.
fn is_shape_method(method: &Ident) -> bool {
    matches!(
        method.to_string().as_str(),
        "len"
            | "len_of"
            | "nrows"
            | "ncols"
            | "shape"
            | "dim"
            | "raw_dim"
            | "ndim"
            | "is_empty"
            | "strides"
    )
}

/// Returns whether the `then` branch of `if_expr` ends with `return`.
fn returns_in_then(if_expr: &syn::ExprIf) -> bool {
    matches!(
        if_expr.then_branch.stmts.last(),
        Some(Stmt::Expr(Expr::Return(_), _))
    )
}

/// Returns whether an expression with no differentiated variable can be emitted as written.
fn is_plain_constant(expr: &Expr) -> bool {
    !matches!(
        expr,
        Expr::If(_)
            | Expr::Match(_)
            | Expr::While(_)
            | Expr::Loop(_)
            | Expr::ForLoop(_)
            | Expr::Closure(_)
            | Expr::Block(_)
            | Expr::Assign(_)
            | Expr::Return(_)
            | Expr::Macro(_)
            | Expr::Try(_)
            | Expr::Index(_)
    )
}

/// The float methods with one operand: name, op type, local derivative in symbols.
pub const UNARY_METHODS: &[(&str, &str, &str)] = &[
    ("sin", "Sin", "cos({a})"),
    ("cos", "Cos", "-sin({a})"),
    ("tan", "Tan", "1 + tan({a})²"),
    ("asin", "Asin", "1/√(1 - {a}²)"),
    ("acos", "Acos", "-1/√(1 - {a}²)"),
    ("atan", "Atan", "1/(1 + {a}²)"),
    ("sinh", "Sinh", "cosh({a})"),
    ("cosh", "Cosh", "sinh({a})"),
    ("tanh", "Tanh", "1 - tanh({a})²"),
    ("exp", "Exp", "exp({a})"),
    ("exp2", "Exp2", "ln(2)·2^{a}"),
    ("exp_m1", "ExpM1", "exp({a})"),
    ("ln", "Ln", "1/{a}"),
    ("log2", "Log2", "1/({a}·ln 2)"),
    ("log10", "Log10", "1/({a}·ln 10)"),
    ("ln_1p", "Ln1p", "1/(1 + {a})"),
    ("sqrt", "Sqrt", "1/(2√{a})"),
    ("cbrt", "Cbrt", "1/(3·∛{a}²)"),
    ("recip", "Recip", "-1/{a}²"),
    ("abs", "Abs", "sign({a})"),
    ("signum", "Signum", "0"),
    ("floor", "Floor", "0"),
    ("ceil", "Ceil", "0"),
    ("round", "Round", "0"),
];

/// Whether `ident` names a float method with a derivative rule.
fn is_float_method(ident: &Ident) -> bool {
    let name = ident.to_string();
    unary_method(&name).is_some()
        || matches!(
            name.as_str(),
            "powi" | "powf" | "hypot" | "atan2" | "max" | "min" | "mul_add"
        )
}

fn unary_method(method: &str) -> Option<(&'static str, &'static str)> {
    UNARY_METHODS
        .iter()
        .find(|(name, _, _)| *name == method)
        .map(|(_, op, symbol)| (*op, *symbol))
}

/// Array methods of one differentiated value: op type, and whether it takes a constant
/// argument.
fn array_method(method: &str) -> Option<(&'static str, bool)> {
    Some(match method {
        "sum" => ("Sum", false),
        "mean" => ("Mean", false),
        "sum_axis" => ("SumAxis", true),
        "mean_axis" => ("MeanAxis", true),
        "t" | "reversed_axes" => ("Transpose", false),
        "into_shape" | "into_shape_with_order" | "to_shape" => ("IntoShape", true),
        "reshape" => ("Reshape", true),
        "insert_axis" => ("InsertAxis", true),
        "to_owned" | "clone" => ("ToOwned", false),
        "unwrap" => ("Unwrap", false),
        "expect" => ("Unwrap", false),
        _ => return None,
    })
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// Renders tokens as a person would write them.
pub fn pretty(tokens: &impl ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    text.replace(" . ", ".")
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" (", "(")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(" ,", ",")
        .replace("& ", "&")
        .replace(" [", "[")
        .replace("[ ", "[")
        .replace(" ]", "]")
        .replace(" . ", ".")
        .replace(" ..= ", "..=")
        .replace(" .. ", "..")
}

pub fn display(vars: &[Var], operand: &Operand) -> String {
    match operand {
        Operand::Var(id) => vars[*id].name.clone(),
        Operand::Field(id, members) => {
            let mut text = vars[*id].name.clone();
            for member in members {
                text.push('.');
                text.push_str(&member.to_token_stream().to_string());
            }
            text
        }
        Operand::Const(_, text) => text.clone(),
    }
}

/// Returns the operand as a value expression, for passing by value.
pub fn value_tokens(vars: &[Var], operand: &Operand, span: Span) -> TokenStream {
    match operand {
        Operand::Var(id) => {
            let ident = at(&vars[*id].ident, span);
            quote_spanned!(span=> #ident)
        }
        Operand::Field(id, members) => {
            let ident = at(&vars[*id].ident, span);
            quote_spanned!(span=> #ident #(.#members)*)
        }
        Operand::Const(tokens, _) => tokens.clone(),
    }
}

/// Returns `ident` with the span of its use, so errors point there and not at the
/// declaration.
fn at(ident: &Ident, span: Span) -> Ident {
    let mut ident = ident.clone();
    ident.set_span(ident.span().located_at(span));
    ident
}

/// Returns the operand as a reference expression: `&x`, or `x` for an argument passed
/// by reference. `owned` is true when the arguments were converted to owned values.
pub fn ref_tokens(vars: &[Var], operand: &Operand, span: Span, owned: bool) -> TokenStream {
    match operand {
        Operand::Var(id) => {
            let var = &vars[*id];
            let ident = &at(&var.ident, span);
            if var.is_arg && var.passing == Passing::Reference && !owned {
                quote_spanned!(span=> #ident)
            } else {
                quote_spanned!(span=> &#ident)
            }
        }
        Operand::Field(id, members) => {
            let ident = at(&vars[*id].ident, span);
            quote_spanned!(span=> &#ident #(.#members)*)
        }
        Operand::Const(tokens, _) => quote_spanned!(span=> &(#tokens)),
    }
}
