//! Text and DOT renderings of a trace, and the view of the trace that every rendering
//! shares: unique display names, the graph's edges and the chain rule in symbols.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::path::Path;
use std::{fs, io};

use super::summary::format_number;
use super::{NodeKind, Summary, Trace};

/// The colour of gradients in the DOT graph; forward values are black.
const DOT_GRADIENT_COLOR: &str = "blue";

impl Trace {
    /// Renders the table of nodes: stage, expression, value, local derivatives and
    /// adjoint, one row per input or stage in evaluation order.
    ///
    /// A local derivative reads `dg/dx = symbol = value`, where the value is left out
    /// when it was not recorded or reads the same as the symbol. Arrays show their shape
    /// and statistics. A `note` column follows when any stage carries a note. A name bound
    /// more than once (a shadowed `let`, a loop) gets `#2`, `#3`, ... from its second
    /// binding on.
    ///
    /// ```
    /// # let mut trace = stagegrad_runtime::Trace::new("f");
    /// # let x = trace.record_input("x", &-2.0);
    /// # let y = trace.record_input("y", &5.0);
    /// # let g = trace.record_stage("g", "x + y", &[(x, "1"), (y, "1")], &3.0);
    /// # trace.record_local(g, 0, Some(&1.0));
    /// # trace.record_local(g, 1, Some(&1.0));
    /// # trace.record_adjoint(g, &1.0);
    /// # trace.record_adjoint(x, &1.0);
    /// # trace.record_adjoint(y, &1.0);
    /// # trace.record_output(g);
    /// // the trace of `fn f(x: f64, y: f64) -> f64 { let g = x + y; g }` at (-2, 5)
    /// assert_eq!(
    ///     trace.table(),
    ///     "\
    /// stage  expression  value  local derivatives     adjoint
    /// -----  ----------  -----  --------------------  -------
    /// x                  -2                           1
    /// y                  5                            1
    /// g      x + y       3      dg/dx = 1, dg/dy = 1  1
    /// "
    /// );
    /// ```
    pub fn table(&self) -> String {
        let view = View::new(self);
        let with_notes = self.nodes.iter().any(|node| node.note.is_some());
        let mut header = vec![
            "stage",
            "expression",
            "value",
            "local derivatives",
            "adjoint",
        ];
        if with_notes {
            header.push("note");
        }
        let mut rows = vec![
            header
                .iter()
                .map(|title| title.to_string())
                .collect::<Vec<_>>(),
        ];
        for (index, node) in self.nodes.iter().enumerate() {
            let locals = (0..node.locals.len())
                .map(|position| view.local_text(index, position))
                .collect::<Vec<_>>()
                .join(", ");
            let mut row = vec![
                view.names[index].clone(),
                view.expression(index),
                node.value.to_string(),
                locals,
                node.adjoint
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ];
            if with_notes {
                row.push(node.note.clone().unwrap_or_default());
            }
            rows.push(row);
        }
        align_columns(&rows)
    }

    /// Renders the staged decomposition, one line per stage in evaluation order:
    /// `g = x + y = 3`, followed by the stage's note in parentheses where it has one.
    pub fn forward_steps(&self) -> String {
        let view = View::new(self);
        let mut out = String::new();
        for (index, node) in self.nodes.iter().enumerate() {
            if node.kind != NodeKind::Stage {
                continue;
            }
            let expression = view.expression(index);
            let _ = write!(out, "{}", view.names[index]);
            if !expression.is_empty() {
                let _ = write!(out, " = {expression}");
            }
            let _ = write!(out, " = {}", node.value);
            if let Some(note) = &node.note {
                let _ = write!(out, "  ({note})");
            }
            out.push('\n');
        }
        out
    }

