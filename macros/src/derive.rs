//! `#[derive(Differentiable)]`: a struct of differentiable fields gets a tangent struct
//! with the same field names, the adjoint slot the reverse sweep fills field by field,
//! and the vector-space operations an optimiser needs.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Path};

pub fn expand(item: TokenStream) -> TokenStream {
    match try_expand(item) {
        Ok(tokens) => tokens,
        Err(error) => error.to_compile_error(),
    }
}

fn crate_path(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut krate = None;
    for attr in &input.attrs {
        if attr.path().is_ident("differentiable") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("crate") {
                    let path: Path = meta.value()?.parse()?;
                    krate = Some(path.to_token_stream());
                    Ok(())
                } else {
                    Err(meta.error("unknown option; the derive takes only `crate = path`"))
                }
            })?;
        }
    }
    Ok(krate.unwrap_or_else(|| quote!(::stagegrad)))
}

fn try_expand(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    let krate = crate_path(&input)?;
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(fields) => &fields.named,
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "`#[derive(Differentiable)]` needs named fields, so the gradient can name them; write `struct Name { field: Type, ... }`",
                ));
            }
        },
        Data::Enum(data) => {
            return Err(syn::Error::new(
                data.enum_token.span(),
                "`#[derive(Differentiable)]` supports structs only; an enum has no single tangent space",
            ));
        }
        Data::Union(data) => {
            return Err(syn::Error::new(
                data.union_token.span(),
                "`#[derive(Differentiable)]` supports structs only",
            ));
        }
    };
    let name = &input.ident;
    let vis = &input.vis;
    let tangent = format_ident!("{}Tangent", name);
    let slot = format_ident!("{}Slot", name);
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    let mut where_clause = where_clause
        .cloned()
        .unwrap_or_else(|| syn::parse_quote!(where));
    let differentiable = quote!(#krate::__private::Differentiable);
    let names: Vec<_> = fields
        .iter()
        .map(|field| field.ident.as_ref().expect("named fields"))
        .collect();
    let float_params: Vec<syn::Ident> = input
        .generics
        .type_params()
        .filter(|param| {
            param.bounds.iter().any(|bound| match bound {
                syn::TypeParamBound::Trait(bound) => {
                    bound.path.segments.last().is_some_and(|last| {
                        matches!(last.ident.to_string().as_str(), "Float" | "Scalar")
                    })
                }
                _ => false,
            })
        })
        .map(|param| param.ident.clone())
        .collect();
    let tangent_types: Vec<_> = fields
        .iter()
        .map(|field| crate::emit::tangent_type(&field.ty, &float_params, &krate))
        .collect();
    let types: Vec<_> = fields.iter().map(|field| &field.ty).collect();
    // A bound on a field whose tangent the macro names plainly (an array of `A: Scalar`)
    // would hide the impl from rustc's normalisation, so only other generic fields get one.
    if input.generics.type_params().next().is_some() {
        for (ty, tangent) in types.iter().zip(&tangent_types) {
            if tangent.to_string().starts_with('<') {
                where_clause
                    .predicates
                    .push(syn::parse_quote!(#ty: #differentiable));
            }
        }
    }
    let steps = fields.iter().map(|field| {
        let name = field.ident.as_ref().expect("named fields");
        if is_owned_array(&field.ty) {
            quote!(#krate::__private::step_array(&mut self.#name, &step.#name, scale);)
        } else {
            quote!(#differentiable::apply_step(&mut self.#name, &step.#name, scale);)
        }
    });
    let name_text: Vec<String> = names.iter().map(ToString::to_string).collect();
    let tangent_doc = format!("The gradient of a [`{name}`]: one tangent per field, same names.");
    let slot_doc =
        format!("The adjoint of a [`{name}`] during a reverse sweep, summed field by field.");
    let struct_name = name.to_string();
    let count = names.len();
    Ok(quote! {
        #[doc = #tangent_doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
        #vis struct #tangent #impl_generics #where_clause {
            #(
                #[doc = concat!("The gradient with respect to `", #name_text, "`.")]
                pub #names: #tangent_types,
            )*
        }

        #[doc = #slot_doc]
        #[doc(hidden)]
        #vis struct #slot #impl_generics #where_clause {
            #(pub #names: <#types as #differentiable>::Slot,)*
        }

        impl #impl_generics ::core::default::Default for #slot #type_generics #where_clause {
            fn default() -> Self {
                #slot { #(#names: ::core::default::Default::default(),)* }
            }
        }

        impl #impl_generics #krate::__private::Accumulate<#tangent #type_generics> for #slot #type_generics #where_clause {
            fn accumulate(&mut self, gradient: #tangent #type_generics) {
                #(#krate::__private::Accumulate::accumulate(&mut self.#names, gradient.#names);)*
            }
        }

        impl #impl_generics #krate::__private::Accumulate<#krate::__private::NoTangent> for #slot #type_generics #where_clause {
            fn accumulate(&mut self, _gradient: #krate::__private::NoTangent) {}
        }

        impl #impl_generics #differentiable for #name #type_generics #where_clause {
            type Tangent = #tangent #type_generics;
            type Slot = #slot #type_generics;

            fn zero_tangent(&self) -> Self::Tangent {
                #tangent { #(#names: #differentiable::zero_tangent(&self.#names),)* }
            }

            fn finish(&self, slot: Self::Slot) -> Self::Tangent {
                #tangent { #(#names: #differentiable::finish(&self.#names, slot.#names),)* }
            }

            fn apply_step(&mut self, step: &Self::Tangent, scale: f64) {
                #(#steps)*
            }
        }

        impl #impl_generics #krate::TangentSpace for #tangent #type_generics #where_clause {
            fn add_assign(&mut self, other: &Self) {
                #(#krate::TangentSpace::add_assign(&mut self.#names, &other.#names);)*
            }

            fn scale(&mut self, factor: f64) {
                #(#krate::TangentSpace::scale(&mut self.#names, factor);)*
            }

            fn axpy(&mut self, alpha: f64, x: &Self) {
                #(#krate::TangentSpace::axpy(&mut self.#names, alpha, &x.#names);)*
            }

            fn dot(&self, other: &Self) -> f64 {
                0.0 #(+ #krate::TangentSpace::dot(&self.#names, &other.#names))*
            }

            fn zip_map(&mut self, other: &Self, f: &mut dyn ::core::ops::FnMut(f64, f64) -> f64) {
                #(#krate::TangentSpace::zip_map(&mut self.#names, &other.#names, f);)*
            }

            fn len(&self) -> usize {
                0 #(+ #krate::TangentSpace::len(&self.#names))*
            }
        }

        impl #impl_generics #krate::__private::Summarize for #name #type_generics #where_clause {
            fn summarize(&self) -> #krate::trace::Summary {
                #krate::trace::Summary::Other(::std::format!("{} with {} fields", #struct_name, #count))
            }
        }

        impl #impl_generics #krate::__private::Summarize for #tangent #type_generics #where_clause {
            fn summarize(&self) -> #krate::trace::Summary {
                #krate::trace::Summary::Other(::std::format!(
                    "gradient of {} with norm {}",
                    #struct_name,
                    #krate::trace::format_number(#krate::TangentSpace::norm(self))
                ))
            }
        }
    })
}

/// Returns whether `ty` names an owned ndarray array (`Array`, `Array1` .. `Array6`, `ArrayD`),
/// which steps in place; other array storages cannot be written to.
fn is_owned_array(ty: &syn::Type) -> bool {
    let syn::Type::Path(path) = ty else {
        return false;
    };
    path.path.segments.last().is_some_and(|last| {
        let name = last.ident.to_string();
        name == "Array"
            || name == "ArrayD"
            || (name.len() == 6 && name.starts_with("Array") && name.as_bytes()[5].is_ascii_digit())
    })
}
