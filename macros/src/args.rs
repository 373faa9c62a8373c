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
}

const KEYS: &str = "`wrt(...)`, `vjp = path` and `crate = path`";

impl Options {
    /// Parses the attribute's arguments, rejecting unknown and repeated keys.
    pub fn parse(args: TokenStream) -> syn::Result<Options> {
        let mut options = Options::default();
        let parser = syn::meta::parser(|meta| options.parse_one(meta));
        syn::parse::Parser::parse2(parser, args)?;
        Ok(options)
    }

    fn parse_one(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        if meta.path.is_ident("wrt") {
            if self.wrt.is_some() {
                return Err(
                    meta.error("`wrt` is given twice; list every argument in one `wrt(...)`")
                );
            }
            let mut names = Vec::new();
            meta.parse_nested_meta(|inner| {
                match inner.path.get_ident() {
                    Some(ident) => names.push(ident.clone()),
                    None => return Err(inner.error("expected an argument name in `wrt(...)`")),
                }
                Ok(())
            })?;
            self.wrt = Some(names);
            Ok(())
        } else if meta.path.is_ident("vjp") {
            if self.vjp.is_some() {
                return Err(meta.error("`vjp` is given twice; keep one rule"));
            }
            self.vjp = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("crate") {
            if self.krate.is_some() {
                return Err(meta.error("`crate` is given twice; keep one path"));
            }
            self.krate = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            let name = quote::ToTokens::to_token_stream(&meta.path)
                .to_string()
                .replace(' ', "");
            Err(meta.error(format!("unknown option `{name}`; the options are {KEYS}")))
        }
    }
}