    /// Renders the backward steps in symbols, from the output back to the inputs.
    ///
    /// Each line applies the chain rule to one node `v`, summing over the stages `s` that
    /// use it: `df/dv = ds/dv * df/ds + ...`, then the same sum with every local
    /// derivative replaced by its symbol, then the recorded adjoint. A local derivative of
    /// 1 simplifies away, and a stage that is the output contributes its local derivative
    /// alone. For `f(x, y, z)` with `g = x + y` and `f = g * z` at (-2, 5, -4):
    ///
    /// ```text
    /// df/df = 1
    /// df/dz = g = 3
    /// df/dg = z = -4
    /// df/dx = dg/dx * df/dg = df/dg = -4
    /// df/dy = dg/dy * df/dg = df/dg = -4
    /// ```
    ///
    /// A node's line comes after the lines of all the stages that use it, lowest node
    /// first among those ready. Stages that do not lead to the output are left out, and
    /// an input that does not reach it reads `df/dv = 0`. For arrays, `*` stands for the
    /// derivative rule applied to the adjoint (a vector-Jacobian product), not for an
    /// element-wise product. Returns an empty string when no output was recorded.
    pub fn backward_steps(&self) -> String {
        let Some(output) = self.output else {
            return String::new();
        };
        let view = View::new(self);
        let mut out = String::new();
        for index in view.backward_order(output) {
            out.push_str(&view.backward_line(index, output));
            out.push('\n');
        }
        for (index, node) in self.nodes.iter().enumerate() {
            if node.kind == NodeKind::Input && !view.reaches_output[index] {
                let lhs = view.gradient_name(index);
                let forms = [lhs, "0".to_owned(), adjoint_text(node.adjoint.as_ref())];
                out.push_str(&join_forms(&forms));
                out.push('\n');
            }
        }
        out
    }

    /// Renders the graph as Graphviz DOT: one node per input or stage and an edge from each
    /// operand to the stage that uses it. Forward values are black. Gradients are blue:
    /// each node's adjoint, and on each edge the part of it that flows back along that edge.
    ///
    /// Labels are HTML-like, with `&`, `<`, `>` and `"` escaped. The output node has a
    /// double border. `dot -Tsvg trace.dot -o trace.svg` draws it; [`Trace::to_svg`]
    /// draws a similar picture without Graphviz.
    pub fn to_dot(&self) -> String {
        let view = View::new(self);
        let mut out = String::new();
        let _ = writeln!(out, "digraph \"{}\" {{", escape_dot_string(&self.function));
        let _ = writeln!(
            out,
            "  graph [rankdir=LR, labelloc=t, fontname=\"Helvetica\", label=<trace of <b>{}</b>: \
             values in black, <font color=\"{DOT_GRADIENT_COLOR}\">gradients in blue</font>>];",
            escape_html(&self.function)
        );
        let _ = writeln!(
            out,
            "  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=11];"
        );
        let _ = writeln!(
            out,
            "  edge [color=\"gray40\", fontname=\"Helvetica\", fontsize=10];"
        );
        for index in 0..self.nodes.len() {
            let text = view.node_text(index);
            let mut label = format!("<b>{}</b>", escape_html(&text.name));
            if let Some(expression) = &text.expression {
                let _ = write!(label, " = {}", escape_html(expression));
            }
            let _ = write!(
                label,
                "<br/><font color=\"black\">{}</font>",
                escape_html(&text.value)
            );
            if let Some(gradient) = &text.gradient {
                let _ = write!(
                    label,
                    "<br/><font color=\"{DOT_GRADIENT_COLOR}\">{}</font>",
                    escape_html(gradient)
                );
            }
            if let Some(note) = &text.note {
                let _ = write!(
                    label,
                    "<br/><font color=\"gray40\"><i>{}</i></font>",
                    escape_html(note)
                );
            }
            let mut attributes = String::new();
            if self.nodes[index].kind == NodeKind::Input {
                attributes.push_str("shape=ellipse, ");
            }
            if self.output == Some(index) {
                attributes.push_str("peripheries=2, ");
            }
            let _ = writeln!(out, "  n{index} [{attributes}label=<{label}>];");
        }
        for edge in &view.edges {
            let _ = write!(out, "  n{} -> n{}", edge.from, edge.to);
            match view.edge_gradient(edge) {
                Some(gradient) => {
                    let _ = writeln!(
                        out,
                        " [label=\"{}\", fontcolor=\"{DOT_GRADIENT_COLOR}\"];",
                        escape_dot_string(&gradient)
                    );
                }
                None => out.push_str(";\n"),
            }
        }
        out.push_str("}\n");
        out
    }

    /// Renders the graph as a standalone SVG image, laid out without Graphviz: layers run
    /// left to right by the longest path from the inputs, forward values in black and
    /// gradients in blue, as in [`Trace::to_dot`].
    pub fn to_svg(&self) -> String {
        super::svg::render(&View::new(self))
    }

    /// Writes [`Trace::to_dot`] to the file `path`.
    ///
    /// # Errors
    ///
    /// Returns the error of creating or writing the file.
    pub fn write_dot(&self, path: impl AsRef<Path>) -> io::Result<()> {
        fs::write(path, self.to_dot())
    }

    /// Writes [`Trace::to_svg`] to the file `path`.
    ///
    /// # Errors
    ///
    /// Returns the error of creating or writing the file.
    pub fn write_svg(&self, path: impl AsRef<Path>) -> io::Result<()> {
        fs::write(path, self.to_svg())
    }
}

