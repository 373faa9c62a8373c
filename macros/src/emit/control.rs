//! Emits `if` and `for` stages.
//!
//! A branch's values live in `Option` holders declared before the `if`. A loop body's
//! values are pushed, as one tuple per iteration, to a vector reserved at loop entry.
//! The reverse sweep reads them back by reference: the branch taken, or the iterations
//! last first. Inside a loop, holders and vectors of nested stages are themselves
//! values of the body, so they are saved per iteration too.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::Ident;

use super::{Context, Mode, is_active, level_vars, node_ident, reference, slot_ident, slot_target};
use crate::lower::{Body, IfStage, LoopStage, Op, Operand, Stage};

/// An identifier defined at one level that the reverse sweep reads.
struct Saved {
    ident: Ident,
    /// `Copy` values (flags, indices, trace nodes) are read back by value.
    copy: bool,
}

fn holder(ident: &Ident) -> Ident {
    format_ident!("__hold{}", ident.to_string().trim_start_matches("r#"))
}

/// Returns the name of the vector of a loop that contains, per iteration, the tuple of values its body saves.
fn buffer(id: usize) -> Ident {
    format_ident!("__saved_{}", id)
}

fn count(id: usize) -> Ident {
    format_ident!("__iterations_{}", id)
}

fn state(ident: &Ident) -> Ident {
    format_ident!("__state{}", ident.to_string().trim_start_matches("r#"))
}

fn carry(ident: &Ident) -> Ident {
    format_ident!("__carry{}", ident.to_string().trim_start_matches("r#"))
}

fn last_node(ident: &Ident) -> Ident {
    format_ident!("__last_node{}", ident.to_string().trim_start_matches("r#"))
}

