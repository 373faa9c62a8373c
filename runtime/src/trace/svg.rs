//! Layout and SVG drawing of a trace's graph, without Graphviz.
//!
//! The layout is layered in the Sugiyama style, with layers running left to right:
//!
//! 1. each node goes to the layer of its longest path from the inputs, and an edge that
//!    skips layers gets one virtual vertex in each layer it crosses, so that it can bend
//!    around the boxes in between;
//! 2. barycenter sweeps, alternately forward and backward, reorder each layer by the mean
//!    position of its neighbours in the layer before or after, and the order with the
//!    fewest crossings wins;
//! 3. each layer's vertices are then moved as close as their spacing allows, in least
//!    squares, to the mean height of their neighbours (an isotonic regression, solved by
//!    pooling adjacent violators);
//! 4. edges are cubic curves from the operand's right side to the stage's left side,
//!    each with its gradient as a blue label in the gap before the stage.
//!
//! Box widths come from the length of their text in a monospace font, so the estimate
//! holds for any monospace font of about 0.6 em per character.

use std::fmt::Write as _;

use super::NodeKind;
use super::render::{Edge, NodeText, View, escape_html};

const FONT_FAMILY: &str = "DejaVu Sans Mono, Menlo, Consolas, monospace";
const FONT_SIZE: f64 = 12.0;
/// The advance of one character at `FONT_SIZE`, a little above the 0.602 em of DejaVu Sans
/// Mono. A viewer that falls back to a wider or proportional font may overflow the boxes.
const CHAR_WIDTH: f64 = 7.3;
const LINE_HEIGHT: f64 = 16.0;
const LABEL_FONT_SIZE: f64 = 11.0;
const LABEL_CHAR_WIDTH: f64 = 6.7;
const LABEL_HEIGHT: f64 = 15.0;
const PADDING_X: f64 = 10.0;
const PADDING_Y: f64 = 6.0;
const MARGIN: f64 = 16.0;
const HEADER_HEIGHT: f64 = 40.0;
/// The narrowest gap between two layers, wide enough for the curves to read.
const MIN_LAYER_GAP: f64 = 56.0;
/// The space left on each side of the widest gradient label in a gap.
const LABEL_MARGIN: f64 = 12.0;
const NODE_GAP: f64 = 22.0;
const VIRTUAL_GAP: f64 = 10.0;
const VIRTUAL_HEIGHT: f64 = 4.0;
const PORT_SPACING: f64 = 9.0;
const ORDER_SWEEPS: usize = 12;
const ALIGN_SWEEPS: usize = 6;

const VALUE_COLOR: &str = "#000000";
const GRADIENT_COLOR: &str = "#1d4ed8";
const NOTE_COLOR: &str = "#6b7280";
const EDGE_COLOR: &str = "#6b7280";
const BORDER_COLOR: &str = "#374151";
const INPUT_FILL: &str = "#f3f4f6";

