//! The record of one staged computation: every stage with its expression, value, local
//! derivatives and adjoint, as `f_trace` produces it.

mod render;
mod summary;
mod svg;

pub use summary::{Summarize, Summary, format_number};

/// The kind of a node of the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A differentiable argument of the function.
    Input,
    /// One primitive operation of the body.
    Stage,
}

/// The local derivative of a stage with respect to one operand.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalDerivative {
    /// The operand's node index.
    pub operand: usize,
    /// The derivative in symbols, in terms of the stage's operands and output, e.g. `z`.
    pub symbol: String,
    /// Its value at this point, where the stage's output is a scalar.
    pub value: Option<Summary>,
}

/// One input or stage of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The name: the argument's, the `let` binding's, or `t1`, `t2`, ... for a
    /// subexpression; the function's own name for the output.
    pub name: String,
    /// Input or stage.
    pub kind: NodeKind,
    /// The stage's expression over named operands, e.g. `g * z`; empty for inputs.
    pub expression: String,
    /// The local derivatives, one per differentiable operand, in operand order.
    pub locals: Vec<LocalDerivative>,
    /// The forward value.
    pub value: Summary,
    /// The adjoint: the gradient of the output with respect to this node.
    pub adjoint: Option<Summary>,
    /// A note on the stage, such as the loop iteration or the branch taken.
    pub note: Option<String>,
}

/// The staged computation of one call of a differentiable function.
///
/// `f_trace(x, y, z)` returns it. Print it with `{}` for the full account (stages,
/// symbolic forward and backward steps, table), or render one part with
/// [`Trace::table`], [`Trace::forward_steps`], [`Trace::backward_steps`],
/// [`Trace::to_dot`] or [`Trace::to_svg`].
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    function: String,
    nodes: Vec<Node>,
    output: Option<usize>,
}

impl Trace {
    /// Creates an empty trace for the function `function`.
    pub fn new(function: &str) -> Self {
        Trace {
            function: function.to_owned(),
            nodes: Vec::new(),
            output: None,
        }
    }

    /// Returns the name of the traced function.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// Returns every node, inputs first, then stages in evaluation order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Returns the node of the function's result.
    pub fn output(&self) -> Option<&Node> {
        self.output.map(|index| &self.nodes[index])
    }

    /// Returns the last node named `name`: for a shadowed binding, its final value.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().rev().find(|node| node.name == name)
    }

    /// Returns the forward value of the input or stage `name`, where it is a scalar.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.node(name).and_then(|node| node.value.as_scalar())
    }

    /// Returns the adjoint of the input or stage `name`, where it is a scalar.
    pub fn adjoint(&self, name: &str) -> Option<f64> {
        self.node(name)
            .and_then(|node| node.adjoint.as_ref())
            .and_then(Summary::as_scalar)
    }

    #[doc(hidden)]
    pub fn record_input<T: Summarize + ?Sized>(&mut self, name: &str, value: &T) -> usize {
        self.push(Node {
            name: name.to_owned(),
            kind: NodeKind::Input,
            expression: String::new(),
            locals: Vec::new(),
            value: value.summarize(),
            adjoint: None,
            note: None,
        })
    }

    #[doc(hidden)]
    pub fn record_stage<T: Summarize + ?Sized>(
        &mut self,
        name: &str,
        expression: &str,
        operands: &[(usize, &str)],
        value: &T,
    ) -> usize {
        let locals = operands
            .iter()
            .map(|&(operand, symbol)| LocalDerivative {
                operand,
                symbol: symbol.to_owned(),
                value: None,
            })
            .collect();
        self.push(Node {
            name: name.to_owned(),
            kind: NodeKind::Stage,
            expression: expression.to_owned(),
            locals,
            value: value.summarize(),
            adjoint: None,
            note: None,
        })
    }

    #[doc(hidden)]
    pub fn record_local<T: Summarize + ?Sized>(
        &mut self,
        node: usize,
        position: usize,
        value: Option<&T>,
    ) {
        if let (Some(local), Some(value)) = (self.nodes[node].locals.get_mut(position), value) {
            local.value = Some(value.summarize());
        }
    }

    #[doc(hidden)]
    pub fn record_adjoint<T: Summarize + ?Sized>(&mut self, node: usize, adjoint: &T) {
        self.nodes[node].adjoint = Some(adjoint.summarize());
    }

    #[doc(hidden)]
    pub fn record_note(&mut self, node: usize, note: String) {
        self.nodes[node].note = Some(note);
    }

    #[doc(hidden)]
    pub fn record_output(&mut self, node: usize) {
        self.output = Some(node);
    }

    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }
}
