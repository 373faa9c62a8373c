//! `#[differentiable(vjp = path)]`: a function with a hand-written rule.
//!
//! `path` takes the function's arguments and returns `(value, pullback)`, the pullback
//! mapping the result's cotangent to a tuple with one tangent per argument, in order
//! (`NoTangent` for constants). The pullback must own what it keeps, so that callers
//! can hold it next to their own values: declare it `impl Fn(..) -> (..) + use<..>`
//! with the type parameters only.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Path;

use crate::emit::Context;

pub fn expand(context: &Context<'_>, path: &Path) -> TokenStream {
    let krate = &context.krate;
    let function = context.function;
    let vis = &function.vis;
    let name = &function.sig.ident;
    let inputs = context.inputs();
    let output = &context.signature.output;
    let args: Vec<_> = context
        .signature
        .args
        .iter()
        .map(|arg| &arg.ident)
        .collect();
    let parts: Vec<_> = (0..args.len())
        .map(|index| format_ident!("__part_{}", index))
        .collect();
    let struct_name = context.struct_name();
    let grad_struct = context.grad_struct();
    let grad_fn = if context.signature.scalar_output {
        context.grad_fn()
    } else {
        quote!()
    };
    let generics = &function.sig.generics;
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let params: Vec<TokenStream> = generics
        .params
        .iter()
        .filter_map(|param| match param {
            syn::GenericParam::Type(param) => {
                let ident = &param.ident;
                Some(quote!(#ident))
            }
            syn::GenericParam::Const(param) => {
                let ident = &param.ident;
                Some(quote!(#ident))
            }
            syn::GenericParam::Lifetime(_) => None,
        })
        .collect();
    let grad_type = if params.is_empty() {
        quote!(#struct_name)
    } else {
        quote!(#struct_name<#(#params),*>)
    };
    let cotangent = quote!(<#output as #krate::__private::Differentiable>::Tangent);
    let tuple_types: Vec<TokenStream> = context
        .signature
        .args
        .iter()
        .map(|arg| {
            if arg.differentiated {
                crate::emit::tangent_type(&arg.ty, &context.signature.float_params, krate)
            } else {
                quote!(#krate::__private::NoTangent)
            }
        })
        .collect();
    let fields = context
        .signature
        .args
        .iter()
        .zip(&parts)
        .filter(|(arg, _)| arg.differentiated)
        .map(|(arg, part)| {
            let ident = &arg.ident;
            quote!(#ident: #part)
        });
    let vjp_name = context.vjp_name();
    let trace_name = context.trace_name();
    let inputs_record = context
        .signature
        .args
        .iter()
        .filter(|arg| arg.differentiated)
        .map(|arg| {
            let ident = &arg.ident;
            let text = ident.to_string();
            let node = format_ident!("__node_{}", ident);
            quote!(let #node = __trace.record_input(#text, &#ident);)
        });
    let locals: Vec<_> = context
        .signature
        .args
        .iter()
        .filter(|arg| arg.differentiated)
        .map(|arg| {
            let ident = &arg.ident;
            let node = format_ident!("__node_{}", ident);
            let symbol = format!("∂{name}/∂{ident}");
            quote!((#node, #symbol))
        })
        .collect();
    let adjoints = context
        .signature
        .args
        .iter()
        .zip(&parts)
        .filter(|(arg, _)| arg.differentiated)
        .map(|(arg, part)| {
            let node = format_ident!("__node_{}", arg.ident);
            quote!(__trace.record_adjoint(#node, &#part);)
        });
    let function_name = name.to_string();
    // A rule named `f_vjp` stays the public vjp, so only the items it lacks are added.
    let rule_is_public_vjp = path.get_ident().is_some_and(|ident| *ident == vjp_name);
    let public_items = if rule_is_public_vjp {
        quote!()
    } else {
        quote! {
            #grad_struct
            #grad_fn

            #[doc = "Returns the value and its pullback, through the hand-written rule."]
            #[inline]
            #vis fn #vjp_name #impl_generics (#inputs) -> (#output, impl ::core::ops::Fn(#cotangent) -> #grad_type) #where_clause {
                let (__value, __pullback) = #path(#(#args),*);
                (__value, move |__cotangent: #cotangent| {
                    let (#(#parts,)*) = __pullback(__cotangent);
                    #struct_name { #(#fields,)* }
                })
            }
        }
    };
    let text = format!(
        "{name}({})",
        args.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if rule_is_public_vjp {
        return quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types, dead_code)]
            #vis enum #name {}

            impl #name {
                #[doc(hidden)]
                #[inline]
                #[track_caller]
                #[allow(clippy::type_complexity, clippy::too_many_arguments)]
                #vis fn __stagegrad_vjp #impl_generics (#inputs) -> (#output, impl ::core::ops::Fn(#cotangent) -> (#(#tuple_types,)*) + use<#(#params),*>) #where_clause {
                    #path(#(#args),*)
                }
            }
        };
    }
    quote! {
        #public_items

        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #vis enum #name {}

        impl #name {
            #[doc(hidden)]
            #[inline]
            #[track_caller]
            #[allow(clippy::type_complexity, clippy::too_many_arguments)]
            #vis fn __stagegrad_vjp #impl_generics (#inputs) -> (#output, impl ::core::ops::Fn(#cotangent) -> (#(#tuple_types,)*) + use<#(#params),*>) #where_clause {
                #path(#(#args),*)
            }
        }

        #[doc = "Runs the function through its hand-written rule and records it as one stage."]
        #[allow(unused_variables)]
        #vis fn #trace_name #impl_generics (#inputs) -> #krate::Trace #where_clause {
            let mut __trace = #krate::Trace::new(#function_name);
            #(#inputs_record)*
            let (__value, __pullback) = #path(#(#args),*);
            let __node = __trace.record_stage(#function_name, #text, &[#(#locals),*], &__value);
            __trace.record_output(__node);
            if let ::core::option::Option::Some(__one) = #krate::__private::unit_cotangent(&__value) {
                __trace.record_adjoint(__node, &__one);
                let (#(#parts,)*) = __pullback(__one);
                #(#adjoints)*
            }
            __trace
        }
    }
}