/// Renders the view's graph as a standalone SVG document.
pub(super) fn render(view: &View<'_>) -> String {
    let graph = Graph::new(view);
    let order = order_layers(&graph);
    let texts = (0..graph.real)
        .map(|index| view.node_text(index))
        .collect::<Vec<_>>();

    let mut widths = vec![0.0; graph.layer.len()];
    let mut heights = vec![VIRTUAL_HEIGHT; graph.layer.len()];
    for (index, text) in texts.iter().enumerate() {
        let lines = box_lines(text);
        let longest = lines
            .iter()
            .map(|line| line.chars().count())
            .max()
            .unwrap_or(0);
        widths[index] = longest as f64 * CHAR_WIDTH + 2.0 * PADDING_X;
        heights[index] = lines.len() as f64 * LINE_HEIGHT + 2.0 * PADDING_Y;
    }

    let labels = view
        .edges
        .iter()
        .map(|edge| view.edge_gradient(edge))
        .collect::<Vec<_>>();
    let columns = Columns::new(&graph, &order, &widths, &view.edges, &labels);
    let mut y = assign_heights(&graph, &order, &heights);
    let top = (0..y.len())
        .map(|vertex| y[vertex] - heights[vertex] / 2.0)
        .fold(f64::INFINITY, f64::min);
    if top.is_finite() {
        for value in &mut y {
            *value += HEADER_HEIGHT - top;
        }
    }

    let ports = assign_ports(&graph, &y, &heights);
    let geometry = Geometry {
        graph: &graph,
        columns: &columns,
        widths: &widths,
        y: &y,
        ports,
    };
    let paths = (0..view.edges.len())
        .map(|edge| geometry.edge_points(edge))
        .collect::<Vec<_>>();
    let placed_labels = place_labels(&graph, &columns, &paths, &labels);

    let title = format!(
        "trace of {}: values in black, gradients in blue",
        view.trace.function()
    );
    let mut width = MARGIN * 2.0 + title.chars().count() as f64 * CHAR_WIDTH;
    let mut height = HEADER_HEIGHT + MARGIN;
    if let Some(last) = columns.left.last() {
        width = width.max(last + columns.width.last().copied().unwrap_or(0.0) + MARGIN);
    }
    for vertex in 0..y.len() {
        height = height.max(y[vertex] + heights[vertex] / 2.0 + MARGIN);
    }
    for label in placed_labels.iter().flatten() {
        height = height.max(label.y + LABEL_HEIGHT / 2.0 + MARGIN);
    }

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"{FONT_FAMILY}\" font-size=\"{FONT_SIZE}\">",
        w = number(width.ceil()),
        h = number(height.ceil()),
    );
    let _ = writeln!(
        svg,
        "<title>trace of {}</title>",
        escape_html(view.trace.function())
    );
    let _ = writeln!(
        svg,
        "<defs><marker id=\"stagegrad-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerUnits=\"userSpaceOnUse\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\">\
         <path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"{EDGE_COLOR}\"/></marker></defs>"
    );
    let _ = writeln!(
        svg,
        "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>"
    );
    let _ = writeln!(
        svg,
        "<text x=\"{MARGIN}\" y=\"{}\">trace of <tspan font-weight=\"bold\">{}</tspan>: \
         <tspan fill=\"{VALUE_COLOR}\">values in black</tspan>, \
         <tspan fill=\"{GRADIENT_COLOR}\">gradients in blue</tspan></text>",
        number(MARGIN + FONT_SIZE),
        escape_html(view.trace.function())
    );

    svg.push_str("<g fill=\"none\" stroke=\"");
    svg.push_str(EDGE_COLOR);
    svg.push_str("\" stroke-width=\"1.3\">\n");
    for points in &paths {
        let _ = writeln!(
            svg,
            "<path d=\"{}\" marker-end=\"url(#stagegrad-arrow)\"/>",
            path_data(points)
        );
    }
    svg.push_str("</g>\n");

    for (index, text) in texts.iter().enumerate() {
        let is_input = view.trace.nodes[index].kind == NodeKind::Input;
        let is_output = view.trace.output == Some(index);
        let left = geometry.left(index);
        draw_node(
            &mut svg,
            text,
            left,
            y[index] - heights[index] / 2.0,
            widths[index],
            heights[index],
            is_input,
            is_output,
        );
    }

    for label in placed_labels.iter().flatten() {
        let label_width = label.text.chars().count() as f64 * LABEL_CHAR_WIDTH + 6.0;
        let _ = writeln!(
            svg,
            "<g class=\"gradient\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\" fill=\"#ffffff\" \
             fill-opacity=\"0.9\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{LABEL_FONT_SIZE}\" \
             fill=\"{GRADIENT_COLOR}\">{}</text></g>",
            number(label.x - label_width / 2.0),
            number(label.y - LABEL_HEIGHT / 2.0),
            number(label_width),
            number(LABEL_HEIGHT),
            number(label.x),
            number(label.y + LABEL_FONT_SIZE * 0.35),
            escape_html(&label.text)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The layered graph: the trace's nodes, then one virtual vertex for each layer that an
/// edge skips.
struct Graph {
    /// The number of the trace's nodes; vertices from this index on are virtual.
    real: usize,
    layer: Vec<usize>,
    predecessors: Vec<Vec<usize>>,
    successors: Vec<Vec<usize>>,
    /// For each edge of the view, the vertices it passes, from operand to stage.
    chains: Vec<Vec<usize>>,
    layer_count: usize,
}

impl Graph {
    fn new(view: &View<'_>) -> Self {
        let real = view.names.len();
        let mut layer = vec![0; real];
        // Edges are ordered by stage and point forward, so an operand's layer is final
        // before any edge out of it is looked at.
        for edge in &view.edges {
            layer[edge.to] = layer[edge.to].max(layer[edge.from] + 1);
        }
        let mut predecessors = vec![Vec::new(); real];
        let mut successors = vec![Vec::new(); real];
        let mut chains = Vec::with_capacity(view.edges.len());
        for edge in &view.edges {
            let mut chain = vec![edge.from];
            for skipped in layer[edge.from] + 1..layer[edge.to] {
                layer.push(skipped);
                predecessors.push(Vec::new());
                successors.push(Vec::new());
                chain.push(layer.len() - 1);
            }
            chain.push(edge.to);
            for pair in chain.windows(2) {
                successors[pair[0]].push(pair[1]);
                predecessors[pair[1]].push(pair[0]);
            }
            chains.push(chain);
        }
        let layer_count = layer.iter().max().map_or(0, |last| last + 1);
        Graph {
            real,
            layer,
            predecessors,
            successors,
            chains,
            layer_count,
        }
    }

    fn is_virtual(&self, vertex: usize) -> bool {
        vertex >= self.real
    }
}

/// Orders the vertices of each layer to reduce edge crossings: barycenter sweeps,
/// alternately forward and backward, keeping the order with the fewest crossings.
fn order_layers(graph: &Graph) -> Vec<Vec<usize>> {
    let mut order = vec![Vec::new(); graph.layer_count];
    for (vertex, &layer) in graph.layer.iter().enumerate() {
        order[layer].push(vertex);
    }
    let mut position = vec![0usize; graph.layer.len()];
    update_positions(&order, &mut position);
    let mut best = order.clone();
    let mut best_crossings = count_crossings(graph, &order, &position);

    for sweep in 0..ORDER_SWEEPS {
        if best_crossings == 0 {
            break;
        }
        if sweep % 2 == 0 {
            for layer in 1..order.len() {
                sort_by_barycenter(&mut order[layer], &graph.predecessors, &position);
                update_positions(&order, &mut position);
            }
        } else {
            for layer in (0..order.len().saturating_sub(1)).rev() {
                sort_by_barycenter(&mut order[layer], &graph.successors, &position);
                update_positions(&order, &mut position);
            }
        }
        let crossings = count_crossings(graph, &order, &position);
        if crossings < best_crossings {
            best = order.clone();
            best_crossings = crossings;
        }
    }
    best
}

fn update_positions(order: &[Vec<usize>], position: &mut [usize]) {
    for layer in order {
        for (index, &vertex) in layer.iter().enumerate() {
            position[vertex] = index;
        }
    }
}

/// Sorts a layer by the mean position of each vertex's neighbours; a vertex without
/// neighbours keeps its own position as its key.
fn sort_by_barycenter(layer: &mut [usize], neighbours: &[Vec<usize>], position: &[usize]) {
    let key = |vertex: usize| {
        let around = &neighbours[vertex];
        if around.is_empty() {
            position[vertex] as f64
        } else {
            around
                .iter()
                .map(|&other| position[other] as f64)
                .sum::<f64>()
                / around.len() as f64
        }
    };
    let mut keyed = layer
        .iter()
        .map(|&vertex| (key(vertex), position[vertex], vertex))
        .collect::<Vec<_>>();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (slot, (_, _, vertex)) in layer.iter_mut().zip(keyed) {
        *slot = vertex;
    }
}

/// Counts the pairs of edges that cross between adjacent layers.
fn count_crossings(graph: &Graph, order: &[Vec<usize>], position: &[usize]) -> usize {
    let mut crossings = 0;
    for layer in order {
        let ends = layer
            .iter()
            .flat_map(|&vertex| {
                graph.successors[vertex]
                    .iter()
                    .map(move |&next| (position[vertex], position[next]))
            })
            .collect::<Vec<_>>();
        for (index, a) in ends.iter().enumerate() {
            for b in &ends[index + 1..] {
                if (a.0 < b.0 && a.1 > b.1) || (a.0 > b.0 && a.1 < b.1) {
                    crossings += 1;
                }
            }
        }
    }
    crossings
}

/// Assigns each vertex the height of its center: every layer starts stacked around 0,
/// then sweeps pull each vertex toward the mean height of its neighbours.
fn assign_heights(graph: &Graph, order: &[Vec<usize>], heights: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; graph.layer.len()];
    let align = |y: &mut Vec<f64>, layer: &[usize], neighbours: &dyn Fn(usize) -> Vec<usize>| {
        let desired = layer
            .iter()
            .map(|&vertex| {
                let around = neighbours(vertex);
                if around.is_empty() {
                    y[vertex]
                } else {
                    around.iter().map(|&other| y[other]).sum::<f64>() / around.len() as f64
                }
            })
            .collect::<Vec<_>>();
        let separation = layer
            .windows(2)
            .map(|pair| {
                let gap = if graph.is_virtual(pair[0]) || graph.is_virtual(pair[1]) {
                    VIRTUAL_GAP
                } else {
                    NODE_GAP
                };
                (heights[pair[0]] + heights[pair[1]]) / 2.0 + gap
            })
            .collect::<Vec<_>>();
        for (&vertex, placed) in layer.iter().zip(place_in_order(&desired, &separation)) {
            y[vertex] = placed;
        }
    };
    let before = |vertex: usize| graph.predecessors[vertex].clone();
    let after = |vertex: usize| graph.successors[vertex].clone();
    let both = |vertex: usize| {
        [
            graph.predecessors[vertex].as_slice(),
            &graph.successors[vertex],
        ]
        .concat()
    };

    for layer in order {
        align(&mut y, layer, &|_| Vec::new());
    }
    for _ in 0..ALIGN_SWEEPS {
        for layer in order.iter().skip(1) {
            align(&mut y, layer, &before);
        }
        for layer in order.iter().rev().skip(1) {
            align(&mut y, layer, &after);
        }
    }
    for layer in order {
        align(&mut y, layer, &both);
    }
    y
}

/// Places items in their given order so that item `i + 1` sits at least
/// `separation[i]` below item `i`, minimising the sum of squared distances to `desired`.
///
/// Subtracting the running sum of separations turns the constraints into "nondecreasing",
/// and pooling adjacent violators solves that isotonic regression exactly.
fn place_in_order(desired: &[f64], separation: &[f64]) -> Vec<f64> {
    let mut offsets = Vec::with_capacity(desired.len());
    let mut offset = 0.0;
    for index in 0..desired.len() {
        if index > 0 {
            offset += separation[index - 1];
        }
        offsets.push(offset);
    }
    // Each block is (sum of shifted targets, count), and block means must not decrease.
    let mut blocks: Vec<(f64, usize)> = Vec::new();
    for (target, offset) in desired.iter().zip(&offsets) {
        blocks.push((target - offset, 1));
        while let [.., (sum_a, count_a), (sum_b, count_b)] = blocks[..] {
            if sum_a / count_a as f64 <= sum_b / count_b as f64 {
                break;
            }
            blocks.truncate(blocks.len() - 2);
            blocks.push((sum_a + sum_b, count_a + count_b));
        }
    }
    let mut placed = Vec::with_capacity(desired.len());
    for (sum, count) in blocks {
        let mean = sum / count as f64;
        for _ in 0..count {
            placed.push(mean + offsets[placed.len()]);
        }
    }
    placed
}

/// The horizontal extent of each layer and of the gaps between layers.
struct Columns {
    left: Vec<f64>,
    width: Vec<f64>,
}

impl Columns {
    /// Sizes each layer to its widest box and each gap to its widest gradient label,
    /// which sits in the gap before the stage it leaves.
    fn new(
        graph: &Graph,
        order: &[Vec<usize>],
        widths: &[f64],
        edges: &[Edge],
        labels: &[Option<String>],
    ) -> Self {
        let width = order
            .iter()
            .map(|layer| {
                layer
                    .iter()
                    .map(|&vertex| widths[vertex])
                    .fold(0.0, f64::max)
            })
            .collect::<Vec<_>>();
        let mut gap = vec![MIN_LAYER_GAP; order.len().saturating_sub(1)];
        for (edge, label) in edges.iter().zip(labels) {
            if let Some(label) = label {
                let slot = graph.layer[edge.to] - 1;
                let needed =
                    label.chars().count() as f64 * LABEL_CHAR_WIDTH + 6.0 + 2.0 * LABEL_MARGIN;
                gap[slot] = gap[slot].max(needed);
            }
        }
        let mut left = Vec::with_capacity(order.len());
        let mut x = MARGIN;
        for (layer, layer_width) in width.iter().enumerate() {
            left.push(x);
            x += layer_width + gap.get(layer).copied().unwrap_or(0.0);
        }
        Columns { left, width }
    }

    fn right(&self, layer: usize) -> f64 {
        self.left[layer] + self.width[layer]
    }
}

/// The positions of every vertex, once layout is done.
struct Geometry<'a> {
    graph: &'a Graph,
    columns: &'a Columns,
    widths: &'a [f64],
    y: &'a [f64],
    /// For each edge, the heights where it leaves its operand and enters its stage.
    ports: Vec<(f64, f64)>,
}

