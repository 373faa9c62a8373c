//! The `#[differentiable]` attribute and `#[derive(Differentiable)]` of stagegrad.
//!
//! The entry points only hand token streams to plain functions (`expand`,
//! `derive::expand`), so the transformation can be tested without a compiler in the
//! loop, as the unit tests at the end of this file do. Users depend on the `stagegrad`
//! crate, which documents both macros.

mod args;
mod derive;
mod emit;
mod lower;
mod rule;
mod signature;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ItemFn;

/// Differentiates a function at compile time.
///
/// ```ignore
/// use stagegrad::differentiable;
///
/// #[differentiable]
/// fn f(x: f64, y: f64, z: f64) -> f64 {
///     let g = x + y;
///     g * z
/// }
///
/// assert_eq!(f_grad(-2.0, 5.0, -4.0), (-12.0, FGrad { x: -4.0, y: -4.0, z: 3.0 }));
/// ```
///
/// Next to the unchanged `f`, with the same visibility, the macro adds:
///
/// - `f_grad(args) -> (value, FGrad)`, for an `f32`, `f64` or float-generic result;
/// - `f_vjp(args) -> (value, impl Fn(cotangent) -> FGrad)`, for any result; the
///   pullback owns what it needs and can be called more than once;
/// - `f_trace(args) -> Trace`, every stage with its value, local derivatives and adjoint;
/// - `struct FGrad { x, y, z }`, one field per differentiated argument (generic when `f`
///   is), deriving `Debug`, `Clone` and `PartialEq`;
/// - a hidden item named `f` in the type namespace, through which other differentiable
///   functions call `f`'s pullback.
///
/// # Options
///
/// - `#[differentiable(wrt(x, y))]`: differentiate only these arguments.
/// - `#[differentiable(vjp = path)]`: use a hand-written rule. `path` takes the
///   function's arguments and returns `(value, pullback)`. The pullback maps the
///   result's cotangent to a tuple with one tangent per argument (`NoTangent` for
///   constants). It must own what it keeps, so its type ends in `+ use<..>` listing
///   only type parameters:
///
///   ```ignore
///   fn square_rule(x: &Array1<f64>) -> (f64, impl Fn(f64) -> (Array1<f64>,) + use<>) {
///       let saved = x.clone();
///       (x.dot(x), move |cotangent| (saved.mapv(|v| 2.0 * v * cotangent),))
///   }
///
///   #[differentiable(vjp = square_rule)]
///   fn square(x: &Array1<f64>) -> f64 {
///       x.dot(x)
///   }
///   ```
/// - `#[differentiable(crate = path)]`: where the runtime is, `::stagegrad` by default.
///
/// # Errors
///
/// Unsupported constructs (`while`, `loop`, `match`, closures, macro calls, `break`,
/// methods without a rule) are compile errors on the token concerned, all reported in
/// one compile; the generated items are still emitted as stubs so that callers of
/// `f_grad` see no second error.
#[proc_macro_attribute]
pub fn differentiable(
    args: proc_macro::TokenStream,
    item: proc_macro::TokenStream,
) -> proc_macro::TokenStream {
    expand(args.into(), item.into()).into()
}

