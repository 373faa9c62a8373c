//! The options of `#[differentiable(...)]`.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::{Ident, Path};

/// The parsed options, each with the span of where the user wrote it.
#[derive(Default)]
pub struct Options {
    /// `wrt(x, y)`: the only arguments to differentiate.
    pub wrt: Option<Vec<Ident>>,
    /// `vjp = path`: a hand-written rule.
    pub vjp: Option<Path>,
    /// `crate = path`: where the runtime is, `::stagegrad` by default.
    pub krate: Option<Path>,
    /// Unknown and repeated options. Parsing goes on after each, so the options after
    /// a mistake still apply.
    pub errors: Vec<syn::Error>,
}

const KEYS: &str = "`wrt(...)`, `vjp = path` and `crate = path`";

impl Options {
    /// Parses the attribute's arguments; unknown and repeated keys go to `errors`.
    pub fn parse(args: TokenStream) -> syn::Result<Options> {
        let mut options = Options::default();
        let parser = syn::meta::parser(|meta| options.parse_one(meta));
        syn::parse::Parser::parse2(parser, args)?;
        Ok(options)
    }

    fn parse_one(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let name = quote::ToTokens::to_token_stream(&meta.path)
            .to_string()
            .replace(' ', "");
        let repeated = match name.as_str() {
            "wrt" => self.wrt.is_some(),
            "vjp" => self.vjp.is_some(),
            "crate" => self.krate.is_some(),
            _ => {
                self.errors
                    .push(meta.error(format!("unknown option `{name}`; the options are {KEYS}")));
                return skip_value(&meta);
            }
        };
        if repeated {
            let advice = if name == "wrt" {
                "list every argument in one `wrt(...)`"
            } else {
                "keep one"
            };
            self.errors
                .push(meta.error(format!("`{name}` is given twice; {advice}")));
            return skip_value(&meta);
        }
        match name.as_str() {
            "wrt" => {
                let mut names = Vec::new();
                meta.parse_nested_meta(|inner| {
                    match inner.path.get_ident() {
                        Some(ident) => names.push(ident.clone()),
                        None => return Err(inner.error("expected an argument name in `wrt(...)`")),
                    }
                    Ok(())
                })?;
                self.wrt = Some(names);
            }
            "vjp" => self.vjp = Some(meta.value()?.parse()?),
            _ => self.krate = Some(meta.value()?.parse()?),
        }
        Ok(())
    }
}

/// Skips the value of a rejected option: `= expr` or `(...)`.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.input.parse::<proc_macro2::Group>()?;
    }
    Ok(())
}