impl Geometry<'_> {
    /// Returns the left side of a box, centered in its layer.
    fn left(&self, vertex: usize) -> f64 {
        let layer = self.graph.layer[vertex];
        self.columns.left[layer] + (self.columns.width[layer] - self.widths[vertex]) / 2.0
    }

    /// Returns the points an edge passes: its start at the operand, the entry and exit of
    /// each virtual vertex, and its end at the stage. Segments alternate between a gap
    /// (drawn as a curve) and a layer crossed straight.
    fn edge_points(&self, edge: usize) -> Vec<(f64, f64)> {
        let chain = &self.graph.chains[edge];
        let from = chain[0];
        let to = chain[chain.len() - 1];
        let mut points = vec![(self.left(from) + self.widths[from], self.ports[edge].0)];
        for &skipped in &chain[1..chain.len() - 1] {
            let layer = self.graph.layer[skipped];
            points.push((self.columns.left[layer], self.y[skipped]));
            points.push((self.columns.right(layer), self.y[skipped]));
        }
        points.push((self.left(to), self.ports[edge].1));
        points
    }
}

/// Returns, for each edge, the heights where it leaves its operand and enters its stage.
///
/// The edges at one side of a box spread over its height in the order of the heights
/// they come from or go to, so that parallel edges stay apart and do not cross at the box.
fn assign_ports(graph: &Graph, y: &[f64], heights: &[f64]) -> Vec<(f64, f64)> {
    let mut outgoing = vec![Vec::new(); graph.real];
    let mut incoming = vec![Vec::new(); graph.real];
    for (edge, chain) in graph.chains.iter().enumerate() {
        outgoing[chain[0]].push((y[chain[1]], edge));
        incoming[chain[chain.len() - 1]].push((y[chain[chain.len() - 2]], edge));
    }
    let mut ports = vec![(0.0, 0.0); graph.chains.len()];
    for (vertex, (mut outgoing, mut incoming)) in outgoing.into_iter().zip(incoming).enumerate() {
        for (side, ends) in [(0, &mut outgoing), (1, &mut incoming)] {
            ends.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let count = ends.len();
            let spacing = if count > 1 {
                PORT_SPACING.min((heights[vertex] - 2.0 * PADDING_Y) / (count - 1) as f64)
            } else {
                0.0
            };
            for (rank, &(_, edge)) in ends.iter().enumerate() {
                let port = y[vertex] + (rank as f64 - (count as f64 - 1.0) / 2.0) * spacing;
                if side == 0 {
                    ports[edge].0 = port;
                } else {
                    ports[edge].1 = port;
                }
            }
        }
    }
    ports
}