/// Prints a heading with the function's name, then its inputs, the forward steps, the
/// backward steps and the table. Sections with nothing to show are left out.
impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let view = View::new(self);
        let mut inputs = String::new();
        for (index, node) in self.nodes.iter().enumerate() {
            if node.kind == NodeKind::Input {
                let _ = writeln!(inputs, "{} = {}", view.names[index], node.value);
            }
        }
        let sections = [
            ("inputs", inputs),
            ("forward steps", self.forward_steps()),
            ("backward steps", self.backward_steps()),
            ("table", self.table()),
        ];
        write!(f, "trace of {}", self.function)?;
        for (title, body) in sections {
            if body.is_empty() {
                continue;
            }
            write!(f, "\n\n{title}")?;
            for line in body.lines() {
                write!(f, "\n  {line}")?;
            }
        }
        writeln!(f)
    }
}

/// An edge of the computation graph: node `from` is an operand of stage `to`, through
/// the stage's local derivative at position `local`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Edge {
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) local: usize,
}

/// The text of one node in a graph: its name, expression, value, gradient and note.
pub(super) struct NodeText {
    pub(super) name: String,
    /// The expression, for a stage that has one.
    pub(super) expression: Option<String>,
    pub(super) value: String,
    /// The adjoint as `df/dg = -4`, where one was recorded.
    pub(super) gradient: Option<String>,
    pub(super) note: Option<String>,
}

/// A trace prepared for rendering.
pub(super) struct View<'a> {
    pub(super) trace: &'a Trace,
    /// One name per node, unique: a name bound more than once gets `#2`, `#3`, ... from
    /// its second binding on.
    pub(super) names: Vec<String>,
    /// The edges, ordered by stage, then by operand position. A local derivative whose
    /// operand does not come before its stage cannot be a forward edge and gets none.
    pub(super) edges: Vec<Edge>,
    /// Whether each node lies on a path to the output; true for the output itself.
    pub(super) reaches_output: Vec<bool>,
}

impl<'a> View<'a> {
    pub(super) fn new(trace: &'a Trace) -> Self {
        let nodes = &trace.nodes;
        let mut seen = std::collections::HashMap::<&str, usize>::new();
        let names = nodes
            .iter()
            .map(|node| {
                let count = seen.entry(node.name.as_str()).or_insert(0);
                *count += 1;
                if *count == 1 {
                    node.name.clone()
                } else {
                    format!("{}#{count}", node.name)
                }
            })
            .collect();

        let mut edges = Vec::new();
        for (to, node) in nodes.iter().enumerate() {
            for (local, derivative) in node.locals.iter().enumerate() {
                if derivative.operand < to {
                    edges.push(Edge {
                        from: derivative.operand,
                        to,
                        local,
                    });
                }
            }
        }

        // Every edge points to a later node, so walking the edges from the last stage back
        // settles a stage before any edge out of one of its operands is looked at.
        let mut reaches_output = vec![false; nodes.len()];
        if let Some(output) = trace.output {
            reaches_output[output] = true;
        }
        for edge in edges.iter().rev() {
            if reaches_output[edge.to] {
                reaches_output[edge.from] = true;
            }
        }

        View {
            trace,
            names,
            edges,
            reaches_output,
        }
    }

    /// Returns the display name of node `index`, or `?` for an index past the last node.
    fn name_of(&self, index: usize) -> &str {
        self.names.get(index).map_or("?", String::as_str)
    }

    /// Returns `df/dv` for node `index`, with the function's name as `f`.
    pub(super) fn gradient_name(&self, index: usize) -> String {
        format!("d{}/d{}", self.trace.function, self.name_of(index))
    }

    /// Returns the expression of node `index` with its operands under their display
    /// names; empty for an input.
    pub(super) fn expression(&self, index: usize) -> String {
        self.rename_operands(index, &self.trace.nodes[index].expression)
    }

    /// Returns the text of node `index` for a graph.
    pub(super) fn node_text(&self, index: usize) -> NodeText {
        let node = &self.trace.nodes[index];
        let expression = self.expression(index);
        NodeText {
            name: self.names[index].clone(),
            expression: (!expression.is_empty()).then_some(expression),
            value: node.value.to_string(),
            gradient: node
                .adjoint
                .as_ref()
                .map(|adjoint| format!("{} = {adjoint}", self.gradient_name(index))),
            note: node.note.clone(),
        }
    }