impl Context<'_> {
    /// Returns the identifiers the stages define at their own level and the reverse sweep
    /// reads.
    fn saved(&self, body: &Body, stages: &[Stage], mode: Mode) -> Vec<Saved> {
        let mut saved = Vec::new();
        let value = |saved: &mut Vec<Saved>, id: usize| {
            let var = &body.vars[id];
            saved.push(Saved {
                ident: var.ident.clone(),
                copy: false,
            });
            if mode == Mode::Trace && var.active {
                saved.push(Saved {
                    ident: node_ident(&var.ident),
                    copy: true,
                });
            }
        };
        for stage in stages {
            match &stage.op {
                Op::If(stage_if) => {
                    saved.push(Saved {
                        ident: stage_if.taken.clone(),
                        copy: true,
                    });
                    for branch in &stage_if.branches {
                        for inner in self.saved(body, &branch.stages, mode) {
                            saved.push(Saved {
                                ident: holder(&inner.ident),
                                copy: false,
                            });
                        }
                    }
                    for &output in &stage_if.outputs {
                        value(&mut saved, output);
                    }
                }
                Op::Loop(stage_loop) => {
                    saved.push(Saved {
                        ident: count(stage_loop.id),
                        copy: true,
                    });
                    saved.push(Saved {
                        ident: buffer(stage_loop.id),
                        copy: false,
                    });
                    for &output in &stage_loop.outputs {
                        value(&mut saved, output);
                    }
                }
                _ => value(&mut saved, stage.var),
            }
        }
        saved
    }

    /// Returns what one iteration of a loop saves: the index, the element, the carried values,
    /// and the body's own values.
    fn body_saved(&self, body: &Body, stage_loop: &LoopStage, mode: Mode) -> Vec<Saved> {
        let mut saved = vec![Saved {
            ident: body.vars[stage_loop.index].ident.clone(),
            copy: true,
        }];
        let value = |id: usize, saved: &mut Vec<Saved>| {
            let var = &body.vars[id];
            saved.push(Saved {
                ident: var.ident.clone(),
                copy: false,
            });
            if mode == Mode::Trace && var.active {
                saved.push(Saved {
                    ident: node_ident(&var.ident),
                    copy: true,
                });
            }
        };
        if let Some((element, _)) = &stage_loop.element {
            value(*element, &mut saved);
        }
        for &carried in &stage_loop.carried {
            value(carried, &mut saved);
        }
        saved.extend(self.saved(body, &stage_loop.body.stages, mode));
        saved
    }

    /// Rebinds saved identifiers in the reverse sweep: `read(ident)` gives the source.
    fn rebind(saved: &[Saved], read: impl Fn(&Ident, bool) -> TokenStream) -> TokenStream {
        saved
            .iter()
            .map(|saved| {
                let ident = &saved.ident;
                let source = read(ident, saved.copy);
                quote!(let #ident = #source;)
            })
            .collect()
    }

    fn node_of(body: &Body, operand: &Operand) -> Option<Ident> {
        match operand {
            Operand::Var(id) | Operand::Field(id, _) if body.vars[*id].active => {
                Some(super::operand_node(&body.vars, operand))
            }
            _ => None,
        }
    }

    pub(super) fn forward_if(
        &self,
        body: &Body,
        stage: &Stage,
        stage_if: &IfStage,
        mode: Mode,
        note: Option<&TokenStream>,
    ) -> TokenStream {
        let krate = &self.krate;
        let vars = &body.vars;
        let taken = &stage_if.taken;
        let condition = &stage_if.condition;
        let outputs: Vec<&Ident> = stage_if.outputs.iter().map(|&id| &vars[id].ident).collect();
        let mut holders = TokenStream::new();
        let mut arms = Vec::new();
        for (branch, label) in stage_if.branches.iter().zip(["then", "else"]) {
            let saved = self.saved(body, &branch.stages, mode);
            for item in &saved {
                let holder = holder(&item.ident);
                holders.extend(quote!(let mut #holder = ::core::option::Option::None;));
            }
            let branch_note = match note {
                Some(note) => quote!(::std::format!("{}, {} branch", #note, #label)),
                None => quote!(::std::string::String::from(
                    ::core::concat!(#label, " branch")
                )),
            };
            let forward = self.forward_stages(body, &branch.stages, mode, Some(&branch_note));
            let exports = branch.exports.iter().map(|export| {
                let export = reference(vars, export, stage.span, false);
                quote!(#krate::__private::duplicate(#export))
            });
            let stores = saved.iter().map(|item| {
                let holder = holder(&item.ident);
                let ident = &item.ident;
                quote!(#holder = ::core::option::Option::Some(#ident);)
            });
            let arm = if mode == Mode::Trace {
                let nodes = stage_if.outputs.iter().zip(&branch.exports).enumerate().map(|(position, (&output, export))| {
                    let var = &vars[output];
                    if !var.active {
                        return quote!(usize::MAX);
                    }
                    let name = &var.name;
                    let text = format!("if {} ({label})", stage_if.condition_text);
                    let operands = match Self::node_of(body, export) {
                        Some(node) => quote!(&[(#node, "1")]),
                        None => quote!(&[]),
                    };
                    let index = syn::Index::from(position);
                    quote!({
                        let __node = __trace.record_stage(#name, #text, #operands, &__exports.#index);
                        __trace.record_note(__node, #branch_note);
                        __node
                    })
                });
                quote!({
                    #forward
                    let __exports = (#(#exports,)*);
                    let __nodes = (#(#nodes,)*);
                    #(#stores)*
                    (__exports, __nodes)
                })
            } else {
                quote!({
                    #forward
                    let __exports = (#(#exports,)*);
                    #(#stores)*
                    __exports
                })
            };
            arms.push(arm);
        }
        let (then_arm, else_arm) = (&arms[0], &arms[1]);
        let binding = if mode == Mode::Trace {
            let nodes = stage_if
                .outputs
                .iter()
                .map(|&id| node_ident(&vars[id].ident));
            quote!(((#(#outputs,)*), (#(#nodes,)*)))
        } else {
            quote!((#(#outputs,)*))
        };
        quote! {
            let #taken: bool = #condition;
            #holders
            let #binding = if #taken #then_arm else #else_arm;
        }
    }

    pub(super) fn backward_if(&self, body: &Body, stage_if: &IfStage, mode: Mode) -> TokenStream {
        let krate = &self.krate;
        let vars = &body.vars;
        let taken = &stage_if.taken;
        let mut arms = Vec::new();
        for branch in &stage_if.branches {
            let saved = self.saved(body, &branch.stages, mode);
            let rebind = Self::rebind(&saved, |ident, copy| {
                let holder = holder(ident);
                if copy {
                    quote!(#holder.expect("the branch taken saved this value"))
                } else {
                    quote!(#holder.as_ref().expect("the branch taken saved this value"))
                }
            });
            let slots: TokenStream = level_vars(&branch.stages)
                .into_iter()
                .map(|id| self.slot_declaration(body, id, true))
                .collect();
            let phis = stage_if.outputs.iter().zip(&branch.exports).map(|(&output, export)| {
                let var = &vars[output];
                if !var.active {
                    return quote!();
                }
                let slot = slot_ident(&var.ident);
                let own = reference(vars, &Operand::Var(output), Span::call_site(), true);
                let record = if mode == Mode::Trace {
                    let node = node_ident(&var.ident);
                    quote!(__trace.record_adjoint(#node, &__gradient);)
                } else {
                    quote!()
                };
                let add = if is_active(vars, export) {
                    let target = slot_target(vars, export);
                    quote!(#krate::__private::accumulate(&mut #target, __gradient);)
                } else {
                    quote!()
                };
                quote! {
                    if let ::core::option::Option::Some(__gradient) = #krate::__private::settle(#own, #slot) {
                        #record
                        #add
                    }
                }
            });
            let reverse = self.backward_stages(body, &branch.stages, mode);
            arms.push(quote!({
                #rebind
                #slots
                #(#phis)*
                #reverse
            }));
        }
        let (then_arm, else_arm) = (&arms[0], &arms[1]);
        quote!(if #taken #then_arm else #else_arm)
    }

    pub(super) fn forward_loop(
        &self,
        body: &Body,
        stage_loop: &LoopStage,
        mode: Mode,
        note: Option<&TokenStream>,
    ) -> TokenStream {
        let krate = &self.krate;
        let vars = &body.vars;
        let span = Span::call_site();
        let range = &stage_loop.range;
        let iterations = count(stage_loop.id);
        let index = &vars[stage_loop.index].ident;
        let index_name = &vars[stage_loop.index].name;
        let saved = self.body_saved(body, stage_loop, mode);
        let buffer = buffer(stage_loop.id);
        let values: Vec<&Ident> = saved.iter().map(|item| &item.ident).collect();
        let carried: Vec<&Ident> = stage_loop
            .carried
            .iter()
            .map(|&id| &vars[id].ident)
            .collect();
        let states: Vec<Ident> = carried.iter().map(|ident| state(ident)).collect();
        let inits = stage_loop
            .inits
            .iter()
            .map(|init| reference(vars, init, span, false));
        let outputs: Vec<&Ident> = stage_loop
            .outputs
            .iter()
            .map(|&id| &vars[id].ident)
            .collect();
        let exports: Vec<TokenStream> = stage_loop
            .body
            .exports
            .iter()
            .map(|export| reference(vars, export, span, false))
            .collect();
        let iteration_note = match note {
            Some(note) => quote!(::std::format!("{}, {} = {}", #note, #index_name, #index)),
            None => quote!(::std::format!("{} = {}", #index_name, #index)),
        };
        let forward =
            self.forward_stages(body, &stage_loop.body.stages, mode, Some(&iteration_note));
        let element = stage_loop.element.as_ref().map(|(element, source)| {
            let ident = &vars[*element].ident;
            let source = reference(vars, source, span, false);
            let record = if mode == Mode::Trace && vars[*element].active {
                let node = node_ident(ident);
                let name = &vars[*element].name;
                let text = format!(
                    "{}[{}]",
                    stage_loop.range_text.trim_end_matches(".iter()"),
                    index_name
                );
                let source_node = match &stage_loop.element {
                    Some((_, source)) => Self::node_of(body, source),
                    None => None,
                };
                let operands = match source_node {
                    Some(node) => quote!(&[(#node, "e[i]")]),
                    None => quote!(&[]),
                };
                quote! {
                    let #node = __trace.record_stage(#name, #text, #operands, &#ident);
                    __trace.record_note(#node, #iteration_note);
                }
            } else {
                quote!()
            };
            quote! {
                let #ident = #krate::__private::index(#source, #index);
                #record
            }
        });
        let trace_setup: TokenStream;
        let trace_carried: TokenStream;
        let trace_after_body: TokenStream;
        let trace_outputs: TokenStream;
        if mode == Mode::Trace {
            let lasts: Vec<Ident> = carried.iter().map(|ident| last_node(ident)).collect();
            trace_setup = stage_loop
                .inits
                .iter()
                .zip(&lasts)
                .map(|(init, last)| match Self::node_of(body, init) {
                    Some(node) => quote!(let mut #last: usize = #node;),
                    None => quote!(let mut #last: usize = usize::MAX;),
                })
                .collect();
            trace_carried = stage_loop
                .carried
                .iter()
                .zip(&lasts)
                .filter(|(id, _)| vars[**id].active)
                .map(|(&id, last)| {
                    let ident = &vars[id].ident;
                    let node = node_ident(ident);
                    let name = &vars[id].name;
                    let text = format!("{name} carried into the iteration");
                    quote! {
                        let #node = if #last == usize::MAX {
                            __trace.record_stage(#name, #text, &[], &#ident)
                        } else {
                            __trace.record_stage(#name, #text, &[(#last, "1")], &#ident)
                        };
                        __trace.record_note(#node, #iteration_note);
                    }
                })
                .collect();
            trace_after_body = stage_loop
                .body
                .exports
                .iter()
                .zip(&lasts)
                .filter_map(|(export, last)| {
                    Self::node_of(body, export).map(|node| quote!(#last = #node;))
                })
                .collect();
            let stored = saved.iter().filter(|item| !item.copy).count();
            trace_outputs = stage_loop
                .outputs
                .iter()
                .zip(&lasts)
                .filter(|(id, _)| vars[**id].active)
                .map(|(&id, last)| {
                    let ident = &vars[id].ident;
                    let node = node_ident(ident);
                    let name = &vars[id].name;
                    let text = format!("{name} after for {index_name} in {}", stage_loop.range_text);
                    quote! {
                        let #node = __trace.record_stage(#name, #text, &[(#last, "1")], &#ident);
                        __trace.record_note(#node, ::std::format!("{} iterations, {} values saved per iteration", #iterations, #stored));
                    }
                })
                .collect();
        } else {
            trace_setup = quote!();
            trace_carried = quote!();
            trace_after_body = quote!();
            trace_outputs = quote!();
        }
        quote! {
            let __range = #range;
            let mut #iterations: usize = 0;
            let mut #buffer = ::std::vec::Vec::with_capacity(::core::iter::Iterator::size_hint(&__range).0);
            #(let mut #states = #krate::__private::duplicate(#inits);)*
            #trace_setup
            for #index in __range {
                #element
                #(let #carried = #states;)*
                #trace_carried
                #forward
                #(#states = #krate::__private::duplicate(#exports);)*
                #trace_after_body
                #buffer.push((#(#values,)*));
                #iterations += 1;
            }
            #(let #outputs = #states;)*
            #trace_outputs
        }
    }

    pub(super) fn backward_loop(
        &self,
        body: &Body,
        stage_loop: &LoopStage,
        mode: Mode,
    ) -> TokenStream {
        let krate = &self.krate;
        let vars = &body.vars;
        let span = Span::call_site();
        let iterations = count(stage_loop.id);
        let saved = self.body_saved(body, stage_loop, mode);
        let buffer = buffer(stage_loop.id);
        let idents = saved.iter().map(|item| &item.ident);
        let copies = saved
            .iter()
            .filter(|item| item.copy)
            .map(|item| &item.ident);
        let rebind = quote! {
            let (#(#idents,)*) = &#buffer[__iteration];
            #(let #copies = *#copies;)*
        };
        let mut setup = TokenStream::new();
        let mut enter = TokenStream::new();
        let mut leave = TokenStream::new();
        let mut finish = TokenStream::new();
        for (k, &output) in stage_loop.outputs.iter().enumerate() {
            if !vars[output].active {
                continue;
            }
            let output_var = &vars[output];
            let carry = carry(&output_var.ident);
            let slot = slot_ident(&output_var.ident);
            let own = reference(vars, &Operand::Var(output), span, true);
            let record = if mode == Mode::Trace {
                let node = node_ident(&output_var.ident);
                quote!(if let ::core::option::Option::Some(__gradient) = &#carry { __trace.record_adjoint(#node, __gradient); })
            } else {
                quote!()
            };
            setup.extend(quote! {
                let mut #carry = #krate::__private::settle(#own, #slot);
                #record
            });
            let export = &stage_loop.body.exports[k];
            if is_active(vars, export) {
                let target = slot_target(vars, export);
                enter.extend(quote! {
                    if let ::core::option::Option::Some(__gradient) = #carry.take() {
                        #krate::__private::accumulate(&mut #target, __gradient);
                    }
                });
            }
            let carried = stage_loop.carried[k];
            if vars[carried].active {
                let carried_slot = slot_ident(&vars[carried].ident);
                let carried_ref = reference(vars, &Operand::Var(carried), span, true);
                let record = if mode == Mode::Trace {
                    let node = node_ident(&vars[carried].ident);
                    quote!(if let ::core::option::Option::Some(__gradient) = &#carry { __trace.record_adjoint(#node, __gradient); })
                } else {
                    quote!()
                };
                leave.extend(quote! {
                    #carry = #krate::__private::settle(#carried_ref, #carried_slot);
                    #record
                });
            }
            let init = &stage_loop.inits[k];
            if is_active(vars, init) {
                let target = slot_target(vars, init);
                finish.extend(quote! {
                    if let ::core::option::Option::Some(__gradient) = #carry {
                        #krate::__private::accumulate(&mut #target, __gradient);
                    }
                });
            }
        }
        let mut slots: TokenStream = stage_loop
            .carried
            .iter()
            .map(|&id| self.slot_declaration(body, id, true))
            .collect();
        let mut element_back = quote!();
        if let Some((element, source)) = &stage_loop.element {
            slots.extend(self.slot_declaration(body, *element, true));
            if vars[*element].active && is_active(vars, source) {
                let element_ident = &vars[*element].ident;
                let slot = slot_ident(element_ident);
                let index = &vars[stage_loop.index].ident;
                let target = slot_target(vars, source);
                let source_ref = reference(vars, source, span, true);
                let record = if mode == Mode::Trace {
                    let node = node_ident(element_ident);
                    quote!(__trace.record_adjoint(#node, &__gradient);)
                } else {
                    quote!()
                };
                element_back = quote! {
                    if let ::core::option::Option::Some(__gradient) = #krate::__private::settle(#element_ident, #slot) {
                        #record
                        #krate::__private::accumulate_index(&mut #target, #source_ref, #index, &__gradient);
                    }
                };
            }
        }
        slots.extend(
            level_vars(&stage_loop.body.stages)
                .into_iter()
                .map(|id| self.slot_declaration(body, id, true)),
        );
        let reverse = self.backward_stages(body, &stage_loop.body.stages, mode);
        quote! {
            #setup
            for __iteration in (0..#iterations).rev() {
                #rebind
                #slots
                #enter
                #reverse
                #element_back
                #leave
            }
            #finish
        }
    }
}