/// A gradient label at its center.
struct Label {
    text: String,
    x: f64,
    y: f64,
}

/// Places each edge's label in the middle of the gap before its stage, on the curve,
/// then spreads the labels of each gap apart so that none overlap.
fn place_labels(
    graph: &Graph,
    columns: &Columns,
    paths: &[Vec<(f64, f64)>],
    labels: &[Option<String>],
) -> Vec<Option<Label>> {
    let mut placed = labels
        .iter()
        .zip(paths)
        .enumerate()
        .map(|(edge, (label, points))| {
            let text = label.clone()?;
            let to = graph.chains[edge][graph.chains[edge].len() - 1];
            let gap = graph.layer[to] - 1;
            let x = (columns.right(gap) + columns.left[gap + 1]) / 2.0;
            let start = points[points.len() - 2];
            let end = points[points.len() - 1];
            Some(Label {
                text,
                x,
                y: curve_height_at(start, end, x),
            })
        })
        .collect::<Vec<_>>();

    for gap in 0..graph.layer_count.saturating_sub(1) {
        let mut in_gap = (0..placed.len())
            .filter(|&edge| {
                placed[edge].is_some()
                    && graph.layer[graph.chains[edge][graph.chains[edge].len() - 1]] == gap + 1
            })
            .collect::<Vec<_>>();
        in_gap.sort_by(|&a, &b| {
            let height = |edge: usize| placed[edge].as_ref().map_or(0.0, |label| label.y);
            height(a).total_cmp(&height(b)).then(a.cmp(&b))
        });
        let desired = in_gap
            .iter()
            .map(|&edge| placed[edge].as_ref().map_or(0.0, |label| label.y))
            .collect::<Vec<_>>();
        let separation = vec![LABEL_HEIGHT + 2.0; in_gap.len().saturating_sub(1)];
        for (&edge, y) in in_gap.iter().zip(place_in_order(&desired, &separation)) {
            if let Some(label) = placed[edge].as_mut() {
                label.y = y;
            }
        }
    }
    placed
}