/// Derives `Differentiable` for a struct of differentiable fields.
///
/// ```ignore
/// #[derive(stagegrad::Differentiable, Clone, Debug)]
/// struct Mlp {
///     w1: Array2<f64>,
///     b1: Array1<f64>,
/// }
/// ```
///
/// generates `struct MlpTangent { w1: Array2<f64>, b1: Array1<f64> }`, with the same
/// field names and deriving `Debug`, `Clone` and `PartialEq`. It also implements the
/// `TangentSpace` operations an optimiser needs (add, scale, axpy, dot, norm), and a
/// hidden slot type that a reverse sweep fills field by field, so `model.w1` in a
/// differentiable function accumulates into `w1`'s gradient. An optimiser can step
/// owned array fields (`Array1`, ..., `ArrayD`) and scalars. Fields must be flat,
/// because a vector of layers has no tangent. A struct passed by reference to a differentiable function
/// that another one calls must also derive `Clone`.
///
/// `#[differentiable(crate = path)]` on the struct names the runtime's path,
/// `::stagegrad` by default.
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
            let span = item
                .clone()
                .into_iter()
                .next()
                .map_or_else(proc_macro2::Span::call_site, |token| token.span());
            let error = syn::Error::new(
                span,
                "`#[differentiable]` applies to free functions only; put it on a `fn` item, or use `#[derive(Differentiable)]` on a struct",
            )
            .to_compile_error();
            return quote!(#item #error);
        }
    };
    let mut errors = Vec::new();
    let mut options = match args::Options::parse(args) {
        Ok(options) => options,
        Err(error) => {
            errors.push(error);
            args::Options::default()
        }
    };
    errors.append(&mut options.errors);
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
        return finish(quote!(#[allow(dead_code)] #function #generated), errors);
    }
    let body = lower::lower(
        &function.block,
        &signature,
        &function.sig.ident,
        &krate,
        &mut errors,
    );
    let generated = generated_items(&context, body.as_ref());
    // The function is used through its generated items even where nothing calls it.
    finish(quote!(#[allow(dead_code)] #function #generated), errors)
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
    let inputs = context.inputs();
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
            (::core::unreachable!(), |_: <#output as #krate::__private::Differentiable>::Tangent| -> #grad_type { ::core::unreachable!() })
        }
    }
}

fn finish(tokens: TokenStream, errors: Vec<syn::Error>) -> TokenStream {
    let errors = errors.into_iter().map(|error| error.to_compile_error());
    quote!(#tokens #(#errors)*)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(source: &str) -> Vec<String> {
        let function: ItemFn = syn::parse_str(source).expect("test source parses");
        let options = args::Options::default();
        let mut errors = Vec::new();
        let signature = signature::read(&function, &options, &mut errors).expect("signature reads");
        let body = lower::lower(
            &function.block,
            &signature,
            &function.sig.ident,
            &quote!(::stagegrad),
            &mut errors,
        )
        .expect("body lowers");
        assert!(errors.is_empty());
        emit::describe(&body)
    }

    fn error_messages(args: &str, source: &str) -> Vec<String> {
        let tokens = expand(
            args.parse().expect("args parse"),
            source.parse().expect("source parses"),
        );
        let text = tokens.to_string();
        text.match_indices("compile_error")
            .map(|(at, _)| {
                let rest = &text[at..];
                let start = rest.find('"').expect("a message") + 1;
                let end = rest[start..].find('"').expect("a closing quote") + start;
                rest[start..end].to_owned()
            })
            .collect()
    }

    #[test]
    fn design_example_stages() {
        let stages = stages("fn f(x: f64, y: f64, z: f64) -> f64 { let g = x + y; g * z }");
        assert_eq!(stages, ["g = x + y", "f = g * z", "output f"]);
    }

    #[test]
    fn nested_expression_temporaries() {
        let stages = stages("fn f(x: f64, y: f64) -> f64 { (x * y).sin() + x.exp() / 2.0 }");
        assert_eq!(
            stages,
            [
                "t1 = x * y",
                "t2 = t1.sin()",
                "t3 = x.exp()",
                "t4 = t3 / 2.0",
                "f = t2 + t4",
                "output f"
            ]
        );
    }

    #[test]
    fn shadowing_and_compound_assignment() {
        let stages = stages(
            "fn f(x: f64) -> f64 { let a = x * x; let a = a.exp() + a; let mut b = a; b += x; b }",
        );
        assert_eq!(
            stages,
            [
                "a = x * x",
                "t2 = a.exp()",
                "a = t2 + a",
                "b = a + x",
                "f = b",
                "output f"
            ]
        );
    }

    #[test]
    fn constants_are_one_stage() {
        let stages = stages("fn f(x: f64, n: i32) -> f64 { let c = 2.0 * 3.0; x.powi(n + 1) * c }");
        assert_eq!(
            stages,
            [
                "c = 2.0 * 3.0",
                "t1 = x.powi(n + 1)",
                "f = t1 * c",
                "output f"
            ]
        );
    }

    #[test]
    fn every_unsupported_construct_reported_once() {
        let messages = error_messages(
            "",
            "fn f(x: f64) -> f64 { while x > 0.0 {} let y = match x { _ => x }; println!(\"{}\", x); x }",
        );
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].starts_with("`while` loops are not supported"));
        assert!(messages[1].starts_with("`match` is not supported"));
        assert!(messages[2].starts_with("macro calls are not supported"));
    }

    #[test]
    fn unknown_option_lists_the_valid_ones() {
        let messages = error_messages("speed = 3", "fn f(x: f64) -> f64 { x }");
        assert_eq!(
            messages,
            ["unknown option `speed`; the options are `wrt(...)`, `vjp = path` and `crate = path`"]
        );
    }

    #[test]
    fn options_after_a_mistake_still_apply() {
        let messages = error_messages(
            "speed = 3, wrt(x), wrt(y)",
            "fn f(x: f64, y: f64) -> f64 { x * y }",
        );
        assert_eq!(
            messages,
            [
                "unknown option `speed`; the options are `wrt(...)`, `vjp = path` and `crate = path`",
                "`wrt` is given twice; list every argument in one `wrt(...)`",
            ]
        );
        let tokens = expand(
            "speed = 3, wrt(x)".parse().unwrap(),
            "fn f(x: f64, y: f64) -> f64 { x * y }".parse().unwrap(),
        );
        let text = tokens.to_string();
        let grad_struct = &text[text.find("struct FGrad").expect("the struct is emitted")..];
        let fields = &grad_struct[..grad_struct.find('}').expect("the struct closes")];
        assert!(fields.contains("pub x"), "{fields}");
        assert!(!fields.contains("pub y"), "{fields}");
    }

    #[test]
    fn wrt_names_a_missing_argument() {
        let messages = error_messages("wrt(q)", "fn f(x: f64) -> f64 { x }");
        assert_eq!(
            messages,
            ["`wrt` names `q`, which is not an argument of `f`; the arguments are `x`"]
        );
    }

    #[test]
    fn malformed_input_never_panics() {
        let sources = [
            "struct S;",
            "fn f() {}",
            "fn f(self) -> f64 { 1.0 }",
            "fn f(x: f64) -> f64 { }",
            "fn f(x: f64) -> f64 { x; }",
            "fn f(x: f64) -> f64 { return; }",
            "fn f(x: f64) -> f64 { let (a, b) = (x, x); a }",
            "fn f(x: f64) -> f64 { x.unknown(1, 2) }",
            "fn f(x: f64) -> f64 { x[0] + |y| y }",
            "fn f(x: &mut f64) -> usize { 1 }",
            "fn f((a, b): (f64, f64)) -> f64 { a }",
            "async fn f(x: f64) -> f64 { x }",
            "fn f(x: f64) -> f64 { x.powi(x) }",
            "fn f(x: f64) -> f64 { let y; y }",
            "fn f(x: f64) -> f64 { x.mul_add(1.0) }",
            "fn f(x: f64) -> f64 { g(x)(x) }",
        ];
        for source in sources {
            for args in ["", "wrt(x)", "vjp = r", "wrt(", "crate"] {
                let (Ok(args), Ok(item)) =
                    (args.parse::<TokenStream>(), source.parse::<TokenStream>())
                else {
                    continue;
                };
                let _ = expand(args, item);
            }
        }
    }
}
