//! The `#[differentiable]` attribute and `#[derive(Differentiable)]` of stagegrad.
//!
//! The entry points only hand token streams to plain functions ([`expand`],
//! [`derive::expand`]), so the transformation can be tested without a compiler in the
//! loop (the unit tests at the end of this file do that). Users depend on the `stagegrad` crate, which documents both macros.

mod args;
mod derive;
mod emit;
mod lower;
mod rule;
mod signature;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ItemFn;

/// Differentiates a function at compile time; see the `stagegrad` crate for the guide.
#[proc_macro_attribute]
pub fn differentiable(args: proc_macro::TokenStream, item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand(args.into(), item.into()).into()
}

/// Derives `Differentiable` for a struct of differentiable fields; see the `stagegrad`
/// crate for the guide.
#[proc_macro_derive(Differentiable, attributes(differentiable))]
pub fn derive_differentiable(item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    derive::expand(item.into()).into()
}

/// Expands `#[differentiable(args)]` on `item`: the item unchanged, the generated
/// items, and every error found, each on the token it concerns.
fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let span = item.clone().into_iter().next().map_or_else(proc_macro2::Span::call_site, |token| token.span());
            let error = syn::Error::new(
                span,
                "`#[differentiable]` applies to free functions only; put it on a `fn` item, or use `#[derive(Differentiable)]` on a struct",
            )
            .to_compile_error();
            return quote!(#item #error);
        }
    };
    let mut errors = Vec::new();
    let options = match args::Options::parse(args) {
        Ok(options) => options,
        Err(error) => {
            errors.push(error);
            args::Options::default()
        }
    };
    let krate = options
        .krate
        .as_ref()
        .map_or_else(|| quote!(::stagegrad), ToTokens::to_token_stream);
    let signature = signature::read(&function, &options, &mut errors);
    let Some(signature) = signature else {
        return finish(function.to_token_stream(), errors);
    };
    let context = emit::Context {
        function: &function,
        signature: &signature,
        krate: krate.clone(),
    };
    if let Some(path) = &options.vjp {
        let generated = rule::expand(&context, path);
        return finish(quote!(#function #generated), errors);
    }
    let body = lower::lower(&function.block, &signature, &function.sig.ident, &krate, &mut errors);
    let generated = generated_items(&context, body.as_ref());
    finish(quote!(#function #generated), errors)
}

/// Emits the generated items; without a body (after an error) their bodies are stubs,
/// so callers of `f_grad` and friends see no second error.
fn generated_items(context: &emit::Context<'_>, body: Option<&lower::Body>) -> TokenStream {
    let grad_struct = context.grad_struct();
    let grad_fn = if context.signature.scalar_output {
        context.grad_fn()
    } else {
        quote!()
    };
    let vjp_fn = match body {
        Some(body) => context.vjp_fn(body),
        None => stub_vjp(context),
    };
    let hidden = context.hidden_entry(body);
    let trace_fn = context.trace_fn(body);
    quote! {
        #grad_struct
        #grad_fn
        #vjp_fn
        #hidden
        #trace_fn
    }
}

fn stub_vjp(context: &emit::Context<'_>) -> TokenStream {
    let function = context.function;
    let vis = &function.vis;
    let name = context.vjp_name();
    let inputs = &function.sig.inputs;
    let output = &context.signature.output;
    let krate = &context.krate;
    let struct_name = context.struct_name();
    let generics = &function.sig.generics;
    let (impl_generics, type_generics, where_clause) = generics.split_for_impl();
    let _ = type_generics;
    let params: Vec<TokenStream> = generics
        .type_params()
        .map(|param| {
            let ident = &param.ident;
            quote!(#ident)
        })
        .collect();
    let grad_type = if params.is_empty() {
        quote!(#struct_name)
    } else {
        quote!(#struct_name<#(#params),*>)
    };
    quote! {
        #[allow(unused_variables, unreachable_code)]
        #vis fn #name #impl_generics (#inputs) -> (#output, impl ::core::ops::Fn(<#output as #krate::__private::Differentiable>::Tangent) -> #grad_type) #where_clause {
            (::core::unreachable!(), |_| ::core::unreachable!())
        }
    }
}

fn finish(tokens: TokenStream, errors: Vec<syn::Error>) -> TokenStream {
    let errors = errors.into_iter().map(|error| error.to_compile_error());
    quote!(#tokens #(#errors)*)
}