/// Returns the height at `x` of the curve that [`path_data`] draws from `start` to `end`.
fn curve_height_at(start: (f64, f64), end: (f64, f64), x: f64) -> f64 {
    let control_x = |t: f64| {
        let dx = end.0 - start.0;
        let (c1, c2) = (start.0 + dx / 2.0, end.0 - dx / 2.0);
        let u = 1.0 - t;
        u * u * u * start.0 + 3.0 * u * u * t * c1 + 3.0 * u * t * t * c2 + t * t * t * end.0
    };
    // The curve's x grows with t, so bisection finds the t where it reaches `x`.
    let (mut low, mut high) = (0.0, 1.0);
    for _ in 0..40 {
        let middle = (low + high) / 2.0;
        if control_x(middle) < x {
            low = middle;
        } else {
            high = middle;
        }
    }
    let t = (low + high) / 2.0;
    let u = 1.0 - t;
    // Both control points share the height of their end, so y mixes only the two ends.
    (u * u * u + 3.0 * u * u * t) * start.1 + (3.0 * u * t * t + t * t * t) * end.1
}

/// Returns the SVG path of an edge's points: a curve with horizontal tangents across each
/// gap, a straight line across each skipped layer.
fn path_data(points: &[(f64, f64)]) -> String {
    let mut data = format!("M {} {}", number(points[0].0), number(points[0].1));
    for (segment, pair) in points.windows(2).enumerate() {
        let (start, end) = (pair[0], pair[1]);
        if segment % 2 == 0 {
            let middle = (start.0 + end.0) / 2.0;
            let _ = write!(
                data,
                " C {} {} {} {} {} {}",
                number(middle),
                number(start.1),
                number(middle),
                number(end.1),
                number(end.0),
                number(end.1)
            );
        } else {
            let _ = write!(data, " L {} {}", number(end.0), number(end.1));
        }
    }
    data
}