    /// Returns the part of the operand's adjoint that flows back along `edge`.
    ///
    /// Where the local derivative and the stage's adjoint are both scalars, that is their
    /// product. Otherwise it is the operand's whole adjoint if this edge is its only way to
    /// the output, and the product in symbols if not. Returns `None` for a stage that does
    /// not lead to the output.
    pub(super) fn edge_gradient(&self, edge: &Edge) -> Option<String> {
        if !self.reaches_output[edge.to] {
            return None;
        }
        let stage = &self.trace.nodes[edge.to];
        let local = stage.locals[edge.local]
            .value
            .as_ref()
            .and_then(Summary::as_scalar);
        let adjoint = stage.adjoint.as_ref().and_then(Summary::as_scalar);
        if let (Some(local), Some(adjoint)) = (local, adjoint) {
            return Some(format_number(local * adjoint));
        }
        let paths_to_output = self
            .edges
            .iter()
            .filter(|other| other.from == edge.from && self.reaches_output[other.to])
            .count();
        if paths_to_output == 1 {
            if let Some(adjoint) = &self.trace.nodes[edge.from].adjoint {
                return Some(adjoint.to_string());
            }
        }
        Some(self.chain_term(edge.to, &[edge.local]).1)
    }

    /// Returns `dg/dx = symbol = value` for the local derivative at `position` of stage
    /// `stage`, leaving out what is missing or repeated.
    fn local_text(&self, stage: usize, position: usize) -> String {
        let local = &self.trace.nodes[stage].locals[position];
        let forms = [
            format!("d{}/d{}", self.names[stage], self.name_of(local.operand)),
            self.rename_operands(stage, &local.symbol),
            adjoint_text(local.value.as_ref()),
        ];
        join_forms(&forms)
    }

    /// Orders the nodes that lead to `output` for the backward steps: the output first,
    /// then repeatedly the lowest node all of whose users have been listed.
    fn backward_order(&self, output: usize) -> Vec<usize> {
        let mut pending_users = vec![0usize; self.names.len()];
        for edge in &self.edges {
            if self.reaches_output[edge.to] {
                pending_users[edge.from] += 1;
            }
        }
        let mut ready = BTreeSet::from([output]);
        let mut order = Vec::new();
        while let Some(index) = ready.pop_first() {
            order.push(index);
            for edge in self.edges.iter().filter(|edge| edge.to == index) {
                pending_users[edge.from] -= 1;
                if pending_users[edge.from] == 0 {
                    ready.insert(edge.from);
                }
            }
        }
        order
    }

    /// Returns the backward step of node `index`, which leads to `output`.
    fn backward_line(&self, index: usize, output: usize) -> String {
        let node = &self.trace.nodes[index];
        let lhs = self.gradient_name(index);
        if index == output {
            let seed = match &node.adjoint {
                Some(adjoint) => adjoint.to_string(),
                None if node.value.as_scalar().is_some() => "1".to_owned(),
                None => String::new(),
            };
            return join_forms(&[lhs, seed]);
        }

        let mut general = Vec::new();
        let mut substituted = Vec::new();
        let users = self
            .edges
            .iter()
            .filter(|edge| edge.from == index && self.reaches_output[edge.to]);
        let mut users = users.peekable();
        while let Some(first) = users.next() {
            let mut positions = vec![first.local];
            while let Some(edge) = users.next_if(|edge| edge.to == first.to) {
                positions.push(edge.local);
            }
            let (term, with_symbols) = self.chain_term(first.to, &positions);
            general.push(term);
            substituted.push(with_symbols);
        }
        let forms = [
            lhs,
            join_sum(&general),
            join_sum(&substituted),
            adjoint_text(node.adjoint.as_ref()),
        ];
        join_forms(&forms)
    }

    /// Returns the chain-rule term through stage `stage` for the operand of the local
    /// derivatives at `positions`, first as `dg/dx * df/dg`, then with the local
    /// derivative's symbol in place of `dg/dx`.
    ///
    /// A stage that uses the operand twice, as `x * x` does, has two positions, and their
    /// symbols add up. A stage that is the output contributes its local derivative alone.
    fn chain_term(&self, stage: usize, positions: &[usize]) -> (String, String) {
        let node = &self.trace.nodes[stage];
        let operand = node.locals[positions[0]].operand;
        let local_name = format!("d{}/d{}", self.names[stage], self.name_of(operand));
        let symbols = positions
            .iter()
            .map(|&position| self.rename_operands(stage, &node.locals[position].symbol))
            .collect::<Vec<_>>();
        let symbol = if symbols.iter().any(String::is_empty) {
            None
        } else {
            Some(symbols.join(" + "))
        };
        if self.trace.output == Some(stage) {
            let symbol = symbol.unwrap_or_else(|| local_name.clone());
            return (symbol.clone(), symbol);
        }
        let adjoint_name = self.gradient_name(stage);
        let general = format!("{local_name} * {adjoint_name}");
        let substituted = match symbol {
            None => general.clone(),
            Some(symbol) if symbol == "1" => adjoint_name,
            Some(symbol) if symbol == "-1" => format!("-{adjoint_name}"),
            Some(symbol) if symbols.len() > 1 || has_top_level_sum(&symbol) => {
                format!("({symbol}) * {adjoint_name}")
            }
            Some(symbol) => format!("{symbol} * {adjoint_name}"),
        };
        (general, substituted)
    }

