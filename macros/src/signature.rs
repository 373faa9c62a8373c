//! Reads a function's signature: which arguments are differentiated, how they are
//! passed, and whether the result is a scalar.

use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, Ident, ItemFn, Pat, ReturnType, Type, TypeParamBound};

use crate::args::Options;

/// The way an argument reaches the function.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Passing {
    /// By value: `x: f64`, `x: Array2<f64>`.
    Value,
    /// By shared reference: `x: &Array2<f64>`.
    Reference,
    /// An ndarray view by value, which borrows like a reference.
    View,
}

/// One argument of the differentiated function.
pub struct Arg {
    pub ident: Ident,
    pub ty: Type,
    pub passing: Passing,
    /// Whether the gradient includes this argument: its type has a tangent and `wrt`,
    /// where given, names it.
    pub differentiated: bool,
}

/// The parts of a signature the code generator needs.
pub struct Signature {
    pub args: Vec<Arg>,
    pub output: Type,
    /// Whether the result is `f32`, `f64` or a float type parameter, so `f_grad` exists.
    pub scalar_output: bool,
    /// Type parameters bounded by `Float` (or the runtime's `Scalar`).
    pub float_params: Vec<Ident>,
}

/// Integer, boolean and text types, and the runtime's settings types: constants of the
/// function whatever `wrt` lists.
fn is_constant_type(ty: &Type) -> bool {
    match ty {
        Type::Reference(reference) => is_constant_type(&reference.elem),
        Type::Slice(slice) => is_constant_type(&slice.elem),
        Type::Array(array) => is_constant_type(&array.elem),
        Type::Tuple(tuple) => tuple.elems.iter().all(is_constant_type),
        Type::Path(path) => {
            let Some(last) = path.path.segments.last() else {
                return false;
            };
            let name = last.ident.to_string();
            matches!(
                name.as_str(),
                "bool"
                    | "char"
                    | "str"
                    | "String"
                    | "u8"
                    | "u16"
                    | "u32"
                    | "u64"
                    | "u128"
                    | "usize"
                    | "i8"
                    | "i16"
                    | "i32"
                    | "i64"
                    | "i128"
                    | "isize"
                    | "Axis"
                    | "Padding"
                    | "PaddingMode"
                    | "NoTangent"
            ) || name.ends_with("Settings")
                || (name == "Vec" && generic_args_all_constant(&last.arguments))
        }
        _ => false,
    }
}

fn generic_args_all_constant(arguments: &syn::PathArguments) -> bool {
    match arguments {
        syn::PathArguments::AngleBracketed(angle) => {
            angle.args.iter().all(|argument| match argument {
                syn::GenericArgument::Type(ty) => is_constant_type(ty),
                _ => true,
            })
        }
        _ => false,
    }
}

fn is_view_type(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident.to_string().starts_with("ArrayView")),
        _ => false,
    }
}

/// Returns whether `ty` is `f32`, `f64` or one of `float_params`.
pub fn is_scalar_type(ty: &Type, float_params: &[Ident]) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.get_ident().is_some_and(|ident| {
            ident == "f32" || ident == "f64" || float_params.iter().any(|param| param == ident)
        }),
        Type::Paren(paren) => is_scalar_type(&paren.elem, float_params),
        _ => false,
    }
}

fn float_params(function: &ItemFn) -> Vec<Ident> {
    let mut params = Vec::new();
    let is_float_bound = |bound: &TypeParamBound| match bound {
        TypeParamBound::Trait(bound) => bound.path.segments.last().is_some_and(|last| {
            matches!(
                last.ident.to_string().as_str(),
                "Float" | "FloatCore" | "Real" | "Scalar"
            )
        }),
        _ => false,
    };
    for param in &function.sig.generics.params {
        if let GenericParam::Type(param) = param {
            if param.bounds.iter().any(is_float_bound) {
                params.push(param.ident.clone());
            }
        }
    }
    if let Some(where_clause) = &function.sig.generics.where_clause {
        for predicate in &where_clause.predicates {
            if let syn::WherePredicate::Type(predicate) = predicate {
                if let Type::Path(path) = &predicate.bounded_ty {
                    if let Some(ident) = path.path.get_ident() {
                        if predicate.bounds.iter().any(is_float_bound) && !params.contains(ident) {
                            params.push(ident.clone());
                        }
                    }
                }
            }
        }
    }
    params
}

