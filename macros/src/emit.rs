//! Emits the generated items: `f_vjp`, `f_grad`, `f_trace`, `FGrad`, and the hidden
//! entry that other differentiable functions call.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{GenericParam, Ident, ItemFn, Type};

use crate::lower::{Body, CallArg, Op, Operand, Stage, Var, ref_tokens};
use crate::signature::{Arg, Passing, Signature};

mod control;

/// Everything the emitters share.
pub struct Context<'a> {
    pub function: &'a ItemFn,
    pub signature: &'a Signature,
    pub krate: TokenStream,
}

/// The kind of function being emitted. The kinds differ in how arguments are held and
/// in what the reverse sweep records.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `f_vjp`: the pullback borrows the arguments.
    Borrowing,
    /// The hidden entry: the pullback owns copies of borrowed arguments, so a caller can
    /// keep it next to its own values.
    Owning,
    /// `f_trace`: no closure, and every value is recorded.
    Trace,
}

impl Context<'_> {
    fn name(&self) -> &Ident {
        &self.function.sig.ident
    }

    pub fn grad_name(&self) -> Ident {
        format_ident!("{}_grad", self.name())
    }

    pub fn vjp_name(&self) -> Ident {
        format_ident!("{}_vjp", self.name())
    }

    pub fn trace_name(&self) -> Ident {
        format_ident!("{}_trace", self.name())
    }

    pub fn struct_name(&self) -> Ident {
        let name = self.name().to_string();
        let camel: String = name
            .trim_start_matches("r#")
            .split('_')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|first| first.to_uppercase().collect::<String>() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        format_ident!("{}Grad", camel, span = self.name().span())
    }

    /// Returns the type parameters, for `FGrad<T>` and `use<...>`.
    fn type_params(&self) -> Vec<TokenStream> {
        self.function
            .sig
            .generics
            .params
            .iter()
            .filter_map(|param| match param {
                GenericParam::Type(param) => {
                    let ident = &param.ident;
                    Some(quote!(#ident))
                }
                GenericParam::Const(param) => {
                    let ident = &param.ident;
                    Some(quote!(#ident))
                }
                GenericParam::Lifetime(_) => None,
            })
            .collect()
    }

    /// Returns the function's generics with `T: Scalar` added for each float type parameter.
    fn generics(&self) -> syn::Generics {
        let mut generics = self.function.sig.generics.clone();
        let krate = &self.krate;
        let bound: syn::TypeParamBound = syn::parse_quote!(#krate::__private::Scalar);
        let mut in_where_clause = Vec::new();
        for param in &self.signature.float_params {
            // The bound goes where the user wrote `Float`, so clippy finds one bound location.
            match generics
                .type_params_mut()
                .find(|declared| &declared.ident == param)
            {
                Some(declared) if !declared.bounds.is_empty() => {
                    declared.bounds.push(bound.clone())
                }
                _ => in_where_clause.push(param.clone()),
            }
        }
        if !in_where_clause.is_empty() {
            let where_clause = generics.make_where_clause();
            for param in in_where_clause {
                where_clause
                    .predicates
                    .push(syn::parse_quote!(#param: #bound));
            }
        }
        generics
    }

    fn grad_type(&self) -> TokenStream {
        let name = self.struct_name();
        let params = self.type_params();
        if params.is_empty() {
            quote!(#name)
        } else {
            quote!(#name<#(#params),*>)
        }
    }

    fn differentiated(&self) -> impl Iterator<Item = &Arg> {
        self.signature.args.iter().filter(|arg| arg.differentiated)
    }

    /// Returns the tangent type of an argument, written plainly where the macro can name it.
    fn tangent_type(&self, ty: &Type) -> TokenStream {
        tangent_type(ty, &self.signature.float_params, &self.krate)
    }

    fn cotangent_type(&self) -> TokenStream {
        let output = &self.signature.output;
        let krate = &self.krate;
        quote!(<#output as #krate::__private::Differentiable>::Tangent)
    }

    /// `struct FGrad { x: f64, ... }`.
    pub fn grad_struct(&self) -> TokenStream {
        let vis = &self.function.vis;
        let name = self.struct_name();
        let function = self.name();
        let mut generics = self.generics();
        generics.params = generics
            .params
            .into_iter()
            .filter(|param| !matches!(param, GenericParam::Lifetime(_)))
            .collect();
        let (generics, _, where_clause) = generics.split_for_impl();
        let generics = quote!(#generics);
        let fields = self.differentiated().map(|arg| {
            let ident = &arg.ident;
            let ty = self.tangent_type(&arg.ty);
            let doc = format!("The gradient with respect to `{ident}`.");
            quote!(#[doc = #doc] pub #ident: #ty)
        });
        let doc = format!("The gradient of [`{function}`], one field per differentiated argument.");
        quote! {
            #[doc = #doc]
            #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
            #vis struct #name #generics #where_clause {
                #(#fields,)*
            }
        }
    }

    /// Returns the arguments as declared, without `mut`, because the generated code never
    /// assigns to them.
    pub(crate) fn inputs(&self) -> TokenStream {
        let mut inputs = self.function.sig.inputs.clone();
        for input in &mut inputs {
            if let syn::FnArg::Typed(typed) = input {
                if let syn::Pat::Ident(pat) = &mut *typed.pat {
                    pat.mutability = None;
                }
            }
        }
        quote!(#inputs)
    }

    fn arg_idents(&self) -> Vec<&Ident> {
        self.signature.args.iter().map(|arg| &arg.ident).collect()
    }

    fn turbofish(&self) -> TokenStream {
        let params = self.type_params();
        let has_impl_trait = self.signature.args.iter().any(|arg| type_has_impl(&arg.ty));
        if params.is_empty() || has_impl_trait {
            quote!()
        } else {
            quote!(::<#(#params),*>)
        }
    }

    /// `fn f_grad(...) -> (f64, FGrad)`, for scalar results.
    pub fn grad_fn(&self) -> TokenStream {
        let vis = &self.function.vis;
        let name = self.grad_name();
        let vjp = self.vjp_name();
        let generics = self.generics();
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let inputs = self.inputs();
        let output = &self.signature.output;
        let grad_type = self.grad_type();
        let args = self.arg_idents();
        let krate = &self.krate;
        let turbofish = self.turbofish();
        let doc = format!(
            "Returns the value of [`{}`] and its gradient, one field per differentiated argument.",
            self.name()
        );
        quote! {
            #[doc = #doc]
            #[inline]
            #vis fn #name #impl_generics (#inputs) -> (#output, #grad_type) #where_clause {
                let (__value, __pullback) = #vjp #turbofish (#(#args),*);
                let __gradient = __pullback(#krate::__private::one_like(&__value));
                (__value, __gradient)
            }
        }
    }

    /// `fn f_vjp(...) -> (T, impl Fn(T::Tangent) -> FGrad)`.
    pub fn vjp_fn(&self, body: &Body) -> TokenStream {
        let vis = &self.function.vis;
        let name = self.vjp_name();
        let generics = self.generics();
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let inputs = self.inputs();
        let output = &self.signature.output;
        let grad_type = self.grad_type();
        let cotangent = self.cotangent_type();
        let forward = self.forward(body, Mode::Borrowing);
        let backward = self.backward(body, Mode::Borrowing);
        let out_ref = ref_tokens(
            &body.vars,
            &Operand::Var(body.output),
            Span::call_site(),
            false,
        );
        let krate = &self.krate;
        let struct_name = self.struct_name();
        let fields = self.differentiated().map(|arg| {
            let ident = &arg.ident;
            let slot = slot_ident(ident);
            let reference = arg_ref(arg);
            quote!(#ident: #krate::__private::finish(#reference, #slot))
        });
        let doc = format!(
            "Returns the value of [`{}`] and its pullback, which maps a cotangent of the result to the gradient.",
            self.name()
        );
        quote! {
            #[doc = #doc]
            #[inline]
            // Generated stages are plain `let`s; these lints fire on their shape, not on user code.
            #[allow(unused_mut, unused_variables, unused_assignments, clippy::let_and_return, clippy::redundant_clone, clippy::clone_on_copy)]
            #vis fn #name #impl_generics (#inputs) -> (#output, impl ::core::ops::Fn(#cotangent) -> #grad_type) #where_clause {
                #forward
                (#krate::__private::duplicate(#out_ref), move |__cotangent: #cotangent| {
                    #backward
                    #struct_name { #(#fields,)* }
                })
            }
        }
    }

    /// Emits the hidden `enum f {}` with `f::__stagegrad_vjp`, which callers use.
    pub fn hidden_entry(&self, body: Option<&Body>) -> TokenStream {
        let vis = &self.function.vis;
        let name = self.name();
        let generics = self.generics();
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let inputs = self.inputs();
        let output = &self.signature.output;
        let cotangent = self.cotangent_type();
        let krate = &self.krate;
        let params = self.type_params();
        let tuple_types: Vec<TokenStream> = self
            .signature
            .args
            .iter()
            .map(|arg| {
                if arg.differentiated {
                    self.tangent_type(&arg.ty)
                } else {
                    quote!(#krate::__private::NoTangent)
                }
            })
            .collect();
        let body_tokens = match body {
            Some(body) => self.owning_body(body),
            None => quote! {
                (::core::unreachable!(), move |_: #cotangent| -> (#(#tuple_types,)*) { ::core::unreachable!() })
            },
        };
        quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types, dead_code)]
            #vis enum #name {}

            impl #name {
                #[doc(hidden)]
                #[inline]
                #[allow(unreachable_code, unused_mut, unused_variables, unused_assignments, clippy::let_and_return, clippy::redundant_clone, clippy::clone_on_copy, clippy::type_complexity, clippy::too_many_arguments)]
                #vis fn __stagegrad_vjp #impl_generics (#inputs) -> (#output, impl ::core::ops::Fn(#cotangent) -> (#(#tuple_types,)*) + use<#(#params),*>) #where_clause {
                    #body_tokens
                }
            }
        }
    }

    fn owning_body(&self, body: &Body) -> TokenStream {
        let krate = &self.krate;
        let cotangent = self.cotangent_type();
        let (outer, inner) = self.own_arguments();
        let forward = self.forward(body, Mode::Owning);
        let backward = self.backward(body, Mode::Owning);
        let out_ref = ref_tokens(
            &body.vars,
            &Operand::Var(body.output),
            Span::call_site(),
            false,
        );
        let gradients = self.signature.args.iter().map(|arg| {
            if arg.differentiated {
                let slot = slot_ident(&arg.ident);
                let reference = arg_ref(arg);
                quote!(#krate::__private::finish(#reference, #slot))
            } else {
                quote!(#krate::__private::NoTangent)
            }
        });
        quote! {
            #outer
            #forward
            (#krate::__private::duplicate(#out_ref), move |__cotangent: #cotangent| {
                #inner
                #backward
                (#(#gradients,)*)
            })
        }
    }

    /// Copies the borrowed arguments into owned values, and rebinds the names to
    /// borrows of those, outside the pullback and again inside it.
    fn own_arguments(&self) -> (TokenStream, TokenStream) {
        let mut outer = TokenStream::new();
        let mut inner = TokenStream::new();
        for arg in &self.signature.args {
            let ident = &arg.ident;
            let owned = format_ident!("__owned_{}", ident);
            let ty = &arg.ty;
            match arg.passing {
                Passing::Value => {}
                Passing::Reference => {
                    outer.extend(quote! {
                        let #owned = ::std::borrow::ToOwned::to_owned(#ident);
                        let #ident: #ty = &#owned;
                    });
                    inner.extend(quote!(let #ident: #ty = &#owned;));
                }
                Passing::View => {
                    outer.extend(quote! {
                        let #owned = #ident.to_owned();
                        let #ident: #ty = #owned.view();
                    });
                    inner.extend(quote!(let #ident: #ty = #owned.view();));
                }
            }
        }
        (outer, inner)
    }

    /// `fn f_trace(...) -> Trace`.
    pub fn trace_fn(&self, body: Option<&Body>) -> TokenStream {
        let vis = &self.function.vis;
        let name = self.trace_name();
        let generics = self.generics();
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let inputs = self.inputs();
        let krate = &self.krate;
        let doc = format!(
            "Runs [`{}`] and records every stage: expression, value, local derivatives and adjoint.",
            self.name()
        );
        let body_tokens = match body {
            Some(body) => self.trace_body(body),
            None => quote!(::core::unreachable!()),
        };
        quote! {
            #[doc = #doc]
            #[allow(unreachable_code, unused_mut, unused_variables, unused_assignments, clippy::let_and_return, clippy::redundant_clone, clippy::clone_on_copy)]
            #vis fn #name #impl_generics (#inputs) -> #krate::Trace #where_clause {
                #body_tokens
            }
        }
    }

    fn trace_body(&self, body: &Body) -> TokenStream {
        let krate = &self.krate;
        let function = self.name().to_string();
        let mut inputs = TokenStream::new();
        for arg in self.differentiated() {
            let node = node_ident(&arg.ident);
            let name = arg.ident.to_string();
            let reference = arg_ref(arg);
            inputs.extend(quote!(let #node = __trace.record_input(#name, #reference);));
        }
        let fields = field_operands(body);
        for field in &fields {
            let node = operand_node(&body.vars, field);
            let name = crate::lower::display(&body.vars, field);
            let reference = ref_tokens(&body.vars, field, Span::call_site(), false);
            inputs.extend(quote!(let #node = __trace.record_input(#name, #reference);));
        }
        let field_adjoints = fields.iter().map(|field| {
            let node = operand_node(&body.vars, field);
            let slot = slot_target(&body.vars, field);
            quote!(__trace.record_adjoint(#node, &#slot);)
        });
        let forward = self.forward(body, Mode::Trace);
        let backward = self.backward(body, Mode::Trace);
        let output = &body.vars[body.output];
        let out_ref = ref_tokens(
            &body.vars,
            &Operand::Var(body.output),
            Span::call_site(),
            false,
        );
        let record_output = if output.active {
            let node = node_ident(&output.ident);
            quote!(__trace.record_output(#node);)
        } else {
            quote!()
        };
        let adjoints = self.differentiated().map(|arg| {
            let node = node_ident(&arg.ident);
            let slot = slot_ident(&arg.ident);
            let reference = arg_ref(arg);
            quote!(__trace.record_adjoint(#node, &#krate::__private::finish(#reference, #slot));)
        });
        let sweep = if output.active {
            quote! {
                if let ::core::option::Option::Some(__cotangent) = #krate::__private::unit_cotangent(#out_ref) {
                    #backward
                    #(#field_adjoints)*
                    #(#adjoints)*
                }
            }
        } else {
            quote!()
        };
        quote! {
            let mut __trace = #krate::Trace::new(#function);
            #inputs
            #forward
            #record_output
            #sweep
            __trace
        }
    }

    /// Emits the forward pass: one `let` per stage.
    fn forward(&self, body: &Body, mode: Mode) -> TokenStream {
        self.forward_stages(body, &body.stages, mode, None)
    }

    /// Emits the forward pass of a list of stages. In a trace, `note` names the iteration
    /// or branch they belong to.
    fn forward_stages(
        &self,
        body: &Body,
        stages: &[Stage],
        mode: Mode,
        note: Option<&TokenStream>,
    ) -> TokenStream {
        let mut tokens = TokenStream::new();
        for stage in stages {
            tokens.extend(match &stage.op {
                Op::If(stage_if) => self.forward_if(body, stage, stage_if, mode, note),
                Op::Loop(stage_loop) => self.forward_loop(body, stage_loop, mode, note),
                _ => self.forward_stage(body, stage, mode, note),
            });
        }
        tokens
    }

    fn forward_stage(
        &self,
        body: &Body,
        stage: &Stage,
        mode: Mode,
        note: Option<&TokenStream>,
    ) -> TokenStream {
        let vars = &body.vars;
        let var = &vars[stage.var];
        let ident = &var.ident;
        let span = Span::call_site().located_at(stage.span);
        // Calls carry the user's span so a panicking rule reports the user's line;
        // locals keep call-site hygiene so they resolve inside `macro_rules!` too.
        let call_span = stage.span;
        let krate = &respan(&self.krate, call_span);
        let r = |operand: &Operand| ref_tokens(vars, operand, call_span, false);
        let value = match &stage.op {
            Op::Unary(op, a) => {
                let a = r(a);
                {
                    let call = quote_spanned!(call_span=> #krate::__private::unary(#op, #a));
                    quote!(let #ident = #call;)
                }
            }
            Op::Binary(op, a, b) => {
                let (a, b) = (r(a), r(b));
                {
                    let call = quote_spanned!(call_span=> #krate::__private::binary(#op, #a, #b));
                    quote!(let #ident = #call;)
                }
            }
            Op::Method(op, a) => {
                let a = r(a);
                {
                    let call = quote_spanned!(call_span=> #krate::__private::method(#op, #a));
                    quote!(let #ident = #call;)
                }
            }
            Op::Method2(op, a, b) => {
                let (a, b) = (r(a), r(b));
                {
                    let call = quote_spanned!(call_span=> #krate::__private::method2(#op, #a, #b));
                    quote!(let #ident = #call;)
                }
            }
            Op::MulAdd(a, m, c) => {
                let (a, m, c) = (r(a), r(m), r(c));
                {
                    let call = quote_spanned!(call_span=> #krate::__private::mul_add(#a, #m, #c));
                    quote!(let #ident = #call;)
                }
            }
            Op::Cast(a, ty) => {
                let a = r(a);
                {
                    let call = quote_spanned!(call_span=> #krate::__private::cast(#a));
                    quote!(let #ident: #ty = #call;)
                }
            }
            Op::Copy(a) | Op::Detach(a) => {
                let a = r(a);
                {
                    let call = quote_spanned!(call_span=> #krate::__private::duplicate(#a));
                    quote!(let #ident = #call;)
                }
            }
            Op::Call { vjp, args } => {
                let pullback = pullback_ident(ident);
                let args = args.iter().map(|CallArg { expr, .. }| expr);
                {
                    let call = quote_spanned!(call_span=> #vjp(#(#args),*));
                    quote!(let (#ident, #pullback) = #call;)
                }
            }
            Op::Const(tokens, ty) => match ty {
                Some(ty) => quote_spanned!(span=> let #ident: #ty = #tokens;),
                None => quote_spanned!(span=> let #ident = #tokens;),
            },
            Op::Index(a, position) => {
                let a = r(a);
                {
                    let call = quote_spanned!(call_span=> #krate::__private::index(#a, #position));
                    quote!(let #ident = #call;)
                }
            }
            Op::Tuple(elements) => {
                let elements = elements.iter().map(|element| {
                    let element = r(element);
                    quote!(#krate::__private::duplicate(#element))
                });
                quote!(let #ident = (#(#elements,)*);)
            }
            Op::If(_) | Op::Loop(_) => {
                unreachable!("control stages are emitted by their own functions")
            }
        };
        if mode != Mode::Trace || !var.active {
            return value;
        }
        let node = node_ident(ident);
        let name = &var.name;
        let text = &stage.text;
        let operands = active_operands(vars, stage);
        let entries = operands
            .iter()
            .zip(&stage.symbols)
            .map(|(operand, symbol)| {
                let operand_node = operand_node(vars, operand);
                quote!((#operand_node, #symbol))
            });
        let own = r(&Operand::Var(stage.var));
        let locals = self.trace_locals(body, stage);
        let note = note.map(|note| quote!(__trace.record_note(#node, #note);));
        quote! {
            #value
            let #node = __trace.record_stage(#name, #text, &[#(#entries),*], #own);
            #note
            #locals
        }
    }

    /// Records the numeric local derivatives of a stage with a scalar result.
    fn trace_locals(&self, body: &Body, stage: &Stage) -> TokenStream {
        let krate = &self.krate;
        let vars = &body.vars;
        let span = Span::call_site().located_at(stage.span);
        let ident = &vars[stage.var].ident;
        let node = node_ident(ident);
        let r = |operand: &Operand| ref_tokens(vars, operand, span, false);
        let own = r(&Operand::Var(stage.var));
        let one = quote!(&__one);
        let mut records = Vec::new();
        let mut position = 0usize;
        let mut record = |active: bool, value: TokenStream| {
            if active {
                records.push(quote!(__trace.record_local(#node, #position, ::core::option::Option::Some(&#value));));
                position += 1;
            }
        };
        let active = |operand: &Operand| is_active(vars, operand);
        match &stage.op {
            Op::Unary(op, a) => {
                let ar = r(a);
                record(
                    active(a),
                    quote!(#krate::__private::unary_back(#op, #ar, #own, #one)),
                );
            }
            Op::Binary(op, a, b) => {
                let (ar, br) = (r(a), r(b));
                record(
                    active(a),
                    quote!(#krate::__private::binary_back_lhs(#op, #ar, #br, #own, #one)),
                );
                record(
                    active(b),
                    quote!(#krate::__private::binary_back_rhs(#op, #ar, #br, #own, #one)),
                );
            }
            Op::MulAdd(a, m, c) => {
                let (ar, mr, cr) = (r(a), r(m), r(c));
                let all = quote!(#krate::__private::mul_add_back(#ar, #mr, #cr, #one));
                record(active(a), quote!(#all.0));
                record(active(m), quote!(#all.1));
                record(active(c), quote!(#all.2));
            }
            Op::Cast(a, _) => {
                let ar = r(a);
                record(active(a), quote!(#krate::__private::cast_back(#ar, #one)));
            }
            Op::Copy(a) => record(active(a), quote!(1.0_f64)),
            _ => {}
        }
        if records.is_empty() {
            return quote!();
        }
        quote! {
            if let ::core::option::Option::Some(__one) = #krate::__private::unit_cotangent(#own) {
                #(#records)*
            }
        }
    }

    /// Emits the reverse sweep: slots for every differentiated value, the seed, then each
    /// stage's contribution to its operands, in reverse order.
    fn backward(&self, body: &Body, mode: Mode) -> TokenStream {
        let krate = &self.krate;
        let vars = &body.vars;
        let mut tokens = TokenStream::new();
        for arg in self.differentiated() {
            let slot = slot_ident(&arg.ident);
            let reference = arg_ref(arg);
            tokens.extend(quote!(let mut #slot = #krate::__private::slot_for(#reference);));
        }
        for id in level_vars(&body.stages) {
            if id == body.output {
                continue;
            }
            tokens.extend(self.slot_declaration(body, id, false));
        }
        let output = &vars[body.output];
        if output.active {
            let slot = slot_ident(&output.ident);
            let reference = ref_tokens(vars, &Operand::Var(body.output), Span::call_site(), false);
            tokens
                .extend(quote!(let mut #slot = #krate::__private::seed(#reference, __cotangent);));
        }
        tokens.extend(self.backward_stages(body, &body.stages, mode));
        tokens
    }

    /// Emits the reverse sweep over a list of stages, last first.
    fn backward_stages(&self, body: &Body, stages: &[Stage], mode: Mode) -> TokenStream {
        let mut tokens = TokenStream::new();
        for stage in stages.iter().rev() {
            tokens.extend(match &stage.op {
                Op::If(stage_if) => self.backward_if(body, stage_if, mode),
                Op::Loop(stage_loop) => self.backward_loop(body, stage_loop, mode),
                _ if body.vars[stage.var].active => self.backward_stage(body, stage, mode),
                _ => quote!(),
            });
        }
        tokens
    }

    /// `let mut __adj_x = slot_for(x);` for an active variable.
    fn slot_declaration(&self, body: &Body, id: usize, backward: bool) -> TokenStream {
        let var = &body.vars[id];
        if !var.active {
            return quote!();
        }
        let krate = &self.krate;
        let slot = slot_ident(&var.ident);
        let reference = reference(&body.vars, &Operand::Var(id), Span::call_site(), backward);
        quote!(let mut #slot = #krate::__private::slot_for(#reference);)
    }

    fn backward_stage(&self, body: &Body, stage: &Stage, mode: Mode) -> TokenStream {
        let vars = &body.vars;
        let span = Span::call_site().located_at(stage.span);
        let call_span = stage.span;
        let krate = &respan(&self.krate, call_span);
        let gradient = quote!(__gradient);
        let ident = &vars[stage.var].ident;
        let slot = slot_ident(ident);
        let r = |operand: &Operand| reference(vars, operand, call_span, true);
        let own = r(&Operand::Var(stage.var));
        let add = |operand: &Operand, gradient: TokenStream| -> TokenStream {
            if !is_active(vars, operand) {
                return quote!();
            }
            let target = slot_target(vars, operand);
            quote_spanned!(span=> #krate::__private::accumulate(&mut #target, #gradient);)
        };
        let contributions = match &stage.op {
            Op::Unary(op, a) => {
                let ar = r(a);
                add(
                    a,
                    quote_spanned!(call_span=> #krate::__private::unary_back(#op, #ar, #own, &#gradient)),
                )
            }
            Op::Binary(op, a, b) => {
                let (ar, br) = (r(a), r(b));
                let mut tokens = add(
                    a,
                    quote_spanned!(call_span=> #krate::__private::binary_back_lhs(#op, #ar, #br, #own, &#gradient)),
                );
                tokens.extend(add(b, quote_spanned!(call_span=> #krate::__private::binary_back_rhs(#op, #ar, #br, #own, &#gradient))));
                tokens
            }
            Op::Method(op, a) => {
                let ar = r(a);
                add(
                    a,
                    quote_spanned!(call_span=> #krate::__private::method_back(#op, #ar, #own, &#gradient)),
                )
            }
            Op::Method2(op, a, b) => {
                let (ar, br) = (r(a), r(b));
                let mut tokens = add(
                    a,
                    quote_spanned!(call_span=> #krate::__private::method2_back_lhs(#op, #ar, #br, #own, &#gradient)),
                );
                tokens.extend(add(b, quote_spanned!(call_span=> #krate::__private::method2_back_rhs(#op, #ar, #br, #own, &#gradient))));
                tokens
            }
            Op::MulAdd(a, m, c) => {
                let (ar, mr, cr) = (r(a), r(m), r(c));
                let mut tokens = {
                    let call = quote_spanned!(call_span=> #krate::__private::mul_add_back(#ar, #mr, #cr, &#gradient));
                    quote!(let __parts = #call;)
                };
                tokens.extend(add(a, quote!(__parts.0)));
                tokens.extend(add(m, quote!(__parts.1)));
                tokens.extend(add(c, quote!(__parts.2)));
                tokens
            }
            Op::Cast(a, _) => {
                let ar = r(a);
                add(
                    a,
                    quote_spanned!(call_span=> #krate::__private::cast_back(#ar, &#gradient)),
                )
            }
            Op::Copy(a) => add(a, quote!(__gradient)),
            Op::Detach(_) | Op::Const(..) => quote!(),
            Op::Index(a, position) => {
                if is_active(vars, a) {
                    let ar = r(a);
                    let target = slot_target(vars, a);
                    {
                        let call = quote_spanned!(call_span=> #krate::__private::accumulate_index(&mut #target, #ar, #position, &#gradient));
                        quote!(#call;)
                    }
                } else {
                    quote!()
                }
            }
            Op::Tuple(elements) => {
                let mut tokens = quote!(let __parts = __gradient;);
                for (position, element) in elements.iter().enumerate() {
                    let position = syn::Index::from(position);
                    tokens.extend(add(element, quote!(__parts.#position)));
                }
                tokens
            }
            Op::If(_) | Op::Loop(_) => {
                unreachable!("control stages are emitted by their own functions")
            }
            Op::Call { args, .. } => {
                let pullback = pullback_ident(ident);
                let mut tokens = quote!(let __parts = #pullback(__gradient););
                for (index, arg) in args.iter().enumerate() {
                    if let Some(target) = &arg.target {
                        let index = syn::Index::from(index);
                        tokens.extend(add(target, quote!(__parts.#index)));
                    }
                }
                tokens
            }
        };
        let record = if mode == Mode::Trace {
            let node = node_ident(ident);
            quote!(__trace.record_adjoint(#node, &#gradient);)
        } else {
            quote!()
        };
        quote! {
            if let ::core::option::Option::Some(__gradient) = #krate::__private::settle(#own, #slot) {
                #record
                #contributions
            }
        }
    }
}

/// Returns `tokens` with every span set to `span`. A call whose first token carries the
/// user's span reports the user's line when a `#[track_caller]` rule panics, where a
/// call-site span would report the attribute.
fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(&group.stream(), span));
                inner.set_span(span);
                token = proc_macro2::TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// Returns the operand as a reference. In the reverse sweep, a variable of a branch or
/// loop body is already a reference into the saved values.
pub(crate) fn reference(
    vars: &[Var],
    operand: &Operand,
    span: Span,
    backward: bool,
) -> TokenStream {
    match operand {
        Operand::Var(id) if backward && vars[*id].in_region => {
            let ident = &vars[*id].ident;
            quote_spanned!(span=> #ident)
        }
        other => ref_tokens(vars, other, span, false),
    }
}

/// Returns the variables a list of stages defines at its own level.
pub(crate) fn level_vars(stages: &[Stage]) -> Vec<usize> {
    let mut ids = Vec::new();
    for stage in stages {
        match &stage.op {
            Op::If(stage_if) => ids.extend(&stage_if.outputs),
            Op::Loop(stage_loop) => ids.extend(&stage_loop.outputs),
            _ => ids.push(stage.var),
        }
    }
    ids
}

/// Returns the trace node of an operand: a field of an argument, such as `model.w1`, is
/// a node of its own, so the trace names it.
pub(crate) fn operand_node(vars: &[Var], operand: &Operand) -> Ident {
    match operand {
        Operand::Field(id, members) => {
            let path: Vec<String> = members
                .iter()
                .map(|member| quote!(#member).to_string())
                .collect();
            format_ident!(
                "__node_field_{}_{}",
                vars[*id].ident.to_string().trim_start_matches("r#"),
                path.join("_")
            )
        }
        other => node_ident(&vars[base(other)].ident),
    }
}

/// Returns every distinct field of a differentiated argument that the body reads.
fn field_operands(body: &Body) -> Vec<Operand> {
    fn visit(body: &Body, stages: &[Stage], found: &mut Vec<Operand>) {
        for stage in stages {
            let operands: Vec<&Operand> = match &stage.op {
                Op::If(stage_if) => {
                    for branch in &stage_if.branches {
                        visit(body, &branch.stages, found);
                    }
                    stage_if
                        .branches
                        .iter()
                        .flat_map(|branch| &branch.exports)
                        .collect()
                }
                Op::Loop(stage_loop) => {
                    visit(body, &stage_loop.body.stages, found);
                    stage_loop
                        .inits
                        .iter()
                        .chain(&stage_loop.body.exports)
                        .collect()
                }
                _ => active_operands(&body.vars, stage),
            };
            for operand in operands {
                if let Operand::Field(id, _) = operand {
                    let seen = found.iter().any(|known| {
                        crate::lower::display(&body.vars, known)
                            == crate::lower::display(&body.vars, operand)
                    });
                    if body.vars[*id].active && body.vars[*id].is_arg && !seen {
                        found.push(operand.clone());
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    visit(body, &body.stages, &mut found);
    found
}

pub(crate) fn is_active(vars: &[Var], operand: &Operand) -> bool {
    match operand {
        Operand::Var(id) | Operand::Field(id, _) => vars[*id].active,
        Operand::Const(..) => false,
    }
}

fn base(operand: &Operand) -> usize {
    match operand {
        Operand::Var(id) | Operand::Field(id, _) => *id,
        Operand::Const(..) => unreachable!("constants are never active"),
    }
}

/// Returns the operands that receive a gradient, in the order of the stage's symbols.
fn active_operands<'a>(vars: &[Var], stage: &'a Stage) -> Vec<&'a Operand> {
    let all: Vec<&Operand> = match &stage.op {
        Op::Unary(_, a) | Op::Method(_, a) | Op::Cast(a, _) | Op::Copy(a) | Op::Index(a, _) => {
            vec![a]
        }
        Op::Binary(_, a, b) | Op::Method2(_, a, b) => vec![a, b],
        Op::Tuple(elements) => elements.iter().collect(),
        Op::MulAdd(a, m, c) => vec![a, m, c],
        Op::Call { args, .. } => args.iter().filter_map(|arg| arg.target.as_ref()).collect(),
        Op::Detach(_) | Op::Const(..) | Op::If(_) | Op::Loop(_) => Vec::new(),
    };
    all.into_iter()
        .filter(|operand| is_active(vars, operand))
        .collect()
}

pub(crate) fn slot_ident(ident: &Ident) -> Ident {
    format_ident!("__adj_{}", ident.to_string().trim_start_matches("r#"))
}

pub(crate) fn node_ident(ident: &Ident) -> Ident {
    format_ident!("__node_{}", ident.to_string().trim_start_matches("r#"))
}

fn pullback_ident(ident: &Ident) -> Ident {
    format_ident!("__pullback_{}", ident.to_string().trim_start_matches("r#"))
}

pub(crate) fn slot_target(vars: &[Var], operand: &Operand) -> TokenStream {
    match operand {
        Operand::Var(id) => {
            let slot = slot_ident(&vars[*id].ident);
            quote!(#slot)
        }
        Operand::Field(id, members) => {
            let slot = slot_ident(&vars[*id].ident);
            quote!(#slot #(.#members)*)
        }
        Operand::Const(..) => unreachable!("constants are never active"),
    }
}

/// Returns a reference to an argument: the argument itself when it is passed by
/// reference, which stays true in the owning entry after its arguments are rebound.
fn arg_ref(arg: &Arg) -> TokenStream {
    let ident = &arg.ident;
    match arg.passing {
        Passing::Reference => quote!(#ident),
        _ => quote!(&#ident),
    }
}

fn type_has_impl(ty: &Type) -> bool {
    matches!(ty, Type::ImplTrait(_))
        || matches!(ty, Type::Reference(reference) if type_has_impl(&reference.elem))
}

/// Returns the tangent type of `ty`, plainly where the macro can tell it (`f64`,
/// arrays, views) and as `<Ty as Differentiable>::Tangent` otherwise.
pub fn tangent_type(ty: &Type, float_params: &[Ident], krate: &TokenStream) -> TokenStream {
    match ty {
        Type::Reference(reference) => tangent_type(&reference.elem, float_params, krate),
        Type::Paren(paren) => tangent_type(&paren.elem, float_params, krate),
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last().expect("a path has a segment");
            let name = last.ident.to_string();
            let plain = name == "f32"
                || name == "f64"
                || (path.path.segments.len() == 1
                    && float_params.iter().any(|param| param == &last.ident))
                || name == "Array"
                || name == "ArrayD"
                || (name.len() == 6
                    && name.starts_with("Array")
                    && name.as_bytes()[5].is_ascii_digit());
            if plain {
                return quote!(#ty);
            }
            if let Some(rank) = name.strip_prefix("ArrayView") {
                let mut owned = path.path.clone();
                let last = owned.segments.last_mut().expect("a path has a segment");
                last.ident = format_ident!("Array{}", rank, span = last.ident.span());
                if let syn::PathArguments::AngleBracketed(angle) = &mut last.arguments {
                    angle.args = angle
                        .args
                        .iter()
                        .filter(|argument| !matches!(argument, syn::GenericArgument::Lifetime(_)))
                        .cloned()
                        .collect();
                }
                return quote!(#owned);
            }
            let ty = static_lifetimes(ty);
            quote!(<#ty as #krate::__private::Differentiable>::Tangent)
        }
        other => {
            let ty = static_lifetimes(other);
            quote!(<#ty as #krate::__private::Differentiable>::Tangent)
        }
    }
}

/// Replaces every lifetime in `ty` with `'static`, for naming a tangent type in a struct.
fn static_lifetimes(ty: &Type) -> Type {
    struct Replace;
    impl syn::visit_mut::VisitMut for Replace {
        fn visit_lifetime_mut(&mut self, lifetime: &mut syn::Lifetime) {
            *lifetime = syn::Lifetime::new("'static", lifetime.apostrophe);
        }
        fn visit_type_reference_mut(&mut self, reference: &mut syn::TypeReference) {
            if reference.lifetime.is_none() {
                reference.lifetime = Some(syn::Lifetime::new("'static", reference.and_token.span));
            }
            syn::visit_mut::visit_type_reference_mut(self, reference);
        }
    }
    let mut ty = ty.clone();
    syn::visit_mut::VisitMut::visit_type_mut(&mut Replace, &mut ty);
    ty
}

/// Renders the stage list, for the macro's own unit tests.
#[cfg(test)]
pub fn describe(body: &Body) -> Vec<String> {
    body.stages
        .iter()
        .map(|stage| format!("{} = {}", body.vars[stage.var].name, stage.text))
        .chain(std::iter::once(format!(
            "output {}",
            crate::lower::display(&body.vars, &Operand::Var(body.output))
        )))
        .collect()
}