    /// Replaces, in `text` written for stage `stage`, each operand's name by its display
    /// name. Field and method names (after `.` or `:`) and string literals are left alone.
    fn rename_operands(&self, stage: usize, text: &str) -> String {
        let node = &self.trace.nodes[stage];
        let renames = node
            .locals
            .iter()
            .filter_map(|local| {
                let operand = self.trace.nodes.get(local.operand)?;
                let display = &self.names[local.operand];
                (operand.name != *display).then_some((operand.name.as_str(), display.as_str()))
            })
            .collect::<Vec<_>>();
        if renames.is_empty() {
            return text.to_owned();
        }

        let mut out = String::with_capacity(text.len());
        let mut previous = None;
        let mut in_string = false;
        let mut chars = text.char_indices().peekable();
        while let Some((start, c)) = chars.next() {
            if in_string {
                out.push(c);
                if c == '\\' {
                    if let Some((_, escaped)) = chars.next() {
                        out.push(escaped);
                    }
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
                out.push(c);
            } else if is_identifier_char(c) {
                let mut end = start + c.len_utf8();
                while let Some(&(index, next)) = chars.peek() {
                    if !is_identifier_char(next) {
                        break;
                    }
                    end = index + next.len_utf8();
                    chars.next();
                }
                let word = &text[start..end];
                let is_path_segment = matches!(previous, Some('.' | ':'));
                match renames.iter().find(|(name, _)| *name == word) {
                    Some((_, display)) if !is_path_segment => out.push_str(display),
                    _ => out.push_str(word),
                }
                previous = text[..end].chars().next_back();
                continue;
            } else {
                out.push(c);
            }
            previous = Some(c);
        }
        out
    }
}

fn is_identifier_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Returns whether `symbol` has a `+` or a binary `-` outside brackets, so that it needs
/// brackets as a factor.
fn has_top_level_sum(symbol: &str) -> bool {
    let mut depth = 0i32;
    let mut previous = None;
    for c in symbol.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            '+' if depth == 0 => return true,
            '-' if depth == 0 => {
                if matches!(previous, Some(p) if is_identifier_char(p) || p == ')' || p == ']') {
                    return true;
                }
            }
            _ => {}
        }
        if !c.is_whitespace() {
            previous = Some(c);
        }
    }
    false
}

/// Joins terms into a sum, writing `a - b` for a term `-b`.
fn join_sum(terms: &[String]) -> String {
    let mut out = String::new();
    for (index, term) in terms.iter().enumerate() {
        match (index, term.strip_prefix('-')) {
            (0, _) => out.push_str(term),
            (_, Some(negated)) => {
                let _ = write!(out, " - {negated}");
            }
            (_, None) => {
                let _ = write!(out, " + {term}");
            }
        }
    }
    out
}

/// Joins the forms of one quantity with ` = `, skipping empty forms and forms equal to
/// the one before.
fn join_forms(forms: &[String]) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for form in forms {
        if !form.is_empty() && kept.last() != Some(&form.as_str()) {
            kept.push(form);
        }
    }
    kept.join(" = ")
}

fn adjoint_text(summary: Option<&Summary>) -> String {
    summary.map(ToString::to_string).unwrap_or_default()
}

/// Pads every column to its widest cell, two spaces apart, with trailing spaces trimmed,
/// and underlines the first row, the header, with dashes as wide as each column.
fn align_columns(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect::<Vec<_>>();
    let rule = widths
        .iter()
        .map(|&width| "-".repeat(width))
        .collect::<Vec<_>>();
    let mut out = String::new();
    for (index, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if index == 0 {
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    out
}

/// Escapes text for a double-quoted DOT string.
fn escape_dot_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes text for an HTML-like DOT label or for SVG text and attribute values.
pub(super) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}