/// Reads the signature, collecting every problem into `errors`.
pub fn read(
    function: &ItemFn,
    options: &Options,
    errors: &mut Vec<syn::Error>,
) -> Option<Signature> {
    let sig = &function.sig;
    let errors_before = errors.len();
    if let Some(asyncness) = &sig.asyncness {
        errors.push(syn::Error::new(
            asyncness.span(),
            "an `async fn` cannot be differentiable; differentiate a plain function and call it from the async one",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new(
            variadic.span(),
            "variadic functions cannot be differentiable",
        ));
    }
    let float_params = float_params(function);
    let mut args = Vec::new();
    let mut ok = true;
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                errors.push(syn::Error::new(
                    receiver.self_token.span(),
                    "methods with a `self` receiver are not supported yet; write a free function that takes the value as an argument, e.g. `fn loss(model: &Model, ...)`",
                ));
                ok = false;
            }
            FnArg::Typed(typed) => {
                let Pat::Ident(pat) = &*typed.pat else {
                    errors.push(syn::Error::new(
                        typed.pat.span(),
                        "patterns in arguments are not supported; bind the argument to a name and destructure it in the body",
                    ));
                    ok = false;
                    continue;
                };
                if let Some(by_ref) = &pat.by_ref {
                    errors.push(syn::Error::new(
                        by_ref.span(),
                        "`ref` arguments are not supported; take `&T` instead",
                    ));
                    ok = false;
                }
                let ty = (*typed.ty).clone();
                let passing = match &ty {
                    Type::Reference(reference) => {
                        if let Some(mutability) = &reference.mutability {
                            errors.push(syn::Error::new(
                                mutability.span(),
                                "`&mut` arguments are not supported in a differentiable function; take `&T` or `T` and return the new value",
                            ));
                            ok = false;
                        }
                        Passing::Reference
                    }
                    ty if is_view_type(ty) => Passing::View,
                    _ => Passing::Value,
                };
                let listed = options
                    .wrt
                    .as_ref()
                    .is_none_or(|names| names.iter().any(|name| name == &pat.ident));
                args.push(Arg {
                    ident: pat.ident.clone(),
                    differentiated: listed && !is_constant_type(&ty),
                    ty,
                    passing,
                });
            }
        }
    }
    if let Some(names) = &options.wrt {
        for name in names {
            match args.iter().find(|arg| &arg.ident == name) {
                None => errors.push(syn::Error::new(
                    name.span(),
                    format!(
                        "`wrt` names `{name}`, which is not an argument of `{}`; the arguments are {}",
                        sig.ident,
                        list_names(&args)
                    ),
                )),
                Some(arg) if is_constant_type(&arg.ty) => errors.push(syn::Error::new(
                    name.span(),
                    format!("`{name}` has a type with no tangent, so it cannot be in `wrt`; remove it"),
                )),
                Some(_) => {}
            }
        }
    }
    let output = match &sig.output {
        ReturnType::Default => {
            errors.push(syn::Error::new(
                sig.paren_token.span.close(),
                "a differentiable function must return a value; add a return type such as `-> f64`",
            ));
            return None;
        }
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    if is_constant_type(&output) {
        errors.push(syn::Error::new(
            output.span(),
            "the return type has no tangent, so nothing can be differentiated; return `f32`, `f64`, an array or a `#[derive(Differentiable)]` struct",
        ));
        ok = false;
    }
    if !args.iter().any(|arg| arg.differentiated) && errors.len() == errors_before {
        errors.push(syn::Error::new(
            sig.inputs.span(),
            "no argument has a tangent, so there is nothing to differentiate; take at least one `f32`, `f64` or array argument",
        ));
    }
    let scalar_output = is_scalar_type(&output, &float_params);
    ok.then_some(Signature {
        args,
        output,
        scalar_output,
        float_params,
    })
}

fn list_names(args: &[Arg]) -> String {
    if args.is_empty() {
        return "none".to_owned();
    }
    args.iter()
        .map(|arg| format!("`{}`", arg.ident))
        .collect::<Vec<_>>()
        .join(", ")
}