/// Returns the lines of a node's box: name and expression, value, gradient, note.
fn box_lines(text: &NodeText) -> Vec<String> {
    let mut lines = vec![match &text.expression {
        Some(expression) => format!("{} = {expression}", text.name),
        None => text.name.clone(),
    }];
    lines.push(text.value.clone());
    lines.extend(text.gradient.clone());
    lines.extend(text.note.clone());
    lines
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn draw_node(
    svg: &mut String,
    text: &NodeText,
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    is_input: bool,
    is_output: bool,
) {
    let radius = if is_input {
        (height / 2.0).min(12.0)
    } else {
        5.0
    };
    let fill = if is_input { INPUT_FILL } else { "#ffffff" };
    let _ = writeln!(
        svg,
        "<g class=\"node\"><title>{}</title>",
        escape_html(&text.name)
    );
    let _ = writeln!(
        svg,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{}\" fill=\"{fill}\" stroke=\"{BORDER_COLOR}\" stroke-width=\"1.2\"/>",
        number(left),
        number(top),
        number(width),
        number(height),
        number(radius)
    );
    if is_output {
        let _ = writeln!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{}\" fill=\"none\" stroke=\"{BORDER_COLOR}\" stroke-width=\"1\"/>",
            number(left + 3.0),
            number(top + 3.0),
            number(width - 6.0),
            number(height - 6.0),
            number((radius - 3.0).max(1.0))
        );
    }
    let center = left + width / 2.0;
    let baseline = |line: usize| {
        top + PADDING_Y + line as f64 * LINE_HEIGHT + LINE_HEIGHT / 2.0 + FONT_SIZE * 0.35
    };
    let mut title = format!(
        "<tspan font-weight=\"bold\">{}</tspan>",
        escape_html(&text.name)
    );
    if let Some(expression) = &text.expression {
        let _ = write!(title, " = {}", escape_html(expression));
    }
    let mut lines = vec![(title, format!(" fill=\"{VALUE_COLOR}\""))];
    lines.push((escape_html(&text.value), format!(" fill=\"{VALUE_COLOR}\"")));
    if let Some(gradient) = &text.gradient {
        lines.push((escape_html(gradient), format!(" fill=\"{GRADIENT_COLOR}\"")));
    }
    if let Some(note) = &text.note {
        lines.push((
            escape_html(note),
            format!(" fill=\"{NOTE_COLOR}\" font-style=\"italic\""),
        ));
    }
    for (line, (content, style)) in lines.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\"{style}>{content}</text>",
            number(center),
            number(baseline(line))
        );
    }
    svg.push_str("</g>\n");
}

/// Formats a coordinate with one decimal, which is finer than a pixel.
fn number(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}
