//! The trace that `#[differentiable]` generates, rendered as the user sees it.

use stagegrad::differentiable;

#[differentiable]
fn f(x: f64, y: f64, z: f64) -> f64 {
    let g = x + y;
    g * z
}

#[test]
fn design_example_symbolic_steps() {
    let trace = f_trace(-2.0, 5.0, -4.0);
    assert_eq!(trace.value("g"), Some(3.0));
    assert_eq!(trace.value("f"), Some(-12.0));
    let forward = trace.forward_steps();
    assert!(forward.contains("g = x + y = 3"), "{forward}");
    assert!(forward.contains("f = g * z = -12"), "{forward}");
    let backward = trace.backward_steps();
    for line in [
        "df/dz = g = 3",
        "df/dg = z = -4",
        "df/dx = dg/dx * df/dg = df/dg = -4",
        "df/dy = dg/dy * df/dg = df/dg = -4",
    ] {
        assert!(backward.contains(line), "missing `{line}` in\n{backward}");
    }
}

#[test]
fn design_example_graph_colours() {
    let trace = f_trace(-2.0, 5.0, -4.0);
    let dot = trace.to_dot();
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("blue"), "{dot}");
    let svg = trace.to_svg();
    assert!(svg.contains("<svg"), "{svg}");
    for name in ["x", "y", "z", "g", "f"] {
        assert!(trace.node(name).is_some(), "no node {name}");
    }
    assert_eq!(trace.adjoint("x"), Some(-4.0));
    assert_eq!(trace.adjoint("z"), Some(3.0));
}

#[derive(stagegrad::Differentiable, Clone, Debug)]
struct Line {
    slope: f64,
    intercept: f64,
}

#[differentiable(wrt(line))]
fn squared_error(line: &Line, x: f64, y: f64) -> f64 {
    let error = line.slope * x + line.intercept - y;
    error * error
}

#[test]
fn model_fields_are_trace_nodes() {
    let trace = squared_error_trace(
        &Line {
            slope: 2.0,
            intercept: 1.0,
        },
        3.0,
        5.0,
    );
    // error = 2 * 3 + 1 - 5 = 2; d/dslope = 2 error x = 12; d/dintercept = 2 error = 4.
    assert_eq!(trace.value("line.slope"), Some(2.0));
    assert_eq!(trace.adjoint("line.slope"), Some(12.0));
    assert_eq!(trace.adjoint("line.intercept"), Some(4.0));
    let backward = trace.backward_steps();
    assert!(
        backward.contains("dsquared_error/dline.slope"),
        "{backward}"
    );
}
